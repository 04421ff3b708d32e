package httpapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/usersvc/usersvc/internal/auth"
)

func init() {
	// The import's NDJSON bodies are plain text to the document (type: string).
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", openapi3filter.FileBodyDecoder)
}

// TestImportEndpoint: POST /users/import takes NDJSON (users:import only), answers a result per
// line in order and a summary, imports the good lines and reports the bad ones.
func TestImportEndpoint(t *testing.T) {
	e := newEnv(t, false)
	existing := e.create(t, newPerson())
	good, other := newPerson(), newPerson()
	gj, _ := json.Marshal(good)
	oj, _ := json.Marshal(other)
	dup := newPerson().with("email", existing["email"])
	dj, _ := json.Marshal(dup)
	body := string(gj) + "\n" + `{"name": 1}` + "\n" + string(dj) + "\n" + string(oj) + "\n"

	if r := e.do(t, "POST", "/api/v1/users/import", body, "Content-Type", "application/x-ndjson",
		"Authorization", e.keyWith(t, auth.ScopeUsersWrite, auth.ScopeUsersRead)); r.Code != 403 {
		t.Fatalf("import without users:import: %d", r.Code)
	}
	if r := e.do(t, "POST", "/api/v1/users/import", body); r.Code != 415 {
		t.Fatalf("import as application/json: %d", r.Code)
	}
	r := e.do(t, "POST", "/api/v1/users/import", body, "Content-Type", "application/x-ndjson")
	if r.Code != 200 || r.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("import: %d %s", r.Code, r.Body)
	}
	lines := strings.Split(strings.TrimSpace(string(r.Body)), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d answer lines: %s", len(lines), r.Body)
	}
	var res []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("answer line %q: %v", l, err)
		}
		res = append(res, m)
	}
	if res[0]["status"] != "created" || res[1]["status"] != "invalid" || res[2]["status"] != "exists" || res[2]["id"] != existing["id"] ||
		res[3]["status"] != "created" || res[1]["line"] != float64(2) {
		t.Fatalf("results: %s", r.Body)
	}
	if errs := res[1]["errors"].([]any); errs[0].(map[string]any)["field"] != "name" {
		t.Fatalf("invalid line's errors: %v", errs)
	}
	if sum := res[4]["summary"].(map[string]any); sum["created"] != float64(2) || sum["lines"] != float64(4) {
		t.Fatalf("summary: %v", sum)
	}
	got := e.do(t, "GET", "/api/v1/users/"+res[0]["id"].(string), nil).JSON(t)
	if got["email"] != good["email"] || got["aadhaar"] != good["aadhaar"] {
		t.Fatalf("imported user: %v", got)
	}
}
