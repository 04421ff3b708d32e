package users_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"
	"time"

	"github.com/usersvc/usersvc/internal/livecounts"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/seed"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
)

// walk is the plain answer for a page by number: the offset walked on the index.
func walk(t *testing.T, db *sql.DB, off, size int) []string {
	t.Helper()
	rows, err := db.Query("SELECT id FROM users WHERE is_deleted = FALSE ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?", size, off)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestDeepPagesFromDayCounts checks that pages by number found through user_time_counts are
// exactly the pages of a plain offset walk, after creates on several days, deletes, restores,
// revives and erasures through the service, and after the counts are rebuilt by migrate's recount.
func TestDeepPagesFromDayCounts(t *testing.T) {
	ctx := context.Background()
	cfg := testdb.New(t, "daypages")
	db, err := mysqldb.Open(ctx, cfg, mysqldb.PoolConfig{MaxOpen: 4, MaxIdle: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, _ := vault.ParseKeyring("d1:"+vault.NewKeyMaterial(), vault.NewKeyMaterial())
	v := vault.New(keys, nil)
	if _, err := seed.Run(ctx, db, v, seed.Options{Count: 2600, Workers: 2, Batch: 500}); err != nil {
		t.Fatal(err)
	}
	// The service's clock moves back 5 days and 10 hours per user, so that its users land on many
	// days, over 160 days: deep pages read more than one window of 64 days.
	clock := time.Now().UTC()
	svc := users.NewService(db, v, func() time.Time { clock = clock.Add(-130 * time.Hour); return clock })
	c := users.Caller{Actor: "test"}
	var made []users.User
	for i := 0; i < 30; i++ {
		u, err := svc.Create(ctx, c, newUser(t))
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, u)
	}
	// A burst: 60 users registered within one second (1 ms apart), deep in the list (seeded users
	// span 30 days), so that pages start inside a second that holds many users.
	burstAt := time.Now().UTC().Add(-27 * 24 * time.Hour).Truncate(time.Minute)
	burst := users.NewService(db, v, func() time.Time { burstAt = burstAt.Add(time.Millisecond); return burstAt })
	for i := 0; i < 60; i++ {
		if _, err := burst.Create(ctx, c, newUser(t)); err != nil {
			t.Fatal(err)
		}
	}
	var seeded []string
	for _, off := range []int{2100, 2300, 2500} { // seeded users deep in the list
		seeded = append(seeded, walk(t, db, off, 1)...)
	}
	for _, id := range append(seeded, made[0].ID, made[1].ID, made[2].ID) {
		if _, err := svc.Delete(ctx, c, id, users.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Restore(ctx, c, seeded[1], users.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Erase(ctx, c, made[3].ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Erase(ctx, c, made[2].ID, "test"); err != nil { // erased while deleted
		t.Fatal(err)
	}
	check := func(stage string) {
		var total int
		if err := db.QueryRow("SELECT COUNT(*) FROM users WHERE is_deleted = FALSE").Scan(&total); err != nil {
			t.Fatal(err)
		}
		// Size 10 descends to seconds on every page; size 7 stops at a bucket of at most
		// livecounts.WalkWithin users (here, a day) and walks it.
		for _, size := range []int{10, 7} {
			restore := func() {}
			if size == 10 {
				restore = users.SetWalkWithin(0)
			}
			for page := 1; (page-1)*size <= total; page++ {
				got, err := svc.List(ctx, users.Page{Number: page, Size: size})
				if err != nil {
					t.Fatal(err)
				}
				if got.Total != int64(total) {
					t.Fatalf("%s: total %d, want %d", stage, got.Total, total)
				}
				var ids []string
				for _, u := range got.Items {
					ids = append(ids, u.ID)
				}
				if want := walk(t, db, (page-1)*size, size); !slices.Equal(ids, want) {
					t.Fatalf("%s: page %d of %d: %v, want %v", stage, page, size, ids, want)
				}
			}
			restore()
		}
		// Every deep page was placed by the counts, not by the fallback walk (which would give
		// the same pages, only slowly).
		if n := svc.PageFallbacks(); n != 0 {
			t.Fatalf("%s: %d deep pages fell back to the offset walk", stage, n)
		}
	}
	check("maintained")
	if _, err := db.Exec("DELETE FROM user_time_counts"); err != nil {
		t.Fatal(err)
	}
	if _, err := livecounts.Recount(ctx, db); err != nil {
		t.Fatal(err)
	}
	check("recounted")
	// Counts that cannot place a page (minutes missing, as if edited by hand) still give the right
	// page, through the fallback, and the fallback is counted.
	if _, err := db.Exec("DELETE FROM user_time_counts WHERE unit = 3"); err != nil { // no minutes
		t.Fatal(err)
	}
	defer users.SetWalkWithin(0)() // so that the page is placed down to minutes
	last := (int(mustTotal(t, db)) - 1) / 10 * 10
	got, err := svc.List(ctx, users.Page{Number: last/10 + 1, Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, u := range got.Items {
		ids = append(ids, u.ID)
	}
	if want := walk(t, db, last, 10); !slices.Equal(ids, want) || svc.PageFallbacks() == 0 {
		t.Fatalf("short counts: %v, want %v; %d fallbacks", ids, want, svc.PageFallbacks())
	}
}

func mustTotal(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow("SELECT COUNT(*) FROM users WHERE is_deleted = FALSE").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func newUser(t *testing.T) users.NewUser {
	t.Helper()
	return userWith(t, "Day Pages "+testdb.Letters(6), "day."+testdb.Letters(8)+"@example.com", false)
}

// TestLegacyUserCountsAddToTheTotal: during a rolling upgrade, replicas of the previous version add
// their changes to the legacy user_counts table; the total is the sum of both, and a recount folds
// them into unit 0.
func TestLegacyUserCountsAddToTheTotal(t *testing.T) {
	ctx := context.Background()
	cfg := testdb.New(t, "legacycounts")
	db, err := mysqldb.Open(ctx, cfg, mysqldb.PoolConfig{MaxOpen: 4, MaxIdle: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, _ := vault.ParseKeyring("c1:"+vault.NewKeyMaterial(), vault.NewKeyMaterial())
	svc := users.NewService(db, vault.New(keys, nil), nil)
	for range 3 {
		if _, err := svc.Create(ctx, users.Caller{Actor: "test"}, newUser(t)); err != nil {
			t.Fatal(err)
		}
	}
	total := func() int64 {
		page, err := svc.List(ctx, users.Page{Number: 1, Size: 10})
		if err != nil {
			t.Fatal(err)
		}
		return page.Total
	}
	// One of the three as the previous version counted it: in user_counts, not in unit 0.
	if _, err := db.Exec("UPDATE user_time_counts SET live = live - 1 WHERE unit = 0 AND bucket = 0 AND live > 0 LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO user_counts (slot, live) VALUES (7, 1)"); err != nil {
		t.Fatal(err)
	}
	if got := total(); got != 3 {
		t.Fatalf("total with a legacy count: %d, want 3", got)
	}
	if n, err := livecounts.Recount(ctx, db); err != nil || n != 3 {
		t.Fatalf("recount: %d %v", n, err)
	}
	var legacy int
	if err := db.QueryRow("SELECT COUNT(*) FROM user_counts").Scan(&legacy); err != nil || legacy != 0 {
		t.Fatalf("user_counts keeps %d rows after a recount (%v)", legacy, err)
	}
	if got := total(); got != 3 {
		t.Fatalf("total after the recount: %d, want 3", got)
	}
}

// TestMaskedReadsNeedNoVault: a read without users:pii answers the masks from the users row and
// never decrypts (it works with the vault entry made unreadable); a full read still goes to the
// vault. Rows from before the mask columns are filled by BackfillMasks, and read through the
// vault until then.
func TestMaskedReadsNeedNoVault(t *testing.T) {
	ctx := context.Background()
	cfg := testdb.New(t, "masks")
	db, err := mysqldb.Open(ctx, cfg, mysqldb.PoolConfig{MaxOpen: 4, MaxIdle: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, _ := vault.ParseKeyring("m1:"+vault.NewKeyMaterial(), vault.NewKeyMaterial())
	svc := users.NewService(db, vault.New(keys, nil), nil)
	c := users.Caller{Actor: "test"}
	a, err := svc.Create(ctx, c, newUser(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := svc.Create(ctx, c, newUser(t))
	if err != nil {
		t.Fatal(err)
	}
	// a's vault entries made unreadable: a masked read does not notice, a full read does.
	if _, err := db.Exec("UPDATE pii_vault v JOIN users u ON v.ref IN (u.aadhaar_ref, u.pan_ref) SET v.ciphertext = 'x' WHERE u.id = ?", a.ID); err != nil {
		t.Fatal(err)
	}
	got, err := svc.Get(ctx, c, a.ID, false)
	if err != nil || got.Aadhaar.Masked() != a.Aadhaar.Masked() || got.PAN.Masked() != a.PAN.Masked() || got.Aadhaar.Digits() != "" {
		t.Fatalf("masked read: %v %q %q", err, got.Aadhaar.Masked(), got.PAN.Masked())
	}
	if _, err := svc.Get(ctx, c, a.ID, true); err == nil {
		t.Fatal("a full read did not go to the vault")
	}
	// b as a row from before the mask columns: read through the vault, then backfilled.
	if _, err := db.Exec("UPDATE users SET aadhaar_last4 = NULL, pan_last5 = NULL WHERE id = ?", b.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := svc.Get(ctx, c, b.ID, false); err != nil || got.Aadhaar.Masked() != b.Aadhaar.Masked() {
		t.Fatalf("masked read before the backfill: %v %q", err, got.Aadhaar.Masked())
	}
	// a has its masks, so the backfill never reads its broken entries.
	n, err := svc.BackfillMasks(ctx, 1)
	if err != nil || n != 1 {
		t.Fatalf("backfill: %d %v", n, err)
	}
	var last4, last5 string
	if err := db.QueryRow("SELECT aadhaar_last4, pan_last5 FROM users WHERE id = ?", b.ID).Scan(&last4, &last5); err != nil ||
		"XXXX XXXX "+last4 != b.Aadhaar.Masked() || "XXXXX"+last5 != b.PAN.Masked() {
		t.Fatalf("backfilled %q %q (%v)", last4, last5, err)
	}
	if n, err := svc.BackfillMasks(ctx, 10); err != nil || n != 0 {
		t.Fatalf("a second backfill: %d %v", n, err)
	}
}

// A page read outside a snapshot finds ids first and reads their rows next: a user deleted or
// erased in between is left out, never shown as a deleted user or a tombstone.
func TestPagesLeaveOutUsersGoneSinceTheWalk(t *testing.T) {
	ctx := context.Background()
	db, err := mysqldb.Open(ctx, testdb.New(t, "pagegone"), mysqldb.PoolConfig{MaxOpen: 2, MaxIdle: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, _ := vault.ParseKeyring("d1:"+vault.NewKeyMaterial(), vault.NewKeyMaterial())
	svc := users.NewService(db, vault.New(keys, nil), time.Now)
	c := users.Caller{Actor: "test"}
	var ids []string
	for i := 0; i < 3; i++ {
		u, err := svc.Create(ctx, c, newUser(t))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, u.ID)
	}
	if _, err := svc.Delete(ctx, c, ids[0], users.Precondition{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Erase(ctx, c, ids[1], "test"); err != nil {
		t.Fatal(err)
	}
	got, err := svc.UsersInOrder(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != ids[2] {
		t.Fatalf("page of %v after deleting the first and erasing the second: %v", ids, got)
	}
}
