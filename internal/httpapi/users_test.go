package httpapi_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestListPagination(t *testing.T) {
	e := newEnv(t, true)
	var ids []string
	for i := 0; i < 23; i++ {
		ids = append(ids, e.create(t, newPerson())["id"].(string))
	}
	// Delete one: it must not be counted.
	if r := e.do(t, "DELETE", "/api/v1/users/"+ids[0], nil); r.Code != 200 {
		t.Fatal(r.Code)
	}
	ids = ids[1:]
	r := e.do(t, "GET", "/api/v1/users/", nil)
	if r.Code != 200 {
		t.Fatalf("%d %s", r.Code, r.Body)
	}
	page := r.JSON(t)
	if page["total"].(float64) != 22 || page["page"].(float64) != 1 || page["page_size"].(float64) != 10 || page["total_pages"].(float64) != 3 {
		t.Fatalf("page 1: %s", r.Body)
	}
	// Newest first across all pages, no duplicates, no gaps.
	var seen []string
	for pg := 1; pg <= 3; pg++ {
		data := e.do(t, "GET", fmt.Sprintf("/api/v1/users?page=%d&page_size=10", pg), nil).JSON(t)["data"].([]any)
		for _, d := range data {
			seen = append(seen, d.(map[string]any)["id"].(string))
		}
	}
	if len(seen) != 22 {
		t.Fatalf("saw %d users", len(seen))
	}
	for i := range seen {
		if seen[i] != ids[len(ids)-1-i] {
			t.Fatalf("order at %d: got %s, want %s", i, seen[i], ids[len(ids)-1-i])
		}
	}
	if d := e.do(t, "GET", "/api/v1/users/?page=9", nil).JSON(t); len(d["data"].([]any)) != 0 || d["total"].(float64) != 22 {
		t.Errorf("past the end: %v", d)
	}
	if d := e.do(t, "GET", "/api/v1/users/?page_size=100", nil).JSON(t); len(d["data"].([]any)) != 22 {
		t.Errorf("max page size")
	}
	for _, q := range []string{"page=0", "page=-1", "page=abc", "page_size=0", "page_size=101", "page_size=x"} {
		r := e.do(t, "GET", "/api/v1/users/?"+q, nil)
		field := strings.SplitN(q, "=", 2)[0]
		if f := problemFields(t, r); r.Code != 422 || !sameSet(f, []string{field}) {
			t.Errorf("%s: %d %v", q, r.Code, f)
		}
	}
}

func TestSearch(t *testing.T) {
	e := newEnv(t, true)
	a := e.create(t, newPerson().with("name", "Rajesh Kumar", "email", "rajesh.k@example.com"))
	b := e.create(t, newPerson().with("name", "Priya Sharma", "email", "priya_50%@example.org"))
	c := e.create(t, newPerson().with("name", "Anil RAJ", "email", "anil@corp.example.net"))
	_ = e.create(t, newPerson().with("name", "Sunita Devi", "email", "sunita@example.in"))
	ids := func(r response) []string {
		var out []string
		for _, d := range r.JSON(t)["data"].([]any) {
			out = append(out, d.(map[string]any)["id"].(string))
		}
		return out
	}
	cases := []struct {
		q    string
		want []string
	}{
		{"raj", []string{a["id"].(string), c["id"].(string)}}, // name, any case
		{"RAJESH.K", []string{a["id"].(string)}},              // email, any case
		{"corp.example", []string{c["id"].(string)}},          // email domain
		{"_50%", []string{b["id"].(string)}},                  // literal _ and %
		{"%", nil},                                            // too short
		{"a_i", nil},                                          // _ is not a wildcard
		{"zzzz", []string{}},                                  // no match
		{"example", []string{a["id"].(string), b["id"].(string), c["id"].(string), "any"}},
	}
	for _, tc := range cases {
		r := e.do(t, "GET", "/api/v1/users/search/?q="+urlQuery(tc.q), nil)
		if tc.want == nil && len(tc.q) < 2 {
			if r.Code != 422 {
				t.Errorf("q=%q: %d, want 422", tc.q, r.Code)
			}
			continue
		}
		if r.Code != 200 {
			t.Errorf("q=%q: %d %s", tc.q, r.Code, r.Body)
			continue
		}
		got := ids(r)
		if len(tc.want) > 0 && tc.want[len(tc.want)-1] == "any" {
			if len(got) != 4 {
				t.Errorf("q=%q: %d results, want 4", tc.q, len(got))
			}
			continue
		}
		if !sameSet(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
			t.Errorf("q=%q: got %v, want %v", tc.q, got, tc.want)
		}
	}
	if r := e.do(t, "GET", "/api/v1/users/search/", nil); r.Code != 422 || !sameSet(problemFields(t, r), []string{"q"}) {
		t.Errorf("missing q: %d", r.Code)
	}
	if r := e.do(t, "GET", "/api/v1/users/search?q=ra&page_size=1&page=2", nil); r.Code != 200 || r.JSON(t)["total"].(float64) != 2 || len(ids(r)) != 1 {
		t.Errorf("search pagination: %s", r.Body)
	}
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20", "&", "%26", "+", "%2B").Replace(s)
}

