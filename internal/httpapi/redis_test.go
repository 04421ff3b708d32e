package httpapi_test

import (
	"context"

	"database/sql"
	"fmt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func countRows(t *testing.T, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIdempotentCreateReplays(t *testing.T) {
	e := newEnv(t, false)
	p := newPerson()
	key := "create-" + randLetters(12)
	first := e.do(t, "POST", "/api/v1/users/", p, "Idempotency-Key", key)
	if first.Code != 201 || first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	if first.Header.Get("Idempotency-Key-TTL") != "3600" {
		t.Errorf("TTL header: %q", first.Header.Get("Idempotency-Key-TTL"))
	}
	// Same key, same body (keys reordered, idempotency_key in the body too): byte-identical replay.
	again := e.do(t, "POST", "/api/v1/users", `{"pan":"`+p["pan"].(string)+`",`+strings.TrimPrefix(mustJSON(p.without("pan").with("idempotency_key", key)), "{"), "Idempotency-Key", key)
	if again.Code != 201 || string(again.Body) != string(first.Body) || again.Header.Get("Idempotent-Replayed") != "true" ||
		again.Header.Get("ETag") != first.Header.Get("ETag") || again.Header.Get("Location") != first.Header.Get("Location") {
		t.Fatalf("replay differs: %d %s %v", again.Code, again.Body, again.Header)
	}
	id := first.JSON(t)["id"].(string)
	if n := countRows(t, e.db, "SELECT COUNT(*) FROM user_audit WHERE user_id = ?", id); n != 1 {
		t.Errorf("audit rows %d, want 1: the create ran twice", n)
	}
	// Same key, different body: 422.
	r := e.do(t, "POST", "/api/v1/users/", newPerson(), "Idempotency-Key", key)
	if r.Code != 422 || r.JSON(t)["code"] != "idempotency_key_reused" {
		t.Errorf("reused key: %d %s", r.Code, r.Body)
	}
	// The body field alone works like the header; header and body disagreeing is a 400.
	bodyKey := "body-" + randLetters(12)
	p2 := newPerson().with("idempotency_key", bodyKey)
	r1 := e.do(t, "POST", "/api/v1/users/", p2)
	r2 := e.do(t, "POST", "/api/v1/users/", p2)
	if r1.Code != 201 || string(r2.Body) != string(r1.Body) || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("body key: %d %d", r1.Code, r2.Code)
	}
	if r := e.do(t, "POST", "/api/v1/users/", p2, "Idempotency-Key", "other-"+bodyKey); r.Code != 400 {
		t.Errorf("header/body mismatch: %d %s", r.Code, r.Body)
	}
	// A key is scoped to the route: the same key on an update is a different record.
	if r := e.do(t, "PUT", "/api/v1/users/"+id, map[string]any{"name": "Scoped Key"}, "Idempotency-Key", key); r.Code != 200 {
		t.Errorf("same key on another route: %d %s", r.Code, r.Body)
	}
	// A failed validation is stored too: the retry gets the same 422 without running again.
	bad := newPerson().with("pan", "bad")
	k3 := "bad-" + randLetters(8)
	b1 := e.do(t, "POST", "/api/v1/users/", bad, "Idempotency-Key", k3)
	b2 := e.do(t, "POST", "/api/v1/users/", bad, "Idempotency-Key", k3)
	if b1.Code != 422 || b2.Code != 422 || b2.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("4xx replay: %d %d", b1.Code, b2.Code)
	}
	if r := e.do(t, "POST", "/api/v1/users/", newPerson(), "Idempotency-Key", strings.Repeat("k", 256)); r.Code != 400 {
		t.Errorf("oversized key: %d", r.Code)
	}
}

func mustJSON(v any) string {
	r := httptest.NewRecorder()
	_ = jsonEncode(r, v)
	return strings.TrimSpace(r.Body.String())
}

