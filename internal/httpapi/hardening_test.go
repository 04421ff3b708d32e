package httpapi_test

// Regression tests for the findings of the outside probe (issue 12): each failed before its fix.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/usersvc/usersvc/internal/auth"
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
