package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

func TestCreateNormalisesAndGetReturnsIt(t *testing.T) {
	e := newEnv(t, false)
	p := newPerson()
	aad, pan, mob := p["aadhaar"].(string), p["pan"].(string), p["primary_mobile"].(string)
	in := p.with(
		"email", strings.ToUpper(p["email"].(string)[:1])+p["email"].(string)[1:],
		"aadhaar", aad[:4]+" "+aad[4:8]+"-"+aad[8:],
		"pan", strings.ToLower(pan),
		"primary_mobile", "+91 "+mob[:5]+" "+mob[5:],
		"secondary_mobile", "8765432109",
		"idempotency_key", "550e8400-e29b-41d4-a716-"+strings.ToLower(randLetters(12)),
	)
	r := e.do(t, "POST", "/api/v1/users/", in)
	if r.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.Code, r.Body)
	}
	u := r.JSON(t)
	// Write responses are masked; a GET with users:pii shows the normalised values.
	if u["aadhaar"] != "XXXX XXXX "+aad[8:] || u["pan"] != "XXXXX"+pan[5:] || u["primary_mobile"] != mob || u["secondary_mobile"] != "8765432109" {
		t.Errorf("not normalised or not masked: %s", r.Body)
	}
	if full := e.do(t, "GET", "/api/v1/users/"+u["id"].(string), nil).JSON(t); full["aadhaar"] != aad || full["pan"] != pan {
		t.Errorf("GET with users:pii: %v %v", full["aadhaar"], full["pan"])
	}
	if u["email"] != in["email"] {
		t.Errorf("email display changed: %v", u["email"])
	}
	if u["is_active"] != true || u["date_of_birth"] != "1995-06-15" || !strings.HasSuffix(u["created_at"].(string), "Z") {
		t.Errorf("fields: %s", r.Body)
	}
	id := u["id"].(string)
	if loc := r.Header.Get("Location"); loc != "/api/v1/users/"+id {
		t.Errorf("Location = %q", loc)
	}
	if et := etagOf(t, r); et != `"`+u["version"].(string)+`"` {
		t.Errorf("ETag %s != version %v", et, u["version"])
	}
	for _, path := range []string{"/api/v1/users/" + id, "/api/v1/users/" + id + "/"} {
		g := e.do(t, "GET", path, nil)
		if g.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, g.Code, g.Body)
		}
		if g.JSON(t)["email"] != in["email"] || g.Header.Get("ETag") != r.Header.Get("ETag") {
			t.Errorf("GET %s: %s", path, g.Body)
		}
	}
	// Both spellings of the collection path, no redirect.
	if r := e.do(t, "POST", "/api/v1/users", newPerson()); r.Code != http.StatusCreated {
		t.Errorf("POST without slash: %d", r.Code)
	}
}

