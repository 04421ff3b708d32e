package httpapi_test

import (
	"testing"

	"github.com/usersvc/usersvc/internal/auth"
)

// TestExport: a person's data export holds the profile with full identifiers, the history of the
// record (oldest first) and who read the person's identifiers; it is audited like a full read,
// works for a soft-deleted user, is refused without users:pii, and for an erased person is the
// tombstone alone.
func TestExport(t *testing.T) {
	e := newEnv(t, false)
	p := newPerson()
	u := e.create(t, p)
	id := u["id"].(string)
	path := "/api/v1/users/" + id
	if r := e.do(t, "PATCH", path, map[string]any{"name": "Exported Person"}); r.Code != 200 {
		t.Fatalf("update: %d %s", r.Code, r.Body)
	}
	if r := e.do(t, "GET", path, nil); r.Code != 200 { // a full read (the key has users:pii)
		t.Fatalf("get: %d", r.Code)
	}
	if r := e.do(t, "GET", path+"/export", nil, "Authorization", e.keyWith(t, auth.ScopeUsersRead, auth.ScopeAuditRead)); r.Code != 403 {
		t.Fatalf("export without users:pii: %d %s", r.Code, r.Body)
	}
	if r := e.do(t, "GET", "/api/v1/users/00000000-0000-4000-8000-00000000beef/export", nil); r.Code != 404 {
		t.Fatalf("export of nobody: %d", r.Code)
	}

	ex := e.do(t, "GET", path+"/export", nil)
	if ex.Code != 200 {
		t.Fatalf("export: %d %s", ex.Code, ex.Body)
	}
	doc := ex.JSON(t)
	prof, _ := doc["profile"].(map[string]any)
	if doc["erased"] != false || doc["id"] != id || prof == nil || prof["aadhaar"] != p["aadhaar"] || prof["pan"] != p["pan"] ||
		prof["name"] != "Exported Person" || prof["email"] != p["email"] || prof["is_deleted"] != false {
		t.Fatalf("export profile: %s", ex.Body)
	}
	actions := func(key string) (out []string) {
		for _, it := range doc[key].([]any) {
			out = append(out, it.(map[string]any)["action"].(string))
		}
		return out
	}
	if got := actions("changes"); len(got) != 2 || got[0] != "create" || got[1] != "update" {
		t.Fatalf("changes, oldest first: %v", got)
	}
	if got := actions("pii_reads"); len(got) != 1 || got[0] != "pii_read" {
		t.Fatalf("pii reads: %v", got)
	}
	// The export itself is audited as a full read; the next export lists it.
	hist := e.do(t, "GET", path+"/audit", nil).JSON(t)
	if first := hist["data"].([]any)[0].(map[string]any); first["action"] != "pii_export" {
		t.Fatalf("the export was not audited: %v", first)
	}

	// A soft-deleted user can still be exported.
	if r := e.do(t, "DELETE", path, nil); r.Code != 200 {
		t.Fatalf("delete: %d", r.Code)
	}
	doc = e.do(t, "GET", path+"/export", nil).JSON(t)
	if prof := doc["profile"].(map[string]any); prof["is_deleted"] != true || prof["deleted_at"] == nil || prof["aadhaar"] != p["aadhaar"] {
		t.Fatalf("export of a deleted user: %v", doc)
	}
	if got := actions("pii_reads"); len(got) != 2 || got[1] != "pii_export" {
		t.Fatalf("pii reads after an export: %v", got)
	}

	// An erased person: the tombstone only.
	if r := e.do(t, "POST", path+"/erase", map[string]any{"reason": "export test"}); r.Code != 200 {
		t.Fatalf("erase: %d", r.Code)
	}
	r := e.do(t, "GET", path+"/export", nil)
	doc = r.JSON(t)
	if r.Code != 200 || doc["erased"] != true || doc["erasure_reason"] != "export test" || doc["erased_at"] == nil ||
		doc["profile"] != nil || doc["changes"] != nil || doc["pii_reads"] != nil {
		t.Fatalf("export of an erased person: %d %s", r.Code, r.Body)
	}
}
