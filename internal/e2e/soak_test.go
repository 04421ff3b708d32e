package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usersvc/usersvc/internal/testdb"
)

// TestSoak runs a mixed workload (creates, reads, updates, lists, searches, deletes) against the
// real binary for SOAK_DURATION (15s in `make test`, 10m in `make soak`), sampling the server's
// RSS and goroutines from /metrics. It fails on any 5xx, or when RSS or goroutines in the last
// third of the run exceed the first third by more than a margin (growth without bound).
func TestSoak(t *testing.T) {
	dur := 15 * time.Second
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SOAK_DURATION: %v", err)
		}
		dur = d
	}
	bases := fleet(t, 1, map[string]string{"REDIS_URL": testdb.RedisURL(t), "RATE_LIMIT_PER_MINUTE": "1000000",
		"REDIS_KEY_PREFIX": "soak-" + strings.ToLower(testdb.Letters(6))})
	base := bases[0]
	client := &http.Client{Timeout: 10 * time.Second}
	var (
		ids             sync.Map
		count, server5x atomic.Int64
		wg              sync.WaitGroup
	)
	stop := time.Now().Add(dur)
	pickID := func() string {
		var id string
		ids.Range(func(k, _ any) bool { id = k.(string); return rand.IntN(4) != 0 })
		return id
	}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				var r result
				switch n := rand.IntN(10); {
				case n < 3:
					r = do(t, client, "POST", base+"/api/v1/users/", newUserJSON(false), "Idempotency-Key", "soak-"+testdb.Letters(12))
					if r.code == 201 {
						id := r.body[strings.Index(r.body, `"id":"`)+6:]
						ids.Store(id[:36], true)
					}
				case n < 6:
					if id := pickID(); id != "" {
						r = do(t, client, "GET", base+"/api/v1/users/"+id, "")
					}
				case n < 7:
					if id := pickID(); id != "" {
						r = do(t, client, "PATCH", base+"/api/v1/users/"+id, `{"current_address":"`+fmt.Sprint(rand.IntN(1000))+` Soak Road, Pune 411001"}`)
					}
				case n < 8:
					r = do(t, client, "GET", base+"/api/v1/users/?page="+fmt.Sprint(1+rand.IntN(5)), "")
				case n < 9:
					r = do(t, client, "GET", base+"/api/v1/users/search/?q=fleet", "")
				default:
					if id := pickID(); id != "" {
						ids.Delete(id)
						r = do(t, client, "DELETE", base+"/api/v1/users/"+id, "")
					}
				}
				count.Add(1)
				if r.code >= 500 || r.code == -1 {
					server5x.Add(1)
					t.Errorf("%d: %.200s", r.code, r.body)
				}
			}
		}()
	}
	type sample struct{ rss, goroutines float64 }
	var samples []sample
	for time.Now().Before(stop) {
		time.Sleep(time.Second)
		body := do(t, client, "GET", base+"/metrics", "").body
		samples = append(samples, sample{metric(body, "process_resident_memory_bytes"), metric(body, "go_goroutines")})
	}
	wg.Wait()
	if len(samples) < 6 {
		t.Fatalf("only %d samples", len(samples))
	}
	avg := func(s []sample) (r, g float64) {
		for _, x := range s {
			r += x.rss
			g += x.goroutines
		}
		return r / float64(len(s)), g / float64(len(s))
	}
	third := len(samples) / 3
	r1, g1 := avg(samples[:third])
	r3, g3 := avg(samples[len(samples)-third:])
	t.Logf("%d requests in %v; RSS %.0f -> %.0f MB; goroutines %.0f -> %.0f", count.Load(), dur, r1/1e6, r3/1e6, g1, g3)
	if r3 > r1*1.5+20e6 {
		t.Errorf("RSS grew from %.0f to %.0f MB", r1/1e6, r3/1e6)
	}
	if g3 > g1*1.5+50 {
		t.Errorf("goroutines grew from %.0f to %.0f", g1, g3)
	}
}

func metric(body, name string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_, _ = fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}
