package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/vault"
)

// TestDatabaseCrash kills a private mariadbd with SIGKILL in the middle of a keyed create load
// whose clients retry (same body, same Idempotency-Key) until they get an answer, then starts it
// again on the same data directory. Every acknowledged create must be in the database, no key may
// have made two users, /readyz must name mysql while it is down, and the service must recover
// without a restart.
func TestDatabaseCrash(t *testing.T) {
	srv := testdb.StartPrivate(t, "crash")
	cfg := srv.TCP.Clone()
	cfg.DBName = "usersvc_crash"
	admin, err := mysqldb.Open(context.Background(), srv.TCP, mysqldb.PoolConfig{MaxOpen: 1, MaxIdle: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE DATABASE usersvc_crash"); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	env := append(os.Environ(), "DATABASE_URL="+dbURL(cfg), "REDIS_KEY_PREFIX=crash-"+strings.ToLower(testdb.Letters(6)),
		"PII_ENCRYPTION_KEYS=c1:"+vault.NewKeyMaterial(), "BLIND_INDEX_KEY="+vault.NewKeyMaterial(),
		"RATE_LIMIT_PER_MINUTE=1000000", "SHUTDOWN_DELAY=0s", "REQUEST_TIMEOUT=3s")
	migrate := exec.Command(binary, "migrate")
	migrate.Env = env
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	direct, err := mysqldb.Open(context.Background(), cfg, mysqldb.PoolConfig{MaxOpen: 2, MaxIdle: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	key, _, err := auth.Create(context.Background(), direct, "crash", auth.AllScopes, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(env, fmt.Sprintf("PORT=%d", port))
	process(t, "crash replica", cmd)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHTTP(t, base+"/healthz")

	// Clients: each logical create is retried with the same key and body until it is answered
	// 201 (or the load ends). Every 201 is recorded with its key.
	client := &http.Client{Timeout: 10 * time.Second}
	var (
		mu       sync.Mutex
		acked    = map[string]map[string]bool{} // key -> ids answered 201
		attempts atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				k, body := "crash-"+testdb.Letters(12), newUserJSON(false)
				for !stop.Load() {
					attempts.Add(1)
					r := do(t, client, "POST", base+"/api/v1/users", body, "Authorization", "Bearer "+key, "Idempotency-Key", k)
					if r.code == 201 {
						var u struct{ ID string }
						_ = json.Unmarshal([]byte(r.body), &u)
						mu.Lock()
						if acked[k] == nil {
							acked[k] = map[string]bool{}
						}
						acked[k][u.ID] = true
						mu.Unlock()
						break
					}
					if r.code >= 400 && r.code < 500 && r.code != 409 && r.code != 429 {
						t.Errorf("create answered %d: %s", r.code, r.body)
						return
					}
					time.Sleep(50 * time.Millisecond) // 409 (in flight), 5xx, connection error: retry
				}
			}
		}()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitFor := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(d); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("%s: not within %s", what, d)
			}
		}
	}
	waitFor("creates before the crash", 30*time.Second, func() bool { return count() >= 20 })

	srv.Kill()
	before := count()
	waitFor("/readyz naming mysql", 15*time.Second, func() bool {
		r := do(t, client, "GET", base+"/readyz", "")
		return r.code == 503 && strings.Contains(r.body, `"mysql"`)
	})
	time.Sleep(time.Second) // the load keeps retrying against the dead server
	srv.Start()
	waitFor("creates after the restart", 60*time.Second, func() bool { return count() >= before+20 })
	stop.Store(true)
	wg.Wait()
	if r := do(t, client, "GET", base+"/readyz", ""); r.code != 200 {
		t.Errorf("/readyz after recovery: %d %s", r.code, r.body)
	}

	db := direct // its connections died with the server; database/sql opens new ones
	for k, ids := range acked {
		if len(ids) != 1 {
			t.Errorf("key %s was answered with %d different users", k, len(ids))
		}
		for id := range ids {
			var n int
			if err := db.QueryRow("SELECT COUNT(*) FROM users WHERE id = ?", id).Scan(&n); err != nil || n != 1 {
				t.Errorf("acknowledged create %s: %d rows after the crash (%v)", id, n, err)
			}
		}
	}
	// Every user row belongs to a distinct key: the durable idempotency rows tie users to keys.
	var users, keyed int
	if err := db.QueryRow("SELECT COUNT(*), COUNT(DISTINCT k.key_hash) FROM users u JOIN idempotency_keys k ON k.user_id = u.id").Scan(&users, &keyed); err != nil {
		t.Fatal(err)
	}
	var all int
	if err := db.QueryRow("SELECT COUNT(*) FROM users").Scan(&all); err != nil {
		t.Fatal(err)
	}
	if users != keyed || all != users {
		t.Errorf("%d users, %d of them joined to %d keys: a key made two users, or a user has no key", all, users, keyed)
	}
	t.Logf("%d creates acknowledged (%d before the crash), %d attempts, %d users in the database", len(acked), before, attempts.Load(), all)
}
