package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/testdb"
)

// Scenario 1: Redis outage under load.
func TestChaosRedisOutage(t *testing.T) {
	f := startFaults(t)
	base, key, direct := chaosReplica(t, f, nil)
	client := &http.Client{Timeout: 10 * time.Second}
	bearer = ""
	var acked acks
	defer acked.verify(t, direct)
	r := do(t, client, "POST", base+"/api/v1/users/", userJSON(), withKey(key, "Idempotency-Key", "pre-"+testdb.Letters(8))...)
	acked.note(r)
	if r.code != 201 {
		t.Fatalf("before: %d %s", r.code, r.body)
	}
	if err := f.redis.Disable(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if r := do(t, client, "GET", base+"/api/v1/users/", "", withKey(key)...); r.code != 200 {
			t.Errorf("read while redis is down (allow): %d", r.code)
		}
		r := do(t, client, "POST", base+"/api/v1/users/", userJSON(), withKey(key)...)
		acked.note(r)
		if r.code != 201 {
			t.Errorf("create without key while redis is down: %d %s", r.code, r.body)
		}
		if r := do(t, client, "POST", base+"/api/v1/users/", userJSON(), withKey(key, "Idempotency-Key", "down-"+testdb.Letters(8))...); r.code != 503 || r.header.Get("Retry-After") == "" {
			t.Errorf("keyed create while redis is down: %d", r.code)
		}
	}
	if err := f.redis.Enable(); err != nil {
		t.Fatal(err)
	}
	recovered := false
	for i := 0; i < 50 && !recovered; i++ {
		r := do(t, client, "POST", base+"/api/v1/users/", userJSON(), withKey(key, "Idempotency-Key", "after-"+testdb.Letters(8))...)
		acked.note(r)
		recovered = r.code == 201
		if !recovered {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !recovered {
		t.Fatal("no recovery after redis came back")
	}
}

// Scenario 2: MySQL outage during a create load with Idempotency-Keys and client retries. The
// lost-write checker then reads the database directly: every acknowledged create exists exactly
// once, and no key made two users.
func TestChaosMySQLOutageLosesNothing(t *testing.T) {
	f := startFaults(t)
	base, key, direct := chaosReplica(t, f, map[string]string{"REQUEST_TIMEOUT": "2s", "DB_ACQUIRE_TIMEOUT": "1s"})
	client := &http.Client{Timeout: 5 * time.Second}
	type ack struct{ id, email string }
	var (
		mu        sync.Mutex
		acked     []ack
		attempted atomic.Int64
		failures  atomic.Int64
		wg        sync.WaitGroup
	)
	stop := time.Now().Add(4 * time.Second)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				body, idem := userJSON(), "load-"+testdb.Letters(12)
				attempted.Add(1)
				var email struct {
					Email string `json:"email"`
				}
				_ = json.Unmarshal([]byte(body), &email)
				// The client retries the same request with the same key until it is answered.
				for try := 0; try < 40; try++ {
					r := do(t, client, "POST", base+"/api/v1/users/", body, withKey(key, "Idempotency-Key", idem)...)
					if r.code == 201 {
						var u struct{ ID string }
						_ = json.Unmarshal([]byte(r.body), &u)
						mu.Lock()
						acked = append(acked, ack{u.ID, strings.ToLower(email.Email)})
						mu.Unlock()
						break
					}
					if r.code > 0 && r.code < 500 && r.code != 409 {
						t.Errorf("unexpected %d: %s", r.code, r.body)
						break
					}
					failures.Add(1)
					time.Sleep(150 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(1 * time.Second)
	if err := f.mysql.Disable(); err != nil { // the database disappears, connections drop
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if r := do(t, client, "GET", base+"/readyz", ""); r.code != 503 || !strings.Contains(r.body, `"failing":["mysql"]`) {
		t.Errorf("readyz during the outage: %d %s", r.code, r.body)
	}
	time.Sleep(1200 * time.Millisecond)
	if err := f.mysql.Enable(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(acked) == 0 || failures.Load() == 0 {
		t.Fatalf("acknowledged %d, failed answers %d: without both the test proves nothing", len(acked), failures.Load())
	}
	for _, a := range acked {
		var n int
		if err := direct.QueryRow("SELECT COUNT(*) FROM users WHERE id = ? AND is_deleted = FALSE", a.id).Scan(&n); err != nil || n != 1 {
			t.Errorf("acknowledged user %s: %d rows (%v)", a.id, n, err)
		}
		if err := direct.QueryRow("SELECT COUNT(*) FROM users WHERE email_key = ?", a.email).Scan(&n); err != nil || n != 1 {
			t.Errorf("email of %s: %d users", a.id, n)
		}
	}
	var users int
	_ = direct.QueryRow("SELECT COUNT(*) FROM users").Scan(&users)
	if users < len(acked) {
		t.Errorf("%d users in the database, %d acknowledged", users, len(acked))
	}
	t.Logf("%d creates attempted, %d acknowledged after %d failed answers and retries, %d users in the database",
		attempted.Load(), len(acked), failures.Load(), users)
}

// Scenario 3: connections reset mid-transaction. Clients get a clear 5xx problem with
// Retry-After, nothing half-written remains, and the pool recovers.
func TestChaosConnectionResets(t *testing.T) {
	f := startFaults(t)
	base, key, direct := chaosReplica(t, f, nil)
	client := &http.Client{Timeout: 10 * time.Second}
	if _, err := f.mysql.AddToxic("reset", "reset_peer", "upstream", 1, toxiclient.Attributes{"timeout": 5}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		r := do(t, client, "POST", base+"/api/v1/users/", userJSON(), withKey(key)...)
		if r.code < 500 || r.header.Get("Retry-After") == "" || !strings.Contains(r.header.Get("Content-Type"), "problem+json") {
			t.Errorf("create during resets: %d %v %s", r.code, r.header, r.body)
		}
	}
	if err := f.mysql.RemoveToxic("reset"); err != nil {
		t.Fatal(err)
	}
	var orphans int
	_ = direct.QueryRow("SELECT COUNT(*) FROM users u LEFT JOIN user_audit a ON a.user_id = u.id WHERE a.id IS NULL").Scan(&orphans)
	if orphans != 0 {
		t.Errorf("%d users without their audit row: a transaction was half-written", orphans)
	}
	var acked acks
	ok := false
	for i := 0; i < 30 && !ok; i++ {
		r := do(t, client, "POST", base+"/api/v1/users/", userJSON(), withKey(key)...)
		acked.note(r)
		ok = r.code == 201
		if !ok {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatal("the pool did not recover")
	}
	acked.verify(t, direct)
}

// Scenario 4: a slow database (3 s of latency) answers fail fast at REQUEST_TIMEOUT instead of
// piling up, and the process stays small.
func TestChaosSlowDatabase(t *testing.T) {
	f := startFaults(t)
	base, key, _ := chaosReplica(t, f, map[string]string{"REQUEST_TIMEOUT": "1s", "DB_ACQUIRE_TIMEOUT": "500ms", "DB_MAX_OPEN_CONNS": "4"})
	client := &http.Client{Timeout: 10 * time.Second}
	if _, err := f.mysql.AddToxic("slow", "latency", "downstream", 1, toxiclient.Attributes{"latency": 3000}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	codes := make([]int, 30)
	start := time.Now()
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			codes[i] = do(t, client, "GET", base+"/api/v1/users/", "", withKey(key)...).code
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, c := range codes {
		if c != 503 {
			t.Errorf("request %d: %d, want 503", i, c)
		}
	}
	if elapsed > 2500*time.Millisecond {
		t.Errorf("30 requests took %v against a 1 s deadline: they piled up", elapsed)
	}
	if err := f.mysql.RemoveToxic("slow"); err != nil {
		t.Fatal(err)
	}
	metrics := do(t, client, "GET", base+"/metrics", "").body
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "go_goroutines ") {
			var n float64
			_, _ = fmt.Sscan(strings.TrimPrefix(line, "go_goroutines "), &n)
			if n > 200 {
				t.Errorf("goroutines after the burst: %v", n)
			}
		}
	}
}

// Scenario 5: a client that disconnects mid-request cancels its database work: the write it was
// waiting to make never happens.
func TestChaosClientDisconnectRollsBack(t *testing.T) {
	f := startFaults(t)
	base, key, direct := chaosReplica(t, f, nil)
	client := &http.Client{Timeout: 10 * time.Second}
	r := do(t, client, "POST", base+"/api/v1/users/", userJSON(), withKey(key)...)
	var u struct{ ID, Name string }
	_ = json.Unmarshal([]byte(r.body), &u)
	tx, err := direct.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("SELECT id FROM users WHERE id = ? FOR UPDATE", u.ID); err != nil {
		t.Fatal(err)
	}
	impatient := &http.Client{Timeout: 300 * time.Millisecond}
	if r := do(t, impatient, "PATCH", base+"/api/v1/users/"+u.ID, `{"name":"Never Written"}`, withKey(key)...); r.code != -1 {
		t.Fatalf("the impatient client got an answer: %d", r.code)
	}
	time.Sleep(300 * time.Millisecond) // the service notices the disconnect and cancels
	_ = tx.Rollback()
	time.Sleep(300 * time.Millisecond)
	var name string
	var audits int
	_ = direct.QueryRow("SELECT name FROM users WHERE id = ?", u.ID).Scan(&name)
	_ = direct.QueryRow("SELECT COUNT(*) FROM user_audit WHERE user_id = ?", u.ID).Scan(&audits)
	if name != u.Name || audits != 1 {
		t.Fatalf("a disconnected client's update was applied: name %q, %d audit rows", name, audits)
	}
}

// Bandwidth limits: a database link throttled to 1 KB/s makes requests fail at the deadline,
// and removing the limit restores service.
func TestChaosBandwidthLimit(t *testing.T) {
	f := startFaults(t)
	base, key, _ := chaosReplica(t, f, map[string]string{"REQUEST_TIMEOUT": "1s"})
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < 3; i++ {
		do(t, client, "POST", base+"/api/v1/users/", userJSON(), withKey(key)...)
	}
	if _, err := f.mysql.AddToxic("thin", "bandwidth", "downstream", 1, toxiclient.Attributes{"rate": 1}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := do(t, client, "GET", base+"/api/v1/users/?page_size=100", "", withKey(key)...)
	if r.code != 503 || time.Since(start) > 3*time.Second {
		t.Errorf("throttled list: %d after %v", r.code, time.Since(start))
	}
	if err := f.mysql.RemoveToxic("thin"); err != nil {
		t.Fatal(err)
	}
	ok := false
	for i := 0; i < 30 && !ok; i++ {
		ok = do(t, client, "GET", base+"/api/v1/users/?page_size=100", "", withKey(key)...).code == 200
		if !ok {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatal("no recovery after the limit was removed")
	}
}

// Scenario 6: SIGTERM to one of two replicas under a keyed create load. Clients move to the
// other replica when one refuses them; afterwards every acknowledged create exists exactly once.
func TestChaosSIGTERMUnderLoad(t *testing.T) {
	bases := fleet(t, 2, map[string]string{"REDIS_URL": testdb.RedisURL(t), "SHUTDOWN_DELAY": "500ms",
		"REDIS_KEY_PREFIX": "sigterm-" + strings.ToLower(testdb.Letters(6))})
	victim := lastFleet.cmds[0]
	direct, err := mysqldb.Open(context.Background(), lastFleet.db, mysqldb.PoolConfig{MaxOpen: 2, MaxIdle: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	client := &http.Client{Timeout: 5 * time.Second}
	var (
		mu     sync.Mutex
		acked  []string
		moved  atomic.Int64
		wg     sync.WaitGroup
		stopAt = time.Now().Add(3 * time.Second)
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(stopAt); i++ {
				body, idem := userJSON(), fmt.Sprintf("term-%d-%d-%s", w, i, testdb.Letters(6))
				target := (w + i) % 2
				for try := 0; try < 20; try++ {
					r := do(t, client, "POST", bases[target]+"/api/v1/users/", body, "Idempotency-Key", idem)
					if r.code == 201 {
						var u struct{ ID string }
						_ = json.Unmarshal([]byte(r.body), &u)
						mu.Lock()
						acked = append(acked, u.ID)
						mu.Unlock()
						break
					}
					// Refused or draining: the load balancer's job, done here by the client.
					moved.Add(1)
					target = 1 - target
					time.Sleep(50 * time.Millisecond)
				}
			}
		}(w)
	}
	time.Sleep(time.Second)
	_ = victim.Process.Signal(os.Interrupt)
	wg.Wait()
	// The victim really stopped (otherwise this test proves nothing about shutdown).
	if r := do(t, client, "GET", bases[0]+"/healthz", ""); r.code != -1 {
		t.Fatalf("the SIGTERMed replica still answers: %d", r.code)
	}
	for _, id := range acked {
		var n int
		if err := direct.QueryRow("SELECT COUNT(*) FROM users WHERE id = ?", id).Scan(&n); err != nil || n != 1 {
			t.Errorf("acknowledged %s: %d rows", id, n)
		}
	}
	var users int
	_ = direct.QueryRow("SELECT COUNT(*) FROM users").Scan(&users)
	if users != len(acked) {
		t.Errorf("%d users, %d acknowledged: a retried key made a second user or a write went unacknowledged", users, len(acked))
	}
	t.Logf("%d acknowledged creates, %d moved to the other replica", len(acked), moved.Load())
}