func TestIdempotentUpdateDeleteRestore(t *testing.T) {
	e := newEnv(t, false)
	u := e.create(t, newPerson())
	path := "/api/v1/users/" + u["id"].(string)
	etag := `"` + u["version"].(string) + `"`
	k := "upd-" + randLetters(10)
	r1 := e.do(t, "PUT", path, map[string]any{"name": "Once Only"}, "Idempotency-Key", k, "If-Match", etag)
	r2 := e.do(t, "PUT", path, map[string]any{"name": "Once Only"}, "Idempotency-Key", k, "If-Match", etag)
	// Without the key the second request would be a 412 (stale If-Match): the replay proves it did not run.
	if r1.Code != 200 || r2.Code != 200 || string(r1.Body) != string(r2.Body) || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("update replay: %d %d", r1.Code, r2.Code)
	}
	kd := "del-" + randLetters(10)
	d1 := e.do(t, "DELETE", path, nil, "Idempotency-Key", kd)
	d2 := e.do(t, "DELETE", path, nil, "Idempotency-Key", kd)
	if d1.Code != 200 || d2.Code != 200 || d2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("delete replay: %d %d %s", d1.Code, d2.Code, d2.Body)
	}
	kr := "res-" + randLetters(10)
	s1 := e.do(t, "POST", path+"/restore", nil, "Idempotency-Key", kr)
	s2 := e.do(t, "POST", path+"/restore", nil, "Idempotency-Key", kr)
	if s1.Code != 200 || s2.Code != 200 || string(s1.Body) != string(s2.Body) {
		t.Fatalf("restore replay: %d %d", s1.Code, s2.Code)
	}
	if n := countRows(t, e.db, "SELECT COUNT(*) FROM user_audit WHERE user_id = ?", u["id"]); n != 4 {
		t.Errorf("audit rows %d, want 4 (create, update, delete, restore)", n)
	}
}

// The same key while the first request still runs: 409. The first request is held on a row lock.
func TestIdempotencyKeyInFlight(t *testing.T) {
	e := newEnv(t, false)
	u := e.create(t, newPerson())
	path := "/api/v1/users/" + u["id"].(string)
	tx, err := e.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("SELECT id FROM users WHERE id = ? FOR UPDATE", u["id"]); err != nil {
		t.Fatal(err)
	}
	k := "inflight-" + randLetters(8)
	var wg sync.WaitGroup
	var first response
	wg.Add(1)
	go func() {
		defer wg.Done()
		first = e.do(t, "PATCH", path, map[string]any{"name": "Slow Writer"}, "Idempotency-Key", k)
	}()
	time.Sleep(200 * time.Millisecond)
	second := e.do(t, "PATCH", path, map[string]any{"name": "Slow Writer"}, "Idempotency-Key", k)
	if second.Code != 409 || second.Header.Get("Retry-After") == "" || second.JSON(t)["code"] != "idempotency_key_in_flight" {
		t.Errorf("in flight: %d %s", second.Code, second.Body)
	}
	_ = tx.Rollback()
	wg.Wait()
	if first.Code != 200 {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	third := e.do(t, "PATCH", path, map[string]any{"name": "Slow Writer"}, "Idempotency-Key", k)
	if third.Code != 200 || third.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("after completion: %d", third.Code)
	}
}