func TestCreateValidation(t *testing.T) {
	e := newEnv(t, false)
	cases := []struct {
		name   string
		body   person
		fields []string
	}{
		{"description's own example ids", newPerson().with("aadhaar", "123456789012", "pan", "ABCDE1234F"), []string{"aadhaar", "pan"}},
		{"aadhaar check digit", newPerson().with("aadhaar", "234123412347"), []string{"aadhaar"}},
		{"aadhaar repeated", newPerson().with("aadhaar", "333333333333"), []string{"aadhaar"}},
		{"aadhaar length", newPerson().with("aadhaar", "643343121"), []string{"aadhaar"}},
		{"pan firm", newPerson().with("pan", "AAKFD7113K"), []string{"pan"}},
		{"pan 0000", newPerson().with("pan", "ACUPA0000R"), []string{"pan"}},
		{"pan shape", newPerson().with("pan", "ABMPA32111"), []string{"pan"}},
		{"landline", newPerson().with("primary_mobile", "8023456789"), []string{"primary_mobile"}},
		{"short mobile", newPerson().with("primary_mobile", "98765"), []string{"primary_mobile"}},
		{"secondary equals primary", func() person { p := newPerson(); return p.with("secondary_mobile", p["primary_mobile"]) }(), []string{"secondary_mobile"}},
		{"display-name email", newPerson().with("email", "Alice <a@x.com>"), []string{"email"}},
		{"single-label email", newPerson().with("email", "a@localhost"), []string{"email"}},
		{"underscore domain", newPerson().with("email", "a@exa_mple.com"), []string{"email"}},
		{"minor", newPerson().with("date_of_birth", "2015-01-01"), []string{"date_of_birth"}},
		{"future dob", newPerson().with("date_of_birth", "2999-01-01"), []string{"date_of_birth"}},
		{"bad date", newPerson().with("date_of_birth", "1995-02-30"), []string{"date_of_birth"}},
		{"short name", newPerson().with("name", "R"), []string{"name"}},
		{"long name", newPerson().with("name", strings.Repeat("a", 256)), []string{"name"}},
		{"short address", newPerson().with("current_address", "tiny"), []string{"current_address"}},
		{"missing fields", newPerson().without("name", "pan", "permanent_address"), []string{"name", "pan", "permanent_address"}},
		{"wrong types", newPerson().with("name", 42, "email", true, "aadhaar", 234123412346), []string{"name", "email", "aadhaar"}},
		{"null required", newPerson().with("name", nil), []string{"name"}},
		{"server-owned", newPerson().with("id", "x", "is_deleted", true, "created_at", "2020-01-01", "version", "v"), []string{"id", "is_deleted", "created_at", "version"}},
		{"unknown", newPerson().with("nickname", "raj"), []string{"nickname"}},
		{"everything at once", person{"name": "R", "email": "nope", "primary_mobile": "1", "aadhaar": "1", "pan": "1",
			"date_of_birth": "x", "place_of_birth": "", "current_address": "a", "permanent_address": "b"},
			[]string{"name", "email", "primary_mobile", "aadhaar", "pan", "date_of_birth", "place_of_birth", "current_address", "permanent_address"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "POST", "/api/v1/users/", tc.body)
			if r.Code != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422: %s", r.Code, r.Body)
			}
			if got := problemFields(t, r); !sameSet(got, tc.fields) {
				t.Errorf("fields %v, want %v: %s", got, tc.fields, r.Body)
			}
		})
	}
	// The explanation of the description's example values is in the message.
	r := e.do(t, "POST", "/api/v1/users/", newPerson().with("aadhaar", "123456789012"))
	if !strings.Contains(string(r.Body), "123456789012 is not a valid Aadhaar") {
		t.Errorf("message does not explain the description's example: %s", r.Body)
	}
}