func TestAuditTrail(t *testing.T) {
	e := newEnv(t, false)
	p := newPerson()
	u := e.create(t, p)
	id := u["id"].(string)
	path := "/api/v1/users/" + id
	e.do(t, "PUT", path, map[string]any{"name": "Audited Name", "email": "audited." + p["email"].(string)}, "X-Request-ID", "req-update-1")
	e.do(t, "DELETE", path, nil)
	e.do(t, "POST", path+"/restore", nil)
	r := e.do(t, "GET", path+"/audit?page_size=2", nil)
	if r.Code != 200 {
		t.Fatalf("%d %s", r.Code, r.Body)
	}
	page := r.JSON(t)
	if page["total"].(float64) != 4 || page["total_pages"].(float64) != 2 {
		t.Fatalf("audit page: %s", r.Body)
	}
	all := e.do(t, "GET", path+"/audit", nil).JSON(t)["data"].([]any)
	var actions []string
	for _, a := range all {
		actions = append(actions, a.(map[string]any)["action"].(string))
	}
	if strings.Join(actions, ",") != "restore,delete,update,create" {
		t.Errorf("actions newest first: %v", actions)
	}
	upd := all[2].(map[string]any)
	if upd["request_id"] == "req-update-1" || uuid.Validate(upd["request_id"].(string)) != nil || fmt.Sprint(upd["changed_fields"]) != "[name email]" || upd["actor"] != "apikey:"+e.keyID {
		t.Errorf("update row: %v", upd)
	}
	// The audit table holds no personal data.
	rows, err := e.db.Query("SELECT CONCAT_WS('|', user_id, action, COALESCE(actor,''), COALESCE(request_id,''), changed_fields, version) FROM user_audit WHERE user_id = ?", id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{p["email"].(string), p["aadhaar"].(string), p["pan"].(string), p["primary_mobile"].(string), "Audited Name"} {
			if strings.Contains(s, v) {
				t.Errorf("audit row holds personal data: %s", s)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if r := e.do(t, "GET", "/api/v1/users/00000000-0000-4000-8000-000000000000/audit", nil); r.Code != 404 {
		t.Errorf("audit of unknown user: %d", r.Code)
	}
}

func TestNotFoundAndRouting(t *testing.T) {
	e := newEnv(t, false)
	for _, path := range []string{
		"/api/v1/users/00000000-0000-4000-8000-000000000000", "/api/v1/users/not-a-uuid", "/api/v1/users/1",
	} {
		r := e.do(t, "GET", path, nil)
		if r.Code != 404 || r.JSON(t)["detail"] != "User not found" {
			t.Errorf("GET %s: %d %s", path, r.Code, r.Body)
		}
		problemFields(t, r)
	}
	if r := e.do(t, "GET", "/api/v2/nothing", nil); r.Code != 404 {
		t.Errorf("unknown route: %d", r.Code)
	}
	if r := e.do(t, "POST", "/api/v1/users/00000000-0000-4000-8000-000000000000", "{}"); r.Code != 405 {
		t.Errorf("wrong method: %d", r.Code)
	}
	if r := e.do(t, "GET", "/healthz", nil); r.Code != 200 {
		t.Errorf("healthz: %d", r.Code)
	}
}

func TestRequestIDAndCORS(t *testing.T) {
	e := newEnv(t, false)
	r := e.do(t, "GET", "/api/v1/users/", nil, "X-Request-ID", "abc-123")
	if got := r.Header.Get("X-Request-ID"); got == "abc-123" || uuid.Validate(got) != nil {
		t.Errorf("X-Request-ID = %q, want an id the server made", got)
	}
	if !strings.Contains(e.logs.String(), `"client_request_id":"abc-123"`) {
		t.Errorf("the client's request id is not in the access log")
	}
	r = e.do(t, "GET", "/api/v1/users/", nil, "X-Request-ID", "bad id with spaces <script>")
	if got := r.Header.Get("X-Request-ID"); got == "" || strings.Contains(got, " ") {
		t.Errorf("invalid request id kept: %q", got)
	}
	r = e.do(t, "OPTIONS", "/api/v1/users/", nil, "Origin", "http://localhost:3000", "Access-Control-Request-Method", "POST")
	if r.Code != 204 || r.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Errorf("preflight: %d %v", r.Code, r.Header)
	}
	r = e.do(t, "GET", "/api/v1/users/", nil, "Origin", "https://evil.example")
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin allowed")
	}
}

func TestLogsHoldNoPersonalData(t *testing.T) {
	e := newEnv(t, true)
	p := newPerson()
	u := e.create(t, p)
	id := u["id"].(string)
	e.do(t, "POST", "/api/v1/users/", p)                                                           // 409
	e.do(t, "POST", "/api/v1/users/", p.with("aadhaar", "234123412347", "email", "x"))             // 422
	e.do(t, "PUT", "/api/v1/users/"+id, map[string]any{"current_address": "Another long address"}) // 200
	e.do(t, "GET", "/api/v1/users/search/?q="+p["name"].(string)[10:], nil)
	e.do(t, "DELETE", "/api/v1/users/"+id, nil)
	logs := e.logs.String()
	if !strings.Contains(logs, `"route":"/api/v1/users"`) || !strings.Contains(logs, `"status":409`) {
		t.Fatalf("access log missing: %s", logs)
	}
	for _, v := range []string{p["email"].(string), p["aadhaar"].(string), p["pan"].(string), p["primary_mobile"].(string),
		p["name"].(string), "192.0.2.1", "Another long address"} {
		if strings.Contains(logs, v) {
			t.Errorf("logs contain %q", v)
		}
	}
}
