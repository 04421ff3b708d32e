package httpapi_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
)

// The plaintext check that runs when every environment closes must find a planted leak.
func TestPlaintextCheckFindsLeaks(t *testing.T) {
	e := newEnvWith(t, envOptions{})
	p := newPerson()
	u := e.create(t, p)
	if f := e.findPlaintext(); len(f) != 0 {
		t.Fatalf("clean environment reported: %v", f)
	}
	if _, err := e.db.Exec("UPDATE users SET place_of_birth = ? WHERE id = ?", p["aadhaar"], u["id"]); err != nil {
		t.Fatal(err)
	}
	if f := e.findPlaintext(); len(f) != 1 || !strings.Contains(f[0], "table users") || strings.Contains(f[0], p["aadhaar"].(string)) {
		t.Fatalf("planted leak: %v", f)
	}
	if _, err := e.db.Exec("UPDATE users SET place_of_birth = 'Pune' WHERE id = ?", u["id"]); err != nil {
		t.Fatal(err)
	}
}

func TestVaultStorage(t *testing.T) {
	e := newEnv(t, false)
	p := newPerson()
	u := e.create(t, p)
	var aRef, pRef sql.NullString
	if err := e.db.QueryRow("SELECT aadhaar_ref, pan_ref FROM users WHERE id = ?", u["id"]).Scan(&aRef, &pRef); err != nil {
		t.Fatal(err)
	}
	if !aRef.Valid || !pRef.Valid || aRef.String == pRef.String {
		t.Fatalf("refs %v %v", aRef, pRef)
	}
	var kind, keyID string
	var ct []byte
	if err := e.db.QueryRow("SELECT kind, key_id, ciphertext FROM pii_vault WHERE ref = ?", aRef.String).Scan(&kind, &keyID, &ct); err != nil {
		t.Fatal(err)
	}
	if kind != "aadhaar" || keyID != "test1" || strings.Contains(string(ct), p["aadhaar"].(string)) {
		t.Errorf("vault row: %s %s", kind, keyID)
	}
}

func TestErasure(t *testing.T) {
	e := newEnv(t, false)
	p := newPerson().with("secondary_mobile", newMobile())
	u := e.create(t, p)
	id := u["id"].(string)
	path := "/api/v1/users/" + id
	e.do(t, "PUT", path, map[string]any{"name": "Before Erasure"})
	var aRef, pRef string
	if err := e.db.QueryRow("SELECT aadhaar_ref, pan_ref FROM users WHERE id = ?", id).Scan(&aRef, &pRef); err != nil {
		t.Fatal(err)
	}
	if r := e.do(t, "POST", path+"/erase", nil, "Authorization", e.keyWith(t, auth.ScopeUsersDelete, auth.ScopeUsersRead)); r.Code != 403 {
		t.Fatalf("erase without users:erase: %d", r.Code)
	}
	r := e.do(t, "POST", path+"/erase", map[string]any{"reason": "data principal request #42"})
	if r.Code != 200 || r.JSON(t)["reason"] != "data principal request #42" {
		t.Fatalf("erase: %d %s", r.Code, r.Body)
	}
	// The tombstone keeps id, timestamps and reason; every personal column is empty.
	var name, email, place, cur, perm string
	var emailKey, mobile, mobile2, dob, ar, pr sql.NullString
	var erasedAt sql.NullTime
	var created time.Time
	err := e.db.QueryRow(`SELECT name, email, email_key, primary_mobile, secondary_mobile, date_of_birth, place_of_birth,
		aadhaar_ref, pan_ref, current_address, permanent_address, erased_at, created_at FROM users WHERE id = ?`, id).
		Scan(&name, &email, &emailKey, &mobile, &mobile2, &dob, &place, &ar, &pr, &cur, &perm, &erasedAt, &created)
	if err != nil {
		t.Fatal(err)
	}
	if name+email+place+cur+perm != "" || emailKey.Valid || mobile.Valid || mobile2.Valid || dob.Valid || ar.Valid || pr.Valid || !erasedAt.Valid || created.IsZero() {
		t.Fatalf("tombstone holds data: %q %q %q %v %v %v %v %v %v", name, email, place, emailKey, mobile, dob, ar, pr, erasedAt)
	}
	if n := countRows(t, e.db, "SELECT COUNT(*) FROM pii_vault WHERE ref IN (?, ?)", aRef, pRef); n != 0 {
		t.Fatalf("%d vault entries left", n)
	}
	// History stays, and says what happened without personal data.
	hist := e.do(t, "GET", path+"/audit", nil).JSON(t)
	if hist["total"].(float64) != 3 || hist["data"].([]any)[0].(map[string]any)["action"] != "erase" {
		t.Errorf("audit after erase: %v", hist)
	}
	// Gone for get, update, delete and restore; erasing again changes nothing.
	for _, m := range []string{"GET", "DELETE"} {
		if r := e.do(t, m, path, nil); r.Code != 404 {
			t.Errorf("%s erased: %d", m, r.Code)
		}
	}
	if r := e.do(t, "POST", path+"/restore", nil); r.Code != 404 {
		t.Errorf("restore erased: %d", r.Code)
	}
	if r := e.do(t, "POST", path+"/erase", nil); r.Code != 200 {
		t.Errorf("erase twice: %d", r.Code)
	}
	// The same person can register again: every unique value is free.
	again := e.do(t, "POST", "/api/v1/users/", p)
	if again.Code != 201 || again.JSON(t)["id"] == id {
		t.Fatalf("re-registration: %d %s", again.Code, again.Body)
	}
	if r := e.do(t, "POST", "/api/v1/users/lookup", map[string]any{"aadhaar": p["aadhaar"]}); r.Code != 200 || r.JSON(t)["id"] != again.JSON(t)["id"] {
		t.Errorf("lookup finds the new registration: %d %s", r.Code, r.Body)
	}
}

