package httpapi_test

// Regression tests for the findings of the outside probe (issue 12): each failed before its fix.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/google/uuid"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/search"
)

// TestMetricsStayBoundedUnderMadeUpMethodsAndPaths: label values come from closed sets, so
// thousands of requests with distinct made-up methods and paths add a fixed number of series.
func TestMetricsStayBoundedUnderMadeUpMethodsAndPaths(t *testing.T) {
	e := newEnv(t, true)
	series := func() int {
		mfs, err := e.metrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "usersvc_http_") {
				n += len(mf.GetMetric())
			}
		}
		return n
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	const n = 3000
	for i := range n {
		method := "M" + strings.ToUpper(randLetters(12))
		path := fmt.Sprintf("/api/v1/%s/%d", strings.ToLower(randLetters(10)), i)
		if i%2 == 0 {
			path = "/" + strings.ToLower(randLetters(16))
		}
		req := httptest.NewRequest(method, path, nil)
		e.h.ServeHTTP(httptest.NewRecorder(), req)
	}
	// Routes × known methods × statuses bound the series; made-up values all share "other" and
	// "unmatched".
	if got := series(); got > 20 {
		t.Errorf("%d HTTP series after %d made-up requests, want at most 20", got, n)
	}
	if grown := int64(heap()) - int64(before); grown > 16<<20 {
		t.Errorf("heap grew by %d MB over %d made-up requests", grown>>20, n)
	}
	body := httptest.NewRecorder()
	e.metrics.Handler().ServeHTTP(body, httptest.NewRequest("GET", "/metrics", nil))
	if strings.Contains(body.Body.String(), `method="M`) {
		t.Errorf("a made-up method became a label value")
	}
}

// TestUnknownAPIRoutesAreRateLimited: 404 and 405 under /api count against the limit.
func TestUnknownAPIRoutesAreRateLimited(t *testing.T) {
	e := newEnvWith(t, envOptions{perMinute: 3})
	codes := []int{}
	for _, rq := range [][2]string{{"GET", "/api/v1/nope"}, {"BREW", "/api/v1/users"}, {"GET", "/api/v2/x"}, {"GET", "/api/v1/nope"}} {
		codes = append(codes, e.do(t, rq[0], rq[1], nil).Code)
	}
	if fmt.Sprint(codes) != "[404 405 404 429]" {
		t.Errorf("statuses %v, want [404 405 404 429]", codes)
	}
	// Outside /api nothing is limited.
	if r := e.do(t, "GET", "/healthz", nil); r.Code != 200 {
		t.Errorf("healthz: %d", r.Code)
	}
}

