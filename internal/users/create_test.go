package users_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
)

// userWith is a valid new user with name and email, and a second mobile when asked.
func userWith(t *testing.T, name, email string, withSecondary bool) users.NewUser {
	t.Helper()
	str := func(s string) *string { return &s }
	f := users.CreateFields{
		Name: str(name), Email: str(email), PrimaryMobile: str(testdb.Mobile()),
		DateOfBirth: str("1990-02-28"), PlaceOfBirth: str("Pune"), Aadhaar: str(testdb.Aadhaar()),
		PAN: str(testdb.PAN()), CurrentAddress: str("1 MG Road, Pune"), PermanentAddress: str("2 FC Road, Pune"),
	}
	if withSecondary {
		f.SecondaryMobile = str(testdb.Mobile())
	}
	var verr users.ValidationError
	nu := users.ParseNewUser(f, time.Now(), &verr)
	if err := verr.Err(); err != nil {
		t.Fatalf("fixture user is invalid: %v", err)
	}
	return nu
}

func countRows(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCreate checks the create use case through the write skeleton: what it returns is exactly
// what a read returns, every row is written (audit, search queue, live counts, idempotency key),
// and a create the database refuses (a taken email) leaves nothing behind, even on a pool of one
// connection, where a transaction left open would be committed by the next one.
func TestCreate(t *testing.T) {
	ctx := context.Background()
	cfg := testdb.New(t, "create")
	db, err := mysqldb.Open(ctx, cfg, mysqldb.PoolConfig{MaxOpen: 1, MaxIdle: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	other, err := mysqldb.Open(ctx, cfg, mysqldb.PoolConfig{MaxOpen: 1, MaxIdle: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	keys, _ := vault.ParseKeyring("p1:"+vault.NewKeyMaterial(), vault.NewKeyMaterial())
	svc := users.NewService(db, vault.New(keys, nil), nil)

	var made []users.User
	for i := range 6 {
		c := users.Caller{Actor: "tester", RequestID: fmt.Sprintf("req-%d", i)}
		if i%2 == 0 {
			h := sha256.Sum256(fmt.Appendf(nil, "key-%d", i))
			c.Idempotency = &users.Idempotency{KeyHash: h[:], Fingerprint: h[:], TTL: time.Hour}
		}
		u, err := svc.Create(ctx, c, userWith(t, fmt.Sprintf("Ananyā D'Souza %d", i), fmt.Sprintf("Pipe.%d.%s@Example.com", i, testdb.Digits(6)), i%3 == 0))
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		got, err := svc.Get(ctx, users.Caller{}, u.ID, true)
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if !reflect.DeepEqual(u, got) {
			t.Fatalf("create %d returned\n%#v\nbut a read gives\n%#v", i, u, got)
		}
		made = append(made, u)
	}
	want := map[string]int{"users": 6, "user_audit WHERE action = '" + users.ActionCreate + "'": 6, "users WHERE search_dirty": 6, "idempotency_keys": 3, "pii_vault": 12}
	for table, n := range want {
		if got := countRows(t, other, table); got != n {
			t.Errorf("%s has %d rows after 6 creates, want %d", table, got, n)
		}
	}
	var live int64
	if err := other.QueryRow("SELECT COALESCE(SUM(live), 0) FROM user_time_counts WHERE unit = 0").Scan(&live); err != nil {
		t.Fatal(err)
	}
	var minutes int64
	if err := other.QueryRow("SELECT COALESCE(SUM(live), 0) FROM user_time_counts WHERE unit = 3").Scan(&minutes); err != nil {
		t.Fatal(err)
	}
	if live != 6 || minutes != 6 {
		t.Fatalf("live counts after 6 creates: total %d, by minute %d", live, minutes)
	}
	var pending int
	if err := other.QueryRow("SELECT COUNT(*) FROM users WHERE search_dirty AND id = ?", made[5].ID).Scan(&pending); err != nil || pending != 1 {
		t.Fatalf("the last user is not flagged for the search compactor: %d, %v", pending, err)
	}

	// Refused: the email is taken. The vault inserts ran before the users insert failed; they
	// must be rolled back, and the conflict reported.
	vaultBefore := countRows(t, other, "pii_vault")
	dup := userWith(t, fmt.Sprintf("Ananyā D'Souza %d", 10), made[1].Email, false)
	if _, err := svc.Create(ctx, users.Caller{Actor: "tester"}, dup); !errors.Is(err, users.ErrConflict) {
		t.Fatalf("create with a taken email: %v, want a conflict", err)
	}
	// The one connection goes on: a new create commits on it, and nothing of the refused one
	// was committed with it.
	fresh, err := svc.Create(ctx, users.Caller{Actor: "tester"}, userWith(t, fmt.Sprintf("Ananyā D'Souza %d", 11), "pipe.fresh."+testdb.Digits(6)+"@example.com", false))
	if err != nil {
		t.Fatal(err)
	}
	if got := countRows(t, other, "pii_vault"); got != vaultBefore+2 {
		t.Fatalf("pii_vault has %d rows, want %d: the refused create left rows behind", got, vaultBefore+2)
	}
	if got := countRows(t, other, "users"); got != 7 {
		t.Fatalf("users has %d rows, want 7", got)
	}

	// Refused: the idempotency key was used.
	h := sha256.Sum256([]byte("key-0"))
	again := users.Caller{Actor: "tester", Idempotency: &users.Idempotency{KeyHash: h[:], Fingerprint: h[:], TTL: time.Hour}}
	var applied *users.AppliedError
	if _, err := svc.Create(ctx, again, userWith(t, fmt.Sprintf("Ananyā D'Souza %d", 12), "pipe.again."+testdb.Digits(6)+"@example.com", false)); !errors.As(err, &applied) || applied.UserID != made[0].ID {
		t.Fatalf("create with a used idempotency key: %v, want AppliedError for %s", err, made[0].ID)
	}

	// Refused: the email belongs to a deleted user, who is restored with the new data.
	if _, err := svc.Delete(ctx, users.Caller{Actor: "tester"}, made[2].ID, users.Precondition{}); err != nil {
		t.Fatal(err)
	}
	revived, err := svc.Create(ctx, users.Caller{Actor: "tester", MayRevive: true}, userWith(t, fmt.Sprintf("Ananyā D'Souza %d", 13), made[2].Email, false))
	if err != nil || revived.ID != made[2].ID {
		t.Fatalf("create with a deleted user's email: %v, id %s, want %s", err, revived.ID, made[2].ID)
	}
	if got := countRows(t, other, "users"); got != 7 {
		t.Fatalf("users has %d rows after the restore, want 7", got)
	}
	_ = fresh

	// With the vault reached through its own pool (as with a separate vault database) a create
	// writes the same rows: the user is queued for search by its seq.
	separate := users.NewService(db, vault.New(keys, other), nil)
	u, err := separate.Create(ctx, users.Caller{Actor: "tester"}, userWith(t, "Interactive Create", "pipe.interactive."+testdb.Digits(6)+"@example.com", false))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.QueryRow("SELECT COUNT(*) FROM users WHERE search_dirty AND id = ?", u.ID).Scan(&pending); err != nil || pending != 1 {
		t.Fatalf("the user created with a separate vault pool is not queued for search: %d, %v", pending, err)
	}
}
