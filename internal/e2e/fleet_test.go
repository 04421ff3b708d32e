package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usersvc/usersvc/internal/testdb"
)

// redisModes are the Redis deployments every fleet test runs against.
var redisModes = []string{"single", "cluster"}

func redisEnv(t *testing.T, mode string) map[string]string {
	t.Helper()
	env := map[string]string{"REDIS_KEY_PREFIX": "e2e-" + strings.ToLower(testdb.Letters(8))}
	switch mode {
	case "single":
		env["REDIS_URL"] = testdb.RedisURL(t)
	case "cluster":
		env["REDIS_CLUSTER_ADDRS"] = strings.Join(redisCluster(t), ",")
	}
	return env
}

// TestFleetRateLimit: three replicas share one GCRA budget per client. The policy is 100 per
// minute with a burst of 100: a client may send 100 requests at once, then one more every 600 ms.
// The replicas spend it in leases of up to 3 tokens (internal/ratelimit: 100/32): only granted
// tokens are spent, but at the end up to 2 may sit unspent in each replica. 150 requests sent
// round-robin within a fraction of a second get 100 OKs less at most 3 × 2 held back (plus one per
// 600 ms that passed, should the machine be slow), and 429s for the rest.
func TestFleetRateLimit(t *testing.T) {
	for _, mode := range redisModes {
		t.Run(mode, func(t *testing.T) {
			env := redisEnv(t, mode)
			env["RATE_LIMIT_PER_MINUTE"] = "100"
			bases := fleet(t, 3, env)
			client := &http.Client{Timeout: 10 * time.Second}
			const total = 150
			codes := make([]int, total)
			var wg sync.WaitGroup
			next := make(chan int)
			start := time.Now()
			for w := 0; w < 6; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						r := do(t, client, "GET", bases[i%3]+"/api/v1/users/?page_size=1", "")
						codes[i] = r.code
						if r.code == 200 && r.header.Get("RateLimit-Policy") != `"default";q=100;w=60` {
							t.Errorf("RateLimit-Policy = %q", r.header.Get("RateLimit-Policy"))
						}
						if r.code == 429 && r.header.Get("Retry-After") == "" {
							t.Error("429 without Retry-After")
						}
					}
				}()
			}
			for i := 0; i < total; i++ {
				next <- i
			}
			close(next)
			wg.Wait()
			elapsed := time.Since(start)
			count := map[int]int{}
			for _, c := range codes {
				count[c]++
			}
			replenished := int(elapsed / (600 * time.Millisecond))
			t.Logf("%s: %v in %v (allowance 100 + %d replenished)", mode, count, elapsed.Round(time.Millisecond), replenished)
			const heldBack = 3 * (3 - 1) // replicas × (lease cap - 1)
			if count[200]+count[429] != total || count[200] < 100-heldBack || count[200] > 100+replenished {
				t.Fatalf("status counts %v after %v: want 100 (-%d, +%d) OK and the rest 429", count, elapsed, heldBack, replenished)
			}
		})
	}
}

// TestFleetIdempotency: one Idempotency-Key sent at once to all three replicas makes one user, and
// the three answers are identical (the followers wait for the first and replay its response).
func TestFleetIdempotency(t *testing.T) {
	for _, mode := range redisModes {
		t.Run(mode, func(t *testing.T) {
			bases := fleet(t, 3, redisEnv(t, mode))
			client := &http.Client{Timeout: 10 * time.Second}
			for round := 0; round < 3; round++ {
				body, key := userJSON(), "fleet-"+testdb.Letters(16)
				res := make([]result, 3)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range bases {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						<-start
						res[i] = do(t, client, "POST", bases[i]+"/api/v1/users/", body, "Idempotency-Key", key)
					}(i)
				}
				close(start)
				wg.Wait()
				for i, r := range res {
					if r.code != 201 || r.body != res[0].body || r.header.Get("ETag") != res[0].header.Get("ETag") {
						t.Fatalf("round %d replica %d: %d %s\nfirst: %s", round, i, r.code, r.body, res[0].body)
					}
				}
			}
			var page struct{ Total int }
			r := do(t, client, "GET", bases[1]+"/api/v1/users/", "")
			if err := json.Unmarshal([]byte(r.body), &page); err != nil || page.Total != 3 {
				t.Fatalf("users after 3 rounds: %s", r.body)
			}
		})
	}
}