// TestErasureLeavesNoCopy: after an erasure no stored copy of the person remains: not in the
// replays of its Idempotency-Keys (Redis), not in any table, not in the search index; and a retry
// of a keyed request about the person answers 410 Gone without personal data.
func TestErasureLeavesNoCopy(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	tag := strings.ToLower(randLetters(8))
	p := newPerson().with("name", "Zyxwq Qjvbk "+tag, "place_of_birth", "Placeofbirth "+tag,
		"current_address", "Currentaddress "+tag+" Road, Pune", "permanent_address", "Permanentaddress "+tag+" Lane, Goa")
	key := "erase-" + tag
	r := e.do(t, "POST", "/api/v1/users", p, "Idempotency-Key", key)
	if r.Code != 201 {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	id := r.JSON(t)["id"].(string)
	if _, err := search.Compact(ctx, e.db); err != nil { // the postings are in the index now
		t.Fatal(err)
	}
	patch := map[string]any{"current_address": "Newaddress " + tag + " Street, Delhi"}
	if r := e.do(t, "PATCH", "/api/v1/users/"+id, patch, "Idempotency-Key", key+"-patch"); r.Code != 200 {
		t.Fatalf("patch: %d %s", r.Code, r.Body)
	}
	if r := e.do(t, "POST", "/api/v1/users", p, "Idempotency-Key", key); r.Code != 201 || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay before erasure: %d %s", r.Code, r.Body)
	}
	var seq uint32
	if err := e.db.QueryRow("SELECT seq FROM users WHERE id = ?", id).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if r := e.do(t, "POST", "/api/v1/users/"+id+"/erase", nil); r.Code != 200 {
		t.Fatalf("erase: %d %s", r.Code, r.Body)
	}

	values := []string{p["name"].(string), p["email"].(string), p["primary_mobile"].(string), p["place_of_birth"].(string),
		p["current_address"].(string), p["permanent_address"].(string), "Newaddress " + tag, "Zyxwq", tag}
	// Retries of both keys: 410, nothing personal.
	for _, rq := range []struct {
		method, path, key string
		body              any
	}{{"POST", "/api/v1/users", key, p}, {"PATCH", "/api/v1/users/" + id, key + "-patch", patch}} {
		r := e.do(t, rq.method, rq.path, rq.body, "Idempotency-Key", rq.key)
		if r.Code != http.StatusGone || r.JSON(t)["code"] != "idempotency_key_erased" {
			t.Errorf("%s retry after erasure: %d %s", rq.method, r.Code, r.Body)
		}
		for _, v := range values {
			if strings.Contains(string(r.Body), v) {
				t.Errorf("%s retry after erasure answers personal data", rq.method)
			}
		}
	}
	// Every Redis value under the environment's prefix, stored bodies decoded.
	iter := e.rdb.Scan(ctx, 0, e.prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		var dump strings.Builder
		switch e.rdb.Type(ctx, k).Val() {
		case "string":
			raw := e.rdb.Get(ctx, k).Val()
			dump.WriteString(raw)
			var rec struct{ Body []byte }
			if json.Unmarshal([]byte(raw), &rec) == nil {
				dump.Write(rec.Body)
			}
		case "set":
			dump.WriteString(strings.Join(e.rdb.SMembers(ctx, k).Val(), ","))
		}
		if strings.Contains(dump.String(), id) {
			t.Errorf("redis key %s still refers to the erased user", k)
		}
		for _, v := range values {
			if strings.Contains(dump.String(), v) {
				t.Errorf("redis key %s holds a value of the erased person", k)
			}
		}
	}
	// Every table, every column.
	tables, err := queryStrings(ctx, e.db, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		lines, err := queryStrings(ctx, e.db, "SELECT CONCAT_WS('|', "+columnsOf(ctx, e.db, table)+") FROM `"+table+"`")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range lines {
			for _, v := range values {
				if strings.Contains(line, v) {
					t.Errorf("table %s holds a value of the erased person", table)
				}
			}
		}
	}
	var fp []byte
	if err := e.db.QueryRow("SELECT fingerprint FROM idempotency_keys WHERE user_id = ? LIMIT 1", id).Scan(&fp); err != nil || strings.Trim(string(fp), "\x00") != "" {
		t.Errorf("the idempotency row keeps the request's fingerprint (%v)", err)
	}
	// The index: the seq is under none of the person's grams.
	if held := gramsHolding(t, e, seq, search.DocGrams(p["name"].(string), p["email"].(string))); len(held) > 0 {
		t.Errorf("after erasure %d grams of the person's name and email still hold its seq: %q", len(held), held)
	}
}

// TestRenameForgetsOldGrams: a changed name or email cannot be rebuilt from the index.
func TestRenameForgetsOldGrams(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	p := newPerson().with("name", "Oldname Vqzx "+strings.ToLower(randLetters(6)))
	u := e.create(t, p)
	id := u["id"].(string)
	if _, err := search.Compact(ctx, e.db); err != nil {
		t.Fatal(err)
	}
	var seq uint32
	if err := e.db.QueryRow("SELECT seq FROM users WHERE id = ?", id).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	newEmail := "renamed." + strings.ToLower(randLetters(8)) + "@example.org"
	remember(sensitive.contact, newEmail)
	if r := e.do(t, "PATCH", "/api/v1/users/"+id, map[string]any{"name": "Newname Person", "email": newEmail}); r.Code != 200 {
		t.Fatalf("patch: %d %s", r.Code, r.Body)
	}
	old := search.DocGrams(p["name"].(string), p["email"].(string))
	cur := map[string]bool{}
	for _, g := range search.DocGrams("Newname Person", newEmail) {
		cur[g] = true
	}
	var onlyOld []string
	for _, g := range old {
		if !cur[g] {
			onlyOld = append(onlyOld, g)
		}
	}
	if held := gramsHolding(t, e, seq, onlyOld); len(held) > 0 {
		t.Errorf("after the rename the old grams %q still hold the user", held)
	}
	if _, err := search.Compact(ctx, e.db); err != nil {
		t.Fatal(err)
	}
	if held := gramsHolding(t, e, seq, search.DocGrams("Newname Person", newEmail)); len(held) != len(cur) {
		t.Errorf("after compaction the user is under %d of its %d new grams", len(held), len(cur))
	}
	r := e.do(t, "GET", "/api/v1/users/search?q=Newname+Person", nil)
	if r.Code != 200 || !strings.Contains(string(r.Body), id) {
		t.Errorf("search for the new name: %d %s", r.Code, r.Body)
	}
	if r := e.do(t, "GET", "/api/v1/users/search?q="+url.QueryEscape(p["name"].(string)), nil); strings.Contains(string(r.Body), id) {
		t.Errorf("search for the old name still finds the user")
	}
}