// The crash window: the change committed in MySQL but its Redis record is missing (Redis lost it,
// or the replica died before writing it). The retry must not create a second user, and must
// answer as the first answer did.
func TestIdempotencySurvivesLostRedisRecord(t *testing.T) {
	e := newEnv(t, false)
	p := newPerson()
	k := "lost-" + randLetters(10)
	first := e.do(t, "POST", "/api/v1/users/", p, "Idempotency-Key", k)
	if first.Code != 201 {
		t.Fatal(first.Code)
	}
	e.forgetRedisKeys(t)
	retry := e.do(t, "POST", "/api/v1/users/", p, "Idempotency-Key", k)
	if retry.Code != 201 || retry.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after lost record: %d %s", retry.Code, retry.Body)
	}
	if retry.JSON(t)["id"] != first.JSON(t)["id"] || retry.Header.Get("Location") != first.Header.Get("Location") ||
		retry.Header.Get("ETag") != first.Header.Get("ETag") {
		t.Errorf("retry answered differently:\n%s\n%s", first.Body, retry.Body)
	}
	if n := countRows(t, e.db, "SELECT COUNT(*) FROM users WHERE email_key = ?", strings.ToLower(p["email"].(string))); n != 1 {
		t.Fatalf("%d users", n)
	}
	if n := countRows(t, e.db, "SELECT COUNT(*) FROM user_audit WHERE user_id = ?", first.JSON(t)["id"]); n != 1 {
		t.Errorf("audit rows %d", n)
	}
	// A different request under the lost key is still refused.
	e.forgetRedisKeys(t)
	if r := e.do(t, "POST", "/api/v1/users/", newPerson(), "Idempotency-Key", k); r.Code != 422 {
		t.Errorf("reuse after lost record: %d %s", r.Code, r.Body)
	}
	// Same for an update: the MySQL row stops a second application.
	id := first.JSON(t)["id"].(string)
	ku := "lost-upd-" + randLetters(6)
	u1 := e.do(t, "PUT", "/api/v1/users/"+id, map[string]any{"current_address": "Changed once, Chennai 600001"}, "Idempotency-Key", ku)
	e.forgetRedisKeys(t)
	u2 := e.do(t, "PUT", "/api/v1/users/"+id, map[string]any{"current_address": "Changed once, Chennai 600001"}, "Idempotency-Key", ku)
	if u1.Code != 200 || u2.Code != 200 || u2.Header.Get("Idempotent-Replayed") != "true" || u2.JSON(t)["version"] != u1.JSON(t)["version"] {
		t.Errorf("update after lost record: %d %d %s", u1.Code, u2.Code, u2.Body)
	}
}

// forgetRedisKeys deletes this environment's idempotency records, as a Redis failover would.
func (e *env) forgetRedisKeys(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	iter := e.rdb.Scan(ctx, 0, e.prefix+":idem:*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := e.rdb.Del(ctx, iter.Val()).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentSameKeyMakesOneUser(t *testing.T) {
	e := newEnv(t, false)
	p := newPerson()
	k := "race-" + randLetters(10)
	const n = 10
	res := make([]response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			res[i] = e.do(t, "POST", "/api/v1/users/", p, "Idempotency-Key", k)
		}(i)
	}
	close(start)
	wg.Wait()
	// The followers wait for the first request and replay its answer: all identical.
	for i, r := range res {
		if r.Code != 201 || string(r.Body) != string(res[0].Body) {
			t.Errorf("response %d: %d %s", i, r.Code, r.Body)
		}
	}
	if n := countRows(t, e.db, "SELECT COUNT(*) FROM users WHERE email_key = ?", strings.ToLower(p["email"].(string))); n != 1 {
		t.Fatalf("%d users", n)
	}
}

