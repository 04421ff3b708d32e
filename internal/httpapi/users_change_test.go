package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestUpdate(t *testing.T) {
	e := newEnv(t, false)
	p := newPerson().with("secondary_mobile", "8765432109")
	u := e.create(t, p)
	id := u["id"].(string)
	path := "/api/v1/users/" + id

	r := e.do(t, "PUT", path, map[string]any{"name": "Rajesh Kumar Singh", "current_address": "New address, Pune - 411001"})
	if r.Code != 200 {
		t.Fatalf("update: %d %s", r.Code, r.Body)
	}
	got := r.JSON(t)
	if got["name"] != "Rajesh Kumar Singh" || got["current_address"] != "New address, Pune - 411001" ||
		got["email"] != p["email"] || got["permanent_address"] != p["permanent_address"] {
		t.Errorf("partial update: %s", r.Body)
	}
	if got["version"] == u["version"] || etagOf(t, r) != `"`+got["version"].(string)+`"` {
		t.Errorf("version not renewed")
	}

	// PATCH is the same operation.
	r = e.do(t, "PATCH", path+"/", map[string]any{"is_active": false, "secondary_mobile": nil})
	if r.Code != 200 || r.JSON(t)["is_active"] != false || r.JSON(t)["secondary_mobile"] != nil {
		t.Fatalf("patch: %d %s", r.Code, r.Body)
	}

	// Nothing to change: 200, same version, no audit row.
	before := r.JSON(t)["version"]
	r = e.do(t, "PUT", path, map[string]any{"is_active": false})
	if r.Code != 200 || r.JSON(t)["version"] != before {
		t.Errorf("no-op update changed the version: %s", r.Body)
	}

	// Immutable, server-owned and unknown fields are refused by name; nothing changes.
	r = e.do(t, "PUT", path, map[string]any{"aadhaar": newAadhaar(), "pan": newPAN(), "date_of_birth": "1990-01-01",
		"place_of_birth": "Delhi", "created_at": "2020-01-01T00:00:00Z", "is_deleted": true, "foo": 1, "name": "Changed Name"})
	if r.Code != 422 {
		t.Fatalf("immutable: %d %s", r.Code, r.Body)
	}
	if f := problemFields(t, r); !sameSet(f, []string{"aadhaar", "pan", "date_of_birth", "place_of_birth", "created_at", "is_deleted", "foo"}) {
		t.Errorf("fields %v", f)
	}
	if g := e.do(t, "GET", path, nil).JSON(t); g["name"] != "Rajesh Kumar Singh" {
		t.Errorf("refused update changed data: %v", g["name"])
	}

	// Field validation on update.
	r = e.do(t, "PUT", path, map[string]any{"email": "bad", "primary_mobile": "123", "name": "", "is_active": "yes"})
	if f := problemFields(t, r); r.Code != 422 || !sameSet(f, []string{"email", "primary_mobile", "name", "is_active"}) {
		t.Errorf("%d %v", r.Code, f)
	}
	// secondary equal to the stored primary.
	r = e.do(t, "PUT", path, map[string]any{"secondary_mobile": p["primary_mobile"]})
	if f := problemFields(t, r); r.Code != 422 || !sameSet(f, []string{"secondary_mobile"}) {
		t.Errorf("secondary=primary: %d %v", r.Code, f)
	}

	// Changing to another user's email or mobile is a 409 naming the fields.
	other := e.create(t, newPerson())
	r = e.do(t, "PUT", path, map[string]any{"email": strings.ToUpper(other["email"].(string)), "primary_mobile": other["primary_mobile"]})
	if f := problemFields(t, r); r.Code != 409 || !sameSet(f, []string{"email", "primary_mobile"}) {
		t.Errorf("duplicate on update: %d %v %s", r.Code, f, r.Body)
	}
	// Changing only the case of one's own email is fine.
	r = e.do(t, "PUT", path, map[string]any{"email": strings.ToUpper(p["email"].(string))})
	if r.Code != 200 {
		t.Errorf("own email in other case: %d %s", r.Code, r.Body)
	}
}