// TestRedisRestart: Redis dies under a running replica and comes back; the replica follows the
// policies meanwhile and recovers without a restart.
func TestRedisRestart(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	redis := redisServer(t, port, dir)
	bases := fleet(t, 1, map[string]string{
		"REDIS_URL": fmt.Sprintf("redis://127.0.0.1:%d/0", port), "RATE_LIMIT_ON_REDIS_ERROR": "allow",
	})
	base := bases[0]
	client := &http.Client{Timeout: 10 * time.Second}
	if r := do(t, client, "POST", base+"/api/v1/users/", userJSON(), "Idempotency-Key", "before-"+testdb.Letters(8)); r.code != 201 {
		t.Fatalf("before: %d %s", r.code, r.body)
	}
	_ = redis.Process.Kill()
	time.Sleep(200 * time.Millisecond)
	if r := do(t, client, "GET", base+"/api/v1/users/", ""); r.code != 200 {
		t.Errorf("read while redis is down (policy allow): %d %s", r.code, r.body)
	}
	if r := do(t, client, "POST", base+"/api/v1/users/", userJSON()); r.code != 201 {
		t.Errorf("create without key while redis is down: %d %s", r.code, r.body)
	}
	if r := do(t, client, "POST", base+"/api/v1/users/", userJSON(), "Idempotency-Key", "down-"+testdb.Letters(8)); r.code != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("create with key while redis is down: %d %s", r.code, r.body)
	}
	redisServer(t, port, dir)
	ok := false
	for i := 0; i < 50 && !ok; i++ {
		r := do(t, client, "POST", base+"/api/v1/users/", userJSON(), "Idempotency-Key", "after-"+testdb.Letters(8))
		ok = r.code == 201
		if !ok {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ok {
		t.Fatal("no recovery after redis came back")
	}
}

// TestThroughNginx: a real nginx balances three replicas. nginx talks to them from 127.0.0.3,
// the only trusted proxy; clients come from 127.0.0.2 and 127.0.0.4. A client that forges
// X-Forwarded-For still spends its own budget.
func TestThroughNginx(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nginx is not installed (.ci/run installs nginx-light)")
		}
		t.Skip("nginx is not installed: apt-get install nginx-light (CI installs it and never skips)")
	}
	env := redisEnv(t, "single")
	env["TRUSTED_PROXIES"] = "127.0.0.3/32"
	env["RATE_LIMIT_PER_MINUTE"] = "5"
	bases := fleet(t, 3, env)

	dir := t.TempDir()
	port := freePort(t)
	tmpl, err := os.ReadFile("../../deploy/nginx.conf.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	var ups strings.Builder
	for _, b := range bases {
		fmt.Fprintf(&ups, "    server %s;\n", strings.TrimPrefix(b, "http://"))
	}
	conf := strings.NewReplacer("{{DIR}}", dir, "{{LISTEN}}", fmt.Sprintf("127.0.0.1:%d", port), "{{BIND}}", "127.0.0.3").Replace(string(tmpl))
	conf = strings.Replace(conf, "{{UPSTREAMS}}\n", ups.String(), 1)
	if err := os.WriteFile(dir+"/nginx.conf", []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginx, "-t", "-p", dir, "-c", dir+"/nginx.conf").CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	process(t, "nginx", exec.Command(nginx, "-p", dir, "-c", dir+"/nginx.conf"))
	front := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHTTP(t, front+"/healthz")

	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	}
	mallory := from("127.0.0.2")
	count := map[int]int{}
	for i := 0; i < 8; i++ {
		r := do(t, mallory, "GET", front+"/api/v1/users/", "", "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		count[r.code]++
	}
	if count[200] != 5 || count[429] != 3 {
		t.Fatalf("forged X-Forwarded-For through nginx: %v, want 5 OK and 3 429", count)
	}
	if r := do(t, from("127.0.0.4"), "GET", front+"/api/v1/users/", ""); r.code != 200 {
		t.Errorf("another client shares the first one's budget: %d", r.code)
	}
	// Writes and idempotency work through the balancer too.
	if r := do(t, from("127.0.0.5"), "POST", front+"/api/v1/users/", userJSON(), "Idempotency-Key", "nginx-"+testdb.Letters(8)); r.code != 201 {
		t.Errorf("create through nginx: %d %s", r.code, r.body)
	}
}

// TestSentinel: the service finds its Redis primary through Redis Sentinel.
func TestSentinel(t *testing.T) {
	dir := t.TempDir()
	primary := freePort(t)
	redisServer(t, primary, dir)
	sentinelPort := freePort(t)
	conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor usersvc-primary 127.0.0.1 %d 1\n", sentinelPort, dir, primary)
	if err := os.WriteFile(dir+"/sentinel.conf", []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	process(t, "sentinel", exec.Command("redis-server", dir+"/sentinel.conf", "--sentinel"))
	for i := 0; ; i++ {
		out, _ := exec.Command("redis-cli", "-p", fmt.Sprint(sentinelPort), "sentinel", "get-master-addr-by-name", "usersvc-primary").Output()
		if strings.Contains(string(out), fmt.Sprint(primary)) {
			break
		}
		if i > 100 {
			t.Fatalf("sentinel does not know the primary: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	bases := fleet(t, 1, map[string]string{
		"REDIS_SENTINEL_ADDRS": fmt.Sprintf("127.0.0.1:%d", sentinelPort), "REDIS_SENTINEL_MASTER": "usersvc-primary",
		"RATE_LIMIT_ON_REDIS_ERROR": "deny", // a request only passes if Redis, found via Sentinel, answers
	})
	client := &http.Client{Timeout: 10 * time.Second}
	body, key := userJSON(), "sentinel-"+testdb.Letters(8)
	first := do(t, client, "POST", bases[0]+"/api/v1/users/", body, "Idempotency-Key", key)
	second := do(t, client, "POST", bases[0]+"/api/v1/users/", body, "Idempotency-Key", key)
	if first.code != 201 || second.code != 201 || second.body != first.body || second.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("through sentinel: %d %d %s", first.code, second.code, second.body)
	}
	out, err := exec.Command("redis-cli", "-p", fmt.Sprint(primary), "--scan", "--pattern", "usersvc:idem:*").Output()
	if err != nil || !strings.Contains(string(out), "usersvc:idem:{") {
		t.Errorf("record not in the sentinel's primary: %q %v", out, err)
	}
}