func TestBodyErrors(t *testing.T) {
	e := newEnv(t, false)
	cases := []struct {
		name    string
		body    any
		headers []string
		status  int
	}{
		{"malformed", `{"name": "x",`, nil, 400},
		{"array", `[1,2]`, nil, 400},
		{"null", `null`, nil, 400},
		{"string", `"hello"`, nil, 400},
		{"empty", ``, nil, 400},
		{"trailing data", `{"name":"x"} {"name":"y"}`, nil, 400},
		{"text/plain", `{"name":"x"}`, []string{"Content-Type", "text/plain"}, 415},
		{"form", `name=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"no content type", `{"name":"x"}`, []string{"Content-Type", ""}, 415},
		{"too large", `{"name":"` + strings.Repeat("a", 1<<20) + `"}`, nil, 413},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "POST", "/api/v1/users/", tc.body, tc.headers...)
			if r.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Code, tc.status, r.Body)
			}
			problemFields(t, r)
		})
	}
	// The same rules apply to updates.
	u := e.create(t, newPerson())
	r := e.do(t, "PUT", "/api/v1/users/"+u["id"].(string), `{"name":`)
	if r.Code != 400 {
		t.Errorf("malformed update: %d", r.Code)
	}
	r = e.do(t, "PUT", "/api/v1/users/"+u["id"].(string), `{"name":"Valid Name"}`, "Content-Type", "text/xml")
	if r.Code != 415 {
		t.Errorf("update content type: %d", r.Code)
	}
}

func TestUniquenessNamesTheFields(t *testing.T) {
	e := newEnv(t, false)
	a := newPerson()
	e.create(t, a)
	mob := a["primary_mobile"].(string)
	cases := []struct {
		name   string
		body   person
		fields []string
	}{
		{"email, other case", newPerson().with("email", strings.ToUpper(a["email"].(string))), []string{"email"}},
		{"mobile, other spelling", newPerson().with("primary_mobile", "+91-"+mob[:5]+"-"+mob[5:]), []string{"primary_mobile"}},
		{"aadhaar, with spaces", newPerson().with("aadhaar", a["aadhaar"].(string)[:4]+" "+a["aadhaar"].(string)[4:]), []string{"aadhaar"}},
		{"pan, lower case", newPerson().with("pan", strings.ToLower(a["pan"].(string))), []string{"pan"}},
		{"all four", a.with("name", "Someone Else"), []string{"email", "primary_mobile", "aadhaar", "pan"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, "POST", "/api/v1/users/", tc.body)
			if r.Code != http.StatusConflict {
				t.Fatalf("status %d, want 409: %s", r.Code, r.Body)
			}
			if got := problemFields(t, r); !sameSet(got, tc.fields) {
				t.Errorf("fields %v, want %v", got, tc.fields)
			}
			if strings.Contains(string(r.Body), mob) || strings.Contains(string(r.Body), a["aadhaar"].(string)) {
				t.Errorf("409 body repeats a value: %s", r.Body)
			}
		})
	}
}

func TestParallelCreatesWithOneEmail(t *testing.T) {
	e := newEnv(t, false)
	email := newPerson()["email"]
	const n = 20
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			codes[i] = e.do(t, "POST", "/api/v1/users/", newPerson().with("email", email)).Code
		}(i)
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	if count[201] != 1 || count[409] != n-1 {
		t.Fatalf("status counts %v, want one 201 and %d 409", count, n-1)
	}
}

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

func TestCreateRevivesSoftDeletedEmail(t *testing.T) {
	e := newEnv(t, false)
	old := newPerson()
	u := e.create(t, old)
	id := u["id"].(string)
	if r := e.do(t, "DELETE", "/api/v1/users/"+id, nil); r.Code != 200 {
		t.Fatal(r.Code)
	}
	fresh := newPerson().with("email", strings.ToUpper(old["email"].(string)), "name", "Reborn User")
	r := e.do(t, "POST", "/api/v1/users/", fresh)
	if r.Code != 201 {
		t.Fatalf("revive: %d %s", r.Code, r.Body)
	}
	got := r.JSON(t)
	if full := e.do(t, "GET", "/api/v1/users/"+id, nil).JSON(t); full["aadhaar"] != fresh["aadhaar"] {
		t.Errorf("revived aadhaar: %v", full["aadhaar"])
	}
	if got["id"] != id || got["name"] != "Reborn User" || got["is_active"] != true {
		t.Errorf("revived user: %s", r.Body)
	}
	hist := e.do(t, "GET", "/api/v1/users/"+id+"/audit", nil).JSON(t)
	var actions []string
	for _, a := range hist["data"].([]any) {
		actions = append(actions, a.(map[string]any)["action"].(string))
	}
	if strings.Join(actions, ",") != "pii_read,create_restore,delete,create" {
		t.Errorf("audit actions %v", actions)
	}

	// A deleted user's email with another live user's mobile: 409 on the mobile, nothing revived.
	victim := e.create(t, newPerson())
	if r := e.do(t, "DELETE", "/api/v1/users/"+victim["id"].(string), nil); r.Code != 200 {
		t.Fatal(r.Code)
	}
	live := e.create(t, newPerson())
	r = e.do(t, "POST", "/api/v1/users/", newPerson().with("email", victim["email"], "primary_mobile", live["primary_mobile"]))
	if f := problemFields(t, r); r.Code != 409 || !sameSet(f, []string{"primary_mobile"}) {
		t.Errorf("revive over a live user's mobile: %d %v", r.Code, f)
	}
	if g := e.do(t, "GET", "/api/v1/users/"+victim["id"].(string), nil); g.Code != 404 {
		t.Errorf("victim revived anyway: %d", g.Code)
	}
	// A live user's email is simply a conflict.
	r = e.do(t, "POST", "/api/v1/users/", newPerson().with("email", live["email"]))
	if f := problemFields(t, r); r.Code != 409 || !sameSet(f, []string{"email"}) {
		t.Errorf("live email: %d %v", r.Code, f)
	}
}

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