func TestOptimisticLocking(t *testing.T) {
	e := newEnv(t, false)
	u := e.create(t, newPerson())
	path := "/api/v1/users/" + u["id"].(string)
	v1 := `"` + u["version"].(string) + `"`

	r := e.do(t, "PUT", path, map[string]any{"name": "First Writer"}, "If-Match", v1)
	if r.Code != 200 {
		t.Fatalf("fresh If-Match: %d %s", r.Code, r.Body)
	}
	v2 := etagOf(t, r)
	// The old version is stale now: 412, nothing changes.
	for _, tc := range []struct {
		method string
		body   any
		hdr    []string
	}{
		{"PUT", map[string]any{"name": "Stale Writer"}, []string{"If-Match", v1}},
		{"PATCH", map[string]any{"name": "Stale Writer", "version": u["version"]}, nil},
		{"PUT", map[string]any{"name": "Stale Writer", "version": u["version"]}, []string{"If-Match", v2}},
		{"DELETE", nil, []string{"If-Match", v1}},
		{"DELETE", map[string]any{"version": u["version"]}, nil},
		{"PUT", map[string]any{"name": "Weak Writer"}, []string{"If-Match", "W/" + v2}},
	} {
		r := e.do(t, tc.method, path, tc.body, tc.hdr...)
		if r.Code != http.StatusPreconditionFailed {
			t.Errorf("%s %v %v: %d, want 412: %s", tc.method, tc.body, tc.hdr, r.Code, r.Body)
		}
	}
	g := e.do(t, "GET", path, nil)
	if g.JSON(t)["name"] != "First Writer" || etagOf(t, g) != v2 {
		t.Fatalf("a stale write changed the user: %s", g.Body)
	}
	// Body version and a list of tags work too; * matches any version.
	if r := e.do(t, "PATCH", path, map[string]any{"name": "Body Version", "version": strings.Trim(v2, `"`)}); r.Code != 200 {
		t.Errorf("body version: %d %s", r.Code, r.Body)
	}
	v3 := etagOf(t, e.do(t, "GET", path, nil))
	if r := e.do(t, "PUT", path, map[string]any{"name": "Tag List"}, "If-Match", `"nope", `+v3); r.Code != 200 {
		t.Errorf("tag list: %d %s", r.Code, r.Body)
	}
	if r := e.do(t, "PUT", path, map[string]any{"name": "Star Writer"}, "If-Match", "*"); r.Code != 200 {
		t.Errorf("star: %d %s", r.Code, r.Body)
	}
}

func TestConcurrentUpdatesWithOneVersion(t *testing.T) {
	e := newEnv(t, false)
	u := e.create(t, newPerson())
	path := "/api/v1/users/" + u["id"].(string)
	etag := `"` + u["version"].(string) + `"`
	const n = 10
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			codes[i] = e.do(t, "PUT", path, map[string]any{"name": fmt.Sprintf("Writer %d", i)}, "If-Match", etag).Code
		}(i)
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	if count[200] != 1 || count[412] != n-1 {
		t.Fatalf("status counts %v, want one 200 and %d 412", count, n-1)
	}
	hist := e.do(t, "GET", path+"/audit", nil).JSON(t)
	if hist["total"].(float64) != 2 {
		t.Errorf("audit rows: %v, want create + one update", hist["total"])
	}
}

func TestSoftDeleteAndRestore(t *testing.T) {
	e := newEnv(t, false)
	p := newPerson()
	u := e.create(t, p)
	id := u["id"].(string)
	path := "/api/v1/users/" + id

	r := e.do(t, "DELETE", path, nil)
	if r.Code != 200 || r.JSON(t)["message"] != "User deleted successfully" {
		t.Fatalf("delete: %d %s", r.Code, r.Body)
	}
	deletedETag := etagOf(t, r)
	var isDeleted, isActive bool
	var deletedAt *string
	if err := e.db.QueryRow("SELECT is_deleted, is_active, DATE_FORMAT(deleted_at, '%Y') FROM users WHERE id = ?", id).Scan(&isDeleted, &isActive, &deletedAt); err != nil {
		t.Fatal(err)
	}
	if !isDeleted || isActive || deletedAt == nil {
		t.Errorf("row after delete: is_deleted=%v is_active=%v deleted_at=%v", isDeleted, isActive, deletedAt)
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", path}, {"PUT", path}, {"PATCH", path}, {"DELETE", path},
	} {
		var body any
		if tc.method == "PUT" || tc.method == "PATCH" {
			body = map[string]any{"name": "Ghost Writer"}
		}
		r := e.do(t, tc.method, tc.path, body)
		if r.Code != 404 || r.JSON(t)["detail"] != "User not found" {
			t.Errorf("%s deleted user: %d %s", tc.method, r.Code, r.Body)
		}
	}
	if s := e.do(t, "GET", "/api/v1/users/search/?q="+p["name"].(string)[10:], nil).JSON(t); s["total"].(float64) != 0 {
		t.Errorf("deleted user found by search: %v", s)
	}
	// History stays readable.
	if r := e.do(t, "GET", path+"/audit", nil); r.Code != 200 {
		t.Errorf("audit of deleted user: %d", r.Code)
	}

	// Restore with a stale version is refused; with the current one it works.
	if r := e.do(t, "POST", path+"/restore", nil, "If-Match", `"`+u["version"].(string)+`"`); r.Code != 412 {
		t.Errorf("stale restore: %d", r.Code)
	}
	r = e.do(t, "POST", path+"/restore", nil, "If-Match", deletedETag)
	if r.Code != 200 || r.JSON(t)["is_active"] != true {
		t.Fatalf("restore: %d %s", r.Code, r.Body)
	}
	if g := e.do(t, "GET", path, nil); g.Code != 200 {
		t.Errorf("get after restore: %d", g.Code)
	}
	if r := e.do(t, "POST", path+"/restore", nil); r.Code != 409 {
		t.Errorf("restore of a live user: %d, want 409", r.Code)
	}
	if r := e.do(t, "POST", "/api/v1/users/00000000-0000-4000-8000-000000000000/restore", nil); r.Code != 404 {
		t.Errorf("restore unknown: %d", r.Code)
	}
}