// gramsHolding decodes every segment bitmap of grams and returns the grams whose postings hold seq.
func gramsHolding(t *testing.T, e *env, seq uint32, grams []string) []string {
	t.Helper()
	var held []string
	for _, g := range grams {
		for _, blob := range segmentBlobs(t, e, g) {
			b := roaring.New()
			if err := b.UnmarshalBinary(blob); err != nil {
				t.Fatal(err)
			}
			if b.Contains(seq) {
				held = append(held, g)
			}
		}
	}
	return held
}

func segmentBlobs(t *testing.T, e *env, gram string) [][]byte {
	t.Helper()
	rows, err := e.db.Query("SELECT seqs FROM search_segments WHERE gram = ?", []byte(gram))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			t.Fatal(err)
		}
		out = append(out, blob)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLookAlikeEmailsOverHTTP: width and composition variants are the same address (409);
// invisible characters and mixed scripts are refused (422 naming email).
func TestLookAlikeEmailsOverHTTP(t *testing.T) {
	e := newEnv(t, false)
	local := "rajesh" + strings.ToLower(randLetters(6))
	e.create(t, newPerson().with("email", remember(sensitive.contact, local+"@example.com")))
	e.create(t, newPerson().with("email", remember(sensitive.contact, "jos\u00e9"+local+"@example.com")))
	fullwidth := ""
	for _, r := range local {
		fullwidth += string(r - 'a' + 'ａ')
	}
	for _, email := range []string{fullwidth + "@example.com", "jose\u0301" + local + "@example.com", strings.ToUpper(local) + "@EXAMPLE.com"} {
		r := e.do(t, "POST", "/api/v1/users", newPerson().with("email", remember(sensitive.contact, email)))
		if r.Code != 409 || !sameSet(problemFields(t, r), []string{"email"}) {
			t.Errorf("%q: %d %s, want 409 on email", email, r.Code, r.Body)
		}
	}
	for _, email := range []string{local[:3] + "\u200b" + local[3:] + "@example.com", local[:3] + "\u00ad" + local[3:] + "@example.com",
		"r\u0430" + local[2:] + "@example.com", local + "@\u0435xample.com", local + "@xn--xample-2of.com"} {
		r := e.do(t, "POST", "/api/v1/users", newPerson().with("email", remember(sensitive.contact, email)))
		if r.Code != 422 || !sameSet(problemFields(t, r), []string{"email"}) {
			t.Errorf("%q: %d %s, want 422 on email", email, r.Code, r.Body)
		}
	}
}

// TestTextFieldsRefuseInvisibleAndInvalid: invalid UTF-8, control, bidi and zero-width
// characters in names, places and addresses are refused, naming the field.
func TestTextFieldsRefuseInvisibleAndInvalid(t *testing.T) {
	e := newEnv(t, false)
	cases := map[string]string{
		"name":              "Raj\u202eesh Kumar",
		"place_of_birth":    "Mum\u200bbai",
		"current_address":   "12 MG Road\u2066, Pune 411001",
		"permanent_address": "12 MG Road\u00ad, Pune 411001",
	}
	for field, v := range cases {
		r := e.do(t, "POST", "/api/v1/users", newPerson().with(field, v))
		if r.Code != 422 || !sameSet(problemFields(t, r), []string{field}) {
			t.Errorf("%s with %q: %d %s", field, v, r.Code, r.Body)
		}
	}
	// Invalid UTF-8 in the raw body (encoding/json would store it as U+FFFD).
	raw, _ := json.Marshal(newPerson().with("name", "Rajesh XXKumar"))
	raw = []byte(strings.Replace(string(raw), "XX", "\xff\xfe", 1))
	if r := e.do(t, "POST", "/api/v1/users", raw); r.Code != 422 || !sameSet(problemFields(t, r), []string{"name"}) {
		t.Errorf("invalid UTF-8 in name: %d %s", r.Code, r.Body)
	}
	if r := e.do(t, "POST", "/api/v1/users", newPerson().with("name", "Rajesh \ufffd Kumar")); r.Code != 422 {
		t.Errorf("U+FFFD in name: %d", r.Code)
	}
	u := e.create(t, newPerson())
	if r := e.do(t, "PATCH", "/api/v1/users/"+u["id"].(string), map[string]any{"name": "Ra\u200bjesh"}); r.Code != 422 {
		t.Errorf("zero-width space in a PATCH: %d", r.Code)
	}
}

