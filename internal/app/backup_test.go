package app_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/usersvc/usersvc/internal/app"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
)

// TestBackupRestore: a dump taken by `usersvc backup` restores into a new database where the
// service answers the same, decrypting with the configured keys and not without them.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	src := testdb.New(t, "backup")
	encKeys, bidx := "b1:"+vault.NewKeyMaterial(), vault.NewKeyMaterial()
	keys, _ := vault.ParseKeyring(encKeys, bidx)
	db, err := mysqldb.Open(ctx, src, mysqldb.PoolConfig{MaxOpen: 4, MaxIdle: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc := users.NewService(db, vault.New(keys, nil), nil)
	var made []users.User
	for i := 0; i < 5; i++ {
		u, err := svc.Create(ctx, users.Caller{Actor: "test"}, newUser(t))
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, u)
	}
	if _, err := svc.Delete(ctx, users.Caller{}, made[4].ID, users.Precondition{}); err != nil {
		t.Fatal(err)
	}

	dump := t.TempDir() + "/usersvc.sql.gz"
	var out bytes.Buffer
	if err := app.Run(ctx, []string{"usersvc", "backup", "--out", dump}, envOf(map[string]string{"DATABASE_URL": dbURL(src)}), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	dst := src.Clone()
	dst.DBName = src.DBName + "_restored"
	testdb.Drop(dst)
	t.Cleanup(func() { testdb.Drop(dst) })
	dstEnv := envOf(map[string]string{"DATABASE_URL": dbURL(dst)})
	if err := app.Run(ctx, []string{"usersvc", "restore", "--in", dump}, dstEnv, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	// Restoring over existing tables is refused.
	if err := app.Run(ctx, []string{"usersvc", "restore", "--in", dump}, dstEnv, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "already has") {
		t.Fatalf("restore over data: %v", err)
	}
	// The restored schema is exactly the desired one.
	out.Reset()
	if err := app.Run(ctx, []string{"usersvc", "migrate", "--dry-run"}, dstEnv, &out, io.Discard); err != nil || strings.TrimSpace(out.String()) != "schema is up to date" {
		t.Fatalf("migrate plan on the restored database: %q %v", out.String(), err)
	}

	rdb, err := mysqldb.Open(ctx, dst, mysqldb.PoolConfig{MaxOpen: 4, MaxIdle: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	restored := users.NewService(rdb, vault.New(keys, nil), nil)
	before, _ := svc.List(ctx, users.Page{Number: 1, Size: 100})
	after, err := restored.List(ctx, users.Page{Number: 1, Size: 100})
	if err != nil || after.Total != before.Total || after.Total != 4 {
		t.Fatalf("counts: before %d, after %d (%v)", before.Total, after.Total, err)
	}
	for _, u := range made[:4] {
		got, err := restored.Get(ctx, users.Caller{}, u.ID, true)
		if err != nil || got.Aadhaar != u.Aadhaar || got.PAN != u.PAN || got.Email != u.Email || got.Version != u.Version {
			t.Fatalf("user %s after restore: %v", u.ID, err)
		}
	}
	if _, err := restored.Get(ctx, users.Caller{}, made[4].ID, false); err == nil {
		t.Fatal("the soft-deleted user came back live")
	}
	// Without the right keys the dump's Aadhaar and PAN stay unreadable.
	otherKeys, _ := vault.ParseKeyring("b1:"+vault.NewKeyMaterial(), bidx)
	if _, err := users.NewService(rdb, vault.New(otherKeys, nil), nil).Get(ctx, users.Caller{}, made[0].ID, true); err == nil {
		t.Fatal("the restored data decrypts with another key")
	}
	if err := app.Run(ctx, []string{"usersvc", "backup"}, envOf(map[string]string{"DATABASE_URL": dbURL(src)}), io.Discard, io.Discard); err == nil {
		t.Fatal("backup without --out accepted")
	}
}

func newUser(t *testing.T) users.NewUser {
	t.Helper()
	tag := strings.ToLower(testdb.Letters(8))
	str := func(s string) *string { return &s }
	var verr users.ValidationError
	nu := users.ParseNewUser(users.CreateFields{
		Name: str("Backup User " + tag), Email: str("backup." + tag + "@example.com"), PrimaryMobile: str(testdb.Mobile()),
		DateOfBirth: str("1990-05-01"), PlaceOfBirth: str("Pune"), Aadhaar: str(testdb.Aadhaar()), PAN: str(testdb.PAN()),
		CurrentAddress: str("1 Long Road, Pune 411001"), PermanentAddress: str("1 Long Road, Pune 411001"),
	}, time.Now(), &verr)
	if err := verr.Err(); err != nil {
		t.Fatal(err)
	}
	return nu
}