func TestRetentionPurge(t *testing.T) {
	e := newEnvWith(t, envOptions{})
	old, recent, live := e.create(t, newPerson()), e.create(t, newPerson()), e.create(t, newPerson())
	for _, u := range []map[string]any{old, recent} {
		if r := e.do(t, "DELETE", "/api/v1/users/"+u["id"].(string), nil); r.Code != 200 {
			t.Fatal(r.Code)
		}
	}
	if _, err := e.db.Exec("UPDATE users SET deleted_at = deleted_at - INTERVAL 40 DAY WHERE id = ?", old["id"]); err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.PurgeDeletedBefore(context.Background(), users.Caller{Actor: "system:purge"}, time.Now().Add(-30*24*time.Hour), 10, nil)
	if err != nil || res.Erased != 1 || res.Failed != 0 {
		t.Fatalf("purge: %+v %v", res, err)
	}
	erased := func(id any) bool {
		var at sql.NullTime
		if err := e.db.QueryRow("SELECT erased_at FROM users WHERE id = ?", id).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at.Valid
	}
	if !erased(old["id"]) || erased(recent["id"]) || erased(live["id"]) {
		t.Fatal("purge erased the wrong users")
	}
}

// TestSeparateVaultDatabase runs the service with the vault in a database of its own.
func TestSeparateVaultDatabase(t *testing.T) {
	e := newEnvWith(t, envOptions{separateVault: true})
	p := newPerson()
	u := e.create(t, p)
	id := u["id"].(string)
	if g := e.do(t, "GET", "/api/v1/users/"+id, nil).JSON(t); g["aadhaar"] != p["aadhaar"] || g["pan"] != p["pan"] {
		t.Fatalf("read through the separate vault: %v %v", g["aadhaar"], g["pan"])
	}
	if n := countRows(t, e.db, "SELECT COUNT(*) FROM pii_vault"); n != 0 {
		t.Errorf("%d vault rows in the main database", n)
	}
	if n := countRows(t, e.vaultDB, "SELECT COUNT(*) FROM pii_vault"); n != 2 {
		t.Errorf("%d rows in the vault database", n)
	}
	if r := e.do(t, "POST", "/api/v1/users/lookup", map[string]any{"pan": p["pan"]}); r.Code != 200 {
		t.Errorf("lookup: %d", r.Code)
	}
	if r := e.do(t, "POST", "/api/v1/users/"+id+"/erase", nil); r.Code != 200 {
		t.Fatalf("erase: %d", r.Code)
	}
	if n := countRows(t, e.vaultDB, "SELECT COUNT(*) FROM pii_vault"); n != 0 {
		t.Errorf("%d rows left in the vault database after erasure", n)
	}
}

// TestKeyRotation: entries made under k1 are re-encrypted under k2; then k1 can be removed.
func TestKeyRotation(t *testing.T) {
	cfg := testdb.New(t, "rotate")
	ctx := context.Background()
	db := openTestDB(t, cfg)
	k1, k2, bidx := vault.NewKeyMaterial(), vault.NewKeyMaterial(), vault.NewKeyMaterial()
	ring1, _ := vault.ParseKeyring("k1:"+k1, bidx)
	svc1 := users.NewService(db, vault.New(ring1, nil), nil)
	var ids []string
	for i := 0; i < 7; i++ {
		var verr users.ValidationError
		p := newPerson()
		str := func(k string) *string { s := p[k].(string); return &s }
		nu := users.ParseNewUser(users.CreateFields{Name: str("name"), Email: str("email"), PrimaryMobile: str("primary_mobile"),
			DateOfBirth: str("date_of_birth"), PlaceOfBirth: str("place_of_birth"), Aadhaar: str("aadhaar"), PAN: str("pan"),
			CurrentAddress: str("current_address"), PermanentAddress: str("permanent_address")}, time.Now(), &verr)
		if verr.Err() != nil {
			t.Fatal(verr.Err())
		}
		u, err := svc1.Create(ctx, users.Caller{}, nu)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	ring12, _ := vault.ParseKeyring("k1:"+k1+",k2:"+k2, bidx)
	var batches int
	done, err := vault.Rotate(ctx, db, ring12, 3, func(vault.RotateProgress) { batches++ })
	if err != nil || done != 14 || batches != 5 {
		t.Fatalf("rotate: done=%d batches=%d err=%v", done, batches, err)
	}
	if n := countRows(t, db, "SELECT COUNT(*) FROM pii_vault WHERE key_id <> 'k2'"); n != 0 {
		t.Fatalf("%d entries not under k2", n)
	}
	// Resumable and idempotent: a second run has nothing to do.
	if done, err := vault.Rotate(ctx, db, ring12, 3, nil); err != nil || done != 0 {
		t.Fatalf("second rotation: %d %v", done, err)
	}
	ring2, _ := vault.ParseKeyring("k2:"+k2, bidx)
	svc2 := users.NewService(db, vault.New(ring2, nil), nil)
	for _, id := range ids {
		u, err := svc2.Get(ctx, users.Caller{}, id, true)
		if err != nil || u.Aadhaar.IsZero() || u.PAN.IsZero() {
			t.Fatalf("read with k2 only: %v %v", u.Aadhaar, err)
		}
	}
	svcOld := users.NewService(db, vault.New(ring1, nil), nil)
	if _, err := svcOld.Get(ctx, users.Caller{}, ids[0], true); err == nil {
		t.Fatal("k1 alone still decrypts after rotation")
	}
}
