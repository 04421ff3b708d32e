package httpapi_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
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
