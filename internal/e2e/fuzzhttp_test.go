package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/vault"
)

// TestFuzzHTTP is a bounded black-box mutation fuzzer against the real binary on loopback: random
// and mutated methods, paths, queries, headers and JSON bodies, with valid keys, ids, ETags and
// cursors mixed in. It fails on any 5xx, on any personal value it sent appearing in the log, and
// on the server's memory growing past a bound. FUZZ_HTTP_REQUESTS sets the count (10,000 in
// `make test`, 100,000 in `make fuzz-http`), FUZZ_HTTP_SEED replays a run, FUZZ_HTTP_TIMEOUT
// bounds it in time (default 10m).
func TestFuzzHTTP(t *testing.T) {
	total := envInt(t, "FUZZ_HTTP_REQUESTS", 10_000)
	seed := uint64(envInt(t, "FUZZ_HTTP_SEED", int(time.Now().UnixNano()%1e9)))
	limit := 10 * time.Minute
	if v := os.Getenv("FUZZ_HTTP_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("FUZZ_HTTP_TIMEOUT: %v", err)
		}
		limit = d
	}
	t.Logf("FUZZ_HTTP_SEED=%d FUZZ_HTTP_REQUESTS=%d", seed, total)

	cfg := testdb.New(t, "fuzz")
	port := freePort(t)
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL(cfg), fmt.Sprintf("PORT=%d", port),
		"REDIS_URL="+testdb.RedisURL(t), "REDIS_KEY_PREFIX=fuzz-"+strings.ToLower(testdb.Letters(6)),
		"PII_ENCRYPTION_KEYS=f1:"+vault.NewKeyMaterial(), "BLIND_INDEX_KEY="+vault.NewKeyMaterial(),
		"RATE_LIMIT_PER_MINUTE=1000000", "SHUTDOWN_DELAY=0s", "LOG_HASH_SECRET=fuzz-secret-fuzz-secret-fuzz-secret")
	out := process(t, "fuzzed replica", cmd)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHTTP(t, base+"/healthz")
	db, err := mysqldb.Open(context.Background(), cfg, mysqldb.PoolConfig{MaxOpen: 2, MaxIdle: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key, _, err := auth.Create(context.Background(), db, "fuzz", auth.AllScopes, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	readKey, _, err := auth.Create(context.Background(), db, "fuzz-read", []string{auth.ScopeUsersRead}, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	f := &fuzzer{base: base, keys: []string{key, key, key, readKey}, client: &http.Client{Timeout: 15 * time.Second}}
	// A few real users first, so that ids, ETags and cursors can be valid.
	for range 20 {
		f.send(rand.New(rand.NewPCG(seed, 0)), "POST", "/api/v1/users", f.validBody(), map[string]string{"Authorization": "Bearer " + key, "Content-Type": "application/json"})
	}
	rss0 := rssKB(t, cmd.Process.Pid)
	deadline := time.Now().Add(limit)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)+1))
			for next.Add(1) <= int64(total) && time.Now().Before(deadline) && f.failures.Load() < 20 {
				f.one(rng)
			}
		}()
	}
	wg.Wait()
	rss1 := rssKB(t, cmd.Process.Pid)
	for _, msg := range f.failed() {
		t.Error(msg)
	}
	if n := f.sent.Load(); n < int64(total) && f.failures.Load() < 20 {
		t.Errorf("only %d of %d requests in FUZZ_HTTP_TIMEOUT=%s", n, total, limit)
	}
	// The server's resident memory may grow with caches and pools, not with the request count.
	if grown := rss1 - rss0; grown > 150<<10 {
		t.Errorf("server RSS grew by %d MB over %d requests (%d -> %d MB)", grown>>10, f.sent.Load(), rss0>>10, rss1>>10)
	}
	f.mu.Lock()
	if v := findAny(out.String(), f.personal); v != "" {
		t.Errorf("the log holds a personal value the fuzzer sent (%s...)", v[:3])
	}
	f.mu.Unlock()
	t.Logf("%d requests, statuses %v, RSS %d -> %d MB", f.sent.Load(), f.statusCounts(), rss0>>10, rss1>>10)
}

type fuzzer struct {
	base     string
	keys     []string
	client   *http.Client
	sent     atomic.Int64
	failures atomic.Int64

	mu       sync.Mutex
	ids      []string
	etags    map[string]string
	cursors  []string
	personal map[string]bool
	statuses map[int]int
	messages []string
}

var fuzzMethods = []string{"GET", "GET", "GET", "POST", "POST", "PUT", "PATCH", "PATCH", "DELETE", "HEAD", "OPTIONS"}