func TestRedisDownPolicies(t *testing.T) {
	dead := "redis://127.0.0.1:1/0" // nothing listens on port 1
	allow := newEnvWith(t, envOptions{redisURL: dead, perMinute: 5})
	// Without a key, requests proceed (policy allow), and each decision is counted.
	if r := allow.do(t, "POST", "/api/v1/users/", newPerson()); r.Code != 201 {
		t.Fatalf("no key, redis down: %d %s", r.Code, r.Body)
	}
	if testutil.ToFloat64(allow.metrics.RateLimitDecisions.WithLabelValues("allow")) == 0 || !strings.Contains(allow.logs.String(), "rate limiter unavailable") {
		t.Error("redis error not counted or logged")
	}
	// With a key, we cannot promise idempotency: 503 with Retry-After, and nothing is created.
	p := newPerson()
	r := allow.do(t, "POST", "/api/v1/users/", p, "Idempotency-Key", "k-"+randLetters(6))
	if r.Code != 503 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("key, redis down: %d %s", r.Code, r.Body)
	}
	if n := countRows(t, allow.db, "SELECT COUNT(*) FROM users WHERE email_key = ?", strings.ToLower(p["email"].(string))); n != 0 {
		t.Fatal("a 503 created the user")
	}
	deny := newEnvWith(t, envOptions{redisURL: dead, denyOnRedisErr: true})
	if r := deny.do(t, "GET", "/api/v1/users/", nil); r.Code != 503 || r.Header.Get("Retry-After") == "" {
		t.Errorf("deny policy: %d", r.Code)
	}
	if r := deny.do(t, "GET", "/healthz", nil); r.Code != 200 {
		t.Errorf("healthz must not depend on redis: %d", r.Code)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnvWith(t, envOptions{perMinute: 5})
	for i := 1; i <= 5; i++ {
		r := e.do(t, "GET", "/api/v1/users/", nil)
		if r.Code != 200 {
			t.Fatalf("request %d: %d", i, r.Code)
		}
		if got, want := r.Header.Get("RateLimit-Policy"), `"default";q=5;w=60`; got != want {
			t.Errorf("RateLimit-Policy %q, want %q", got, want)
		}
		if got := r.Header.Get("RateLimit"); !strings.HasPrefix(got, fmt.Sprintf(`"default";r=%d;t=`, 5-i)) {
			t.Errorf("request %d: RateLimit %q", i, got)
		}
	}
	r := e.do(t, "GET", "/api/v1/users/", nil)
	if r.Code != 429 || r.Header.Get("Retry-After") == "" || r.JSON(t)["code"] != "rate_limited" {
		t.Fatalf("6th: %d %v %s", r.Code, r.Header, r.Body)
	}
	problemFields(t, r)
	// Health is exempt.
	if r := e.do(t, "GET", "/healthz", nil); r.Code != 200 || r.Header.Get("RateLimit") != "" {
		t.Errorf("healthz limited: %d", r.Code)
	}
	// A client cannot escape by claiming another address: no proxy is trusted here.
	for _, xff := range []string{"203.0.113.9", "198.51.100.1, 203.0.113.10"} {
		if r := e.do(t, "GET", "/api/v1/users/", nil, "X-Forwarded-For", xff); r.Code != 429 {
			t.Errorf("X-Forwarded-For %q escaped the limit: %d", xff, r.Code)
		}
	}
}

func TestWriteRateLimitClass(t *testing.T) {
	e := newEnvWith(t, envOptions{perMinute: 100, writesPerMin: 2})
	for i := 0; i < 2; i++ {
		if r := e.do(t, "POST", "/api/v1/users/", newPerson()); r.Code != 201 {
			t.Fatalf("write %d: %d", i, r.Code)
		}
	}
	r := e.do(t, "POST", "/api/v1/users/", newPerson())
	if r.Code != 429 || !strings.Contains(r.Header.Get("RateLimit-Policy"), `"writes";q=2;w=60`) {
		t.Fatalf("3rd write: %d %v", r.Code, r.Header)
	}
	if r := e.do(t, "GET", "/api/v1/users/", nil); r.Code != 200 {
		t.Errorf("reads limited by the write class: %d", r.Code)
	}
}

// With the load balancer's network trusted, X-Forwarded-For is read right to left, skipping
// trusted hops: the client is the first untrusted address, and whatever it puts further left
// is ignored. httptest's peer address is 192.0.2.1.
func TestTrustedProxyClientIP(t *testing.T) {
	e := newEnvWith(t, envOptions{perMinute: 2, trusted: []string{"192.0.2.0/24"}})
	limited := func(xff string) int {
		return e.do(t, "GET", "/api/v1/users/", nil, "X-Forwarded-For", xff).Code
	}
	// Client 203.0.113.5 behind the balancer: two allowed, then 429.
	for i := 0; i < 2; i++ {
		if c := limited("203.0.113.5"); c != 200 {
			t.Fatalf("%d", c)
		}
	}
	if c := limited("203.0.113.5"); c != 429 {
		t.Fatalf("third: %d", c)
	}
	// The same client prepending a fake address is still 203.0.113.5.
	if c := limited("6.6.6.6, 203.0.113.5"); c != 429 {
		t.Errorf("spoofed leftmost entry escaped: %d", c)
	}
	// Trusted hops on the right are skipped.
	if c := limited("203.0.113.5, 192.0.2.77"); c != 429 {
		t.Errorf("trusted hop not skipped: %d", c)
	}
	// Another client has its own budget.
	if c := limited("203.0.113.6"); c != 200 {
		t.Errorf("other client: %d", c)
	}
}

var _ = http.StatusOK