// TestReviveThroughCreateNeedsDeleteScope: re-creating a deleted person's e-mail revives that
// user only for a caller who may restore; others get 409 naming email.
func TestReviveThroughCreateNeedsDeleteScope(t *testing.T) {
	e := newEnv(t, false)
	p := newPerson()
	id := e.create(t, p)["id"].(string)
	if r := e.do(t, "DELETE", "/api/v1/users/"+id, nil); r.Code != 200 {
		t.Fatalf("delete: %d", r.Code)
	}
	writer := e.keyWith(t, auth.ScopeUsersWrite, auth.ScopeUsersRead)
	again := newPerson().with("email", p["email"])
	r := e.do(t, "POST", "/api/v1/users", again, "Authorization", writer)
	if r.Code != 409 || r.JSON(t)["code"] != "held_by_deleted_user" || !sameSet(problemFields(t, r), []string{"email"}) {
		t.Fatalf("write-only re-create of a deleted e-mail: %d %s", r.Code, r.Body)
	}
	if r := e.do(t, "GET", "/api/v1/users/"+id, nil); r.Code != 404 {
		t.Errorf("the deleted user came back: %d", r.Code)
	}
	r = e.do(t, "POST", "/api/v1/users", again) // every scope
	if r.Code != 201 || r.JSON(t)["id"] != id {
		t.Errorf("re-create with users:delete: %d %s", r.Code, r.Body)
	}
}

// TestForgedCursors: a cursor the service did not issue is a 422, never a 500.
func TestForgedCursors(t *testing.T) {
	e := newEnv(t, false)
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	id := uuid.NewString()
	for _, c := range []string{
		"c1." + enc("253402300800000000."+id), // year 10000
		"c1." + enc("9223372036854775807."+id),
		"c1." + enc("-9223372036854775808."+id),
		"c1." + enc("-62135596800000001."+id), // year 0
		"c2." + enc("1700000000000000."+id) + "." + enc("0123456789abcdef"),
		"c2." + enc("1700000000000000."+id),
	} {
		if r := e.do(t, "GET", "/api/v1/users?cursor="+url.QueryEscape(c), nil); r.Code != 422 || !sameSet(problemFields(t, r), []string{"cursor"}) {
			t.Errorf("cursor %q: %d %s", c, r.Code, r.Body)
		}
	}
	// An issued cursor with one character changed is refused too.
	for range 3 {
		e.create(t, newPerson())
	}
	next, _ := e.do(t, "GET", "/api/v1/users?page_size=1", nil).JSON(t)["next_cursor"].(string)
	if next == "" {
		t.Fatal("no next_cursor")
	}
	if r := e.do(t, "GET", "/api/v1/users?page_size=1&cursor="+url.QueryEscape(next), nil); r.Code != 200 {
		t.Fatalf("issued cursor: %d", r.Code)
	}
	tampered := []byte(next)
	tampered[5] ^= 1
	if r := e.do(t, "GET", "/api/v1/users?page_size=1&cursor="+url.QueryEscape(string(tampered)), nil); r.Code != 422 {
		t.Errorf("tampered cursor: %d", r.Code)
	}
}