var fuzzPaths = []string{"/api/v1/users", "/api/v1/users/", "/api/v1/users/search", "/api/v1/users/lookup",
	"/api/v1/users/{id}", "/api/v1/users/{id}", "/api/v1/users/{id}/restore", "/api/v1/users/{id}/audit",
	"/api/v1/users/{id}/erase", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/api", "/api/v2/users"}

var fuzzRoutes = [][2]string{{"POST", "/api/v1/users"}, {"POST", "/api/v1/users"}, {"GET", "/api/v1/users"},
	{"GET", "/api/v1/users/search"}, {"POST", "/api/v1/users/lookup"}, {"GET", "/api/v1/users/{id}"}, {"GET", "/api/v1/users/{id}"},
	{"PUT", "/api/v1/users/{id}"}, {"PATCH", "/api/v1/users/{id}"}, {"PATCH", "/api/v1/users/{id}"}, {"DELETE", "/api/v1/users/{id}"},
	{"POST", "/api/v1/users/{id}/restore"}, {"GET", "/api/v1/users/{id}/audit"}, {"POST", "/api/v1/users/{id}/erase"}}

var fuzzFields = []string{"name", "email", "primary_mobile", "secondary_mobile", "aadhaar", "pan", "date_of_birth",
	"place_of_birth", "current_address", "permanent_address", "idempotency_key", "version", "is_active", "reason", "id", "created_at"}

var fuzzStrings = []string{"", " ", "a", "null", "0", "-1", "9999999999999999999999", "1e309", "\u202e", "\u200b", "\ufffd",
	"ｒａｊｅｓｈ@example.com", "r\u0430jesh@example.com", "'; DROP TABLE users; --", "../../etc/passwd", "%00", "\x00",
	strings.Repeat("x", 300), strings.Repeat("é", 1100), "2999-01-01", "0000-00-00", "1900-02-29", "+91 98765 43210",
	"234123412346", "ABCDE1234F", "<script>", "{{7*7}}", "\\", "\"", "c2.AAAA.BBBB", "c1.MjUzNDAyMzAwODAwMDAwMDAw"}

// one sends a random request: usually a plausible one with one thing changed, sometimes noise.
func (f *fuzzer) one(rng *rand.Rand) {
	method := fuzzMethods[rng.IntN(len(fuzzMethods))]
	tmpl := fuzzPaths[rng.IntN(len(fuzzPaths))]
	if rng.IntN(2) == 0 { // half the time a route that exists
		rt := fuzzRoutes[rng.IntN(len(fuzzRoutes))]
		method, tmpl = rt[0], rt[1]
	}
	if rng.IntN(20) == 0 {
		method = strings.ToUpper(randToken(rng, 1+rng.IntN(12)))
	}
	path := strings.ReplaceAll(tmpl, "{id}", f.pickID(rng))
	switch rng.IntN(12) {
	case 0:
		path += "/" + url.PathEscape(fuzzStrings[rng.IntN(len(fuzzStrings))])
	case 1:
		path = "/" + randToken(rng, rng.IntN(40))
	case 2:
		path += "/"
	}
	q := url.Values{}
	for range rng.IntN(4) {
		name := []string{"page", "page_size", "cursor", "q", "x"}[rng.IntN(5)]
		v := fuzzStrings[rng.IntN(len(fuzzStrings))]
		switch rng.IntN(3) {
		case 0:
			v = strconv.Itoa(rng.IntN(200) - 20)
		case 1:
			if c := f.pickCursor(rng); c != "" {
				v = c
				if rng.IntN(2) == 0 {
					b := []byte(v)
					b[rng.IntN(len(b))] ^= byte(1 + rng.IntN(60))
					v = string(b)
				}
			}
		}
		q.Add(name, v)
	}
	target := path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	h := map[string]string{}
	switch rng.IntN(10) {
	case 0: // no credentials
	case 1:
		h["Authorization"] = "Bearer " + randToken(rng, 40)
	case 2:
		h["Authorization"] = fuzzStrings[rng.IntN(len(fuzzStrings))]
	default:
		h["Authorization"] = "Bearer " + f.keys[rng.IntN(len(f.keys))]
	}
	if rng.IntN(4) == 0 {
		h["Idempotency-Key"] = []string{"fuzz-k", randToken(rng, 1+rng.IntN(30)), strings.Repeat("k", 300)}[rng.IntN(3)]
	}
	if rng.IntN(4) == 0 {
		h["If-Match"] = []string{`"` + f.etagOf(path) + `"`, "*", `"nope"`, "W/" + `"x"`, randToken(rng, 10)}[rng.IntN(5)]
	}
	if rng.IntN(10) == 0 {
		h["X-Request-ID"] = randToken(rng, rng.IntN(200))
	}
	if rng.IntN(10) == 0 {
		h["X-Forwarded-For"] = fmt.Sprintf("10.%d.%d.%d", rng.IntN(256), rng.IntN(256), rng.IntN(256))
	}
	var body []byte
	if method != "GET" && method != "HEAD" && rng.IntN(5) != 0 {
		body = f.mutatedBody(rng)
		h["Content-Type"] = "application/json"
		if rng.IntN(8) == 0 {
			h["Content-Type"] = []string{"text/plain", "application/merge-patch+json", "", "application/json; charset=latin1"}[rng.IntN(4)]
		}
	}
	f.send(rng, method, target, body, h)
}

// validBody is a create request with fresh values; they are remembered for the log check.
func (f *fuzzer) validBody() []byte {
	var m map[string]any
	_ = json.Unmarshal([]byte(newUserJSON(false)), &m)
	f.mu.Lock()
	if f.personal == nil {
		f.personal = map[string]bool{}
	}
	for _, k := range []string{"email", "primary_mobile", "aadhaar", "pan"} {
		f.personal[m[k].(string)] = true
	}
	f.mu.Unlock()
	b, _ := json.Marshal(m)
	return b
}

// mutatedBody is a valid body with fields dropped, retyped or replaced, or plain noise.
func (f *fuzzer) mutatedBody(rng *rand.Rand) []byte {
	if rng.IntN(10) == 0 {
		noise := make([]byte, rng.IntN(200))
		for i := range noise {
			noise[i] = byte(rng.IntN(256))
		}
		return noise
	}
	var m map[string]any
	_ = json.Unmarshal(f.validBody(), &m)
	for range max(0, rng.IntN(6)-2) { // half the bodies unchanged
		k := fuzzFields[rng.IntN(len(fuzzFields))]
		switch rng.IntN(7) {
		case 0:
			delete(m, k)
		case 1:
			m[k] = rng.IntN(1 << 30)
		case 2:
			m[k] = nil
		case 3:
			m[k] = []any{"a", 1}
		case 4:
			m[k] = map[string]any{"x": "y"}
		case 5:
			m[k] = true
		default:
			m[k] = fuzzStrings[rng.IntN(len(fuzzStrings))]
		}
	}
	b, _ := json.Marshal(m)
	switch rng.IntN(16) {
	case 0:
		b = b[:rng.IntN(len(b)+1)] // truncated
	case 1:
		i := rng.IntN(len(b) + 1)
		b = append(b[:i:i], append([]byte{0xff, 0xfe}, b[i:]...)...) // invalid UTF-8
	case 2:
		b = []byte(`[` + string(b) + `]`)
	}
	return b
}

func (f *fuzzer) send(rng *rand.Rand, method, target string, body []byte, h map[string]string) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, f.base+target, rd)
	if err != nil {
		return // a request Go itself refuses to make
	}
	for k, v := range h {
		if v != "" && httpguts.ValidHeaderFieldValue(v) { // values Go's client would refuse to send
			req.Header.Set(k, v)
		}
	}
	resp, err := f.client.Do(req)
	f.sent.Add(1)
	if err != nil {
		f.fail(fmt.Sprintf("%s %s: %v", method, target, err))
		return
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	f.mu.Lock()
	if f.statuses == nil {
		f.statuses = map[int]int{}
	}
	f.statuses[resp.StatusCode]++
	f.mu.Unlock()
	if resp.StatusCode >= 500 {
		f.fail(fmt.Sprintf("%s %s answered %d: %.300s", method, target, resp.StatusCode, b))
		return
	}
	var u struct {
		ID         string `json:"id"`
		NextCursor string `json:"next_cursor"`
	}
	if json.Unmarshal(b, &u) != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(u.ID) == 36 && resp.Header.Get("ETag") != "" {
		if f.etags == nil {
			f.etags = map[string]string{}
		}
		if _, ok := f.etags[u.ID]; !ok {
			f.ids = append(f.ids, u.ID)
		}
		f.etags[u.ID] = strings.Trim(resp.Header.Get("ETag"), `"`)
	}
	if u.NextCursor != "" && len(f.cursors) < 100 {
		f.cursors = append(f.cursors, u.NextCursor)
	}
}