// TestFieldErrorsAreCapped: 60,000 unknown keys make a short 422 that says how many were left out.
func TestFieldErrorsAreCapped(t *testing.T) {
	e := newEnv(t, false)
	var b strings.Builder
	b.WriteString("{")
	for i := range 60000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"k%d":1`, i)
	}
	b.WriteString("}")
	r := e.do(t, "POST", "/api/v1/users", b.String())
	if r.Code != 422 {
		t.Fatalf("%d", r.Code)
	}
	m := r.JSON(t)
	errs, _ := m["errors"].([]any)
	omitted, _ := m["errors_omitted"].(float64)
	if len(errs) != 50 || int(omitted)+len(errs) < 60000 || len(r.Body) > 16<<10 {
		t.Errorf("%d errors listed, %v omitted, %d bytes", len(errs), omitted, len(r.Body))
	}
	// One unknown key of 900 KB is not echoed back whole either.
	r = e.do(t, "POST", "/api/v1/users", `{"`+strings.Repeat("k", 900<<10)+`":1}`)
	if r.Code != 422 || len(r.Body) > 16<<10 {
		t.Errorf("a huge unknown key: %d, %d bytes", r.Code, len(r.Body))
	}
}

// TestAuditRequestIDsAreTheServers: two callers sending the same X-Request-ID get audit rows
// with distinct ids that the server made.
func TestAuditRequestIDsAreTheServers(t *testing.T) {
	e := newEnv(t, false)
	other := e.keyWith(t, auth.AllScopes...)
	a := e.do(t, "POST", "/api/v1/users", newPerson(), "X-Request-ID", "same-id")
	b := e.do(t, "POST", "/api/v1/users", newPerson(), "X-Request-ID", "same-id", "Authorization", other)
	if a.Code != 201 || b.Code != 201 {
		t.Fatalf("creates: %d %d", a.Code, b.Code)
	}
	var ids []string
	for _, r := range []response{a, b} {
		audit := e.do(t, "GET", "/api/v1/users/"+r.JSON(t)["id"].(string)+"/audit", nil).JSON(t)["data"].([]any)
		rid := audit[0].(map[string]any)["request_id"].(string)
		if rid != r.Header.Get("X-Request-ID") || uuid.Validate(rid) != nil {
			t.Errorf("audit request_id %q, response X-Request-ID %q", rid, r.Header.Get("X-Request-ID"))
		}
		ids = append(ids, rid)
	}
	if ids[0] == ids[1] || ids[0] == "same-id" {
		t.Errorf("audit request ids %v", ids)
	}
}

// TestClientDisconnectIsNotAServerFault: a request whose client went away is answered 499 (to
// nobody), logged once at INFO, and does not get past the rate limiter or authentication.
func TestClientDisconnectIsNotAServerFault(t *testing.T) {
	for _, limited := range []bool{false, true} {
		o := envOptions{}
		if limited {
			o.perMinute = 1000
		}
		e := newEnvWith(t, o)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req := httptest.NewRequest("GET", "/api/v1/users", nil).WithContext(ctx)
		req.Header.Set("Authorization", "Bearer "+e.key)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Code != 499 {
			t.Errorf("limited=%v: status %d, want 499", limited, rec.Code)
		}
		logs := e.logs.String()
		if strings.Contains(logs, `"level":"WARN"`) || strings.Contains(logs, `"level":"ERROR"`) {
			t.Errorf("limited=%v: a client's disconnect was logged as a server fault:\n%s", limited, logs)
		}
		if n := strings.Count(logs, `"status":499`); n != 1 {
			t.Errorf("limited=%v: %d access-log lines with status 499, want 1", limited, n)
		}
	}
}

// TestRebuildDropsLegacyPostings: postings that an older version left behind for a changed value
// (simulated by changing the row directly, without search.Forget) are gone after a rebuild.
func TestRebuildDropsLegacyPostings(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	p := newPerson().with("name", "Legacyname Wqxz")
	id := e.create(t, p)["id"].(string)
	if _, err := search.Compact(ctx, e.db); err != nil {
		t.Fatal(err)
	}
	var seq uint32
	if err := e.db.QueryRow("SELECT seq FROM users WHERE id = ?", id).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec("UPDATE users SET name = 'Other Person' WHERE id = ?", id); err != nil {
		t.Fatal(err)
	}
	old := search.DocGrams("Legacyname Wqxz", "")
	if held := gramsHolding(t, e, seq, old); len(held) == 0 {
		t.Fatal("the simulated legacy postings are not there")
	}
	if _, err := search.Rebuild(ctx, e.db, nil); err != nil {
		t.Fatal(err)
	}
	cur := map[string]bool{}
	for _, g := range search.DocGrams("Other Person", p["email"].(string)) {
		cur[g] = true
	}
	for _, g := range gramsHolding(t, e, seq, old) {
		if !cur[g] {
			t.Errorf("after the rebuild the old gram %q still holds the user", g)
		}
	}
	if r := e.do(t, "GET", "/api/v1/users/search?q=Other+Person", nil); !strings.Contains(string(r.Body), id) {
		t.Errorf("search after the rebuild: %s", r.Body)
	}
}
