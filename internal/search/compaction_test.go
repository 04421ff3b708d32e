package search_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/search"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
)

// TestCompactionLosesNothingUnderWrites creates and renames users from several goroutines while
// compactions run, then checks that every user is found by its current name and email, and never
// by a name it no longer has.
func TestCompactionLosesNothingUnderWrites(t *testing.T) {
	ctx := context.Background()
	cfg := testdb.New(t, "searchrace")
	db, err := mysqldb.Open(ctx, cfg, mysqldb.PoolConfig{MaxOpen: 12, MaxIdle: 12})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, _ := vault.ParseKeyring("r1:"+vault.NewKeyMaterial(), vault.NewKeyMaterial())
	svc := users.NewService(db, vault.New(keys, nil), nil)
	c := users.Caller{Actor: "test"}
	tag := strings.ToLower(testdb.Letters(6))
	const writers, each = 4, 30
	type made struct{ id, name, email, old string }
	results := make([][]made, writers)
	done := make(chan struct{})
	compactErr := make(chan error, 1)
	var during atomic.Int64 // users indexed while the writers ran
	go func() {             // compactions all along, as a replica's ticker would run them
		defer close(compactErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			n, err := search.Compact(ctx, db)
			if err != nil {
				compactErr <- err
				return
			}
			during.Add(int64(n))
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				name := fmt.Sprintf("Racer %s W%dx%dq", tag, w, i)
				email := fmt.Sprintf("race.%s.w%dx%dq@example.com", tag, w, i)
				u, err := svc.Create(ctx, c, newUser(t, name, email))
				if err != nil {
					t.Error(err)
					return
				}
				m := made{id: u.ID, name: name, email: email}
				if i%3 == 0 { // renamed right away: the new name must be found, the old one not
					m.old, m.name = name, fmt.Sprintf("Renamed %s V%dy%dq", tag, w, i)
					if _, err := svc.Update(ctx, c, u.ID, users.Precondition{}, users.Changes{Name: &m.name}); err != nil {
						t.Error(err)
						return
					}
				}
				results[w] = append(results[w], m)
			}
		}()
	}
	wg.Wait()
	close(done)
	if err := <-compactErr; err != nil {
		t.Fatal(err)
	}
	if during.Load() == 0 {
		t.Fatal("no compaction overlapped the writes")
	}
	if _, err := search.Compact(ctx, db); err != nil {
		t.Fatal(err)
	}
	var pending int
	_ = db.QueryRow("SELECT COUNT(*) FROM users WHERE search_dirty").Scan(&pending)
	if pending != 0 {
		t.Fatalf("%d users still pending", pending)
	}
	found := func(q string) []string {
		res, err := svc.Search(ctx, q, users.Page{Number: 1, Size: 10})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, u := range res.Items {
			ids = append(ids, u.ID)
		}
		return ids
	}
	for _, ms := range results {
		for _, m := range ms {
			if got := found(m.name); len(got) != 1 || got[0] != m.id {
				t.Errorf("name %q: %v, want [%s]", m.name, got, m.id)
			}
			if got := found(strings.TrimSuffix(m.email, "@example.com")); len(got) != 1 || got[0] != m.id {
				t.Errorf("email %q: %v, want [%s]", m.email, got, m.id)
			}
			if m.old != "" {
				if got := found(m.old); len(got) != 0 {
					t.Errorf("old name %q still found: %v", m.old, got)
				}
			}
		}
	}
}

// TestLegacyQueueIsDrained: a user queued in search_pending by a replica of the previous version
// (during a rolling upgrade) is found by search at once and indexed by the next compaction.
func TestLegacyQueueIsDrained(t *testing.T) {
	ctx := context.Background()
	cfg := testdb.New(t, "searchlegacy")
	db, err := mysqldb.Open(ctx, cfg, mysqldb.PoolConfig{MaxOpen: 4, MaxIdle: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, _ := vault.ParseKeyring("l1:"+vault.NewKeyMaterial(), vault.NewKeyMaterial())
	svc := users.NewService(db, vault.New(keys, nil), nil)
	u, err := svc.Create(ctx, users.Caller{Actor: "test"}, newUser(t, "Legacy Qwzx Person", "legacy."+strings.ToLower(testdb.Letters(6))+"@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	// What the previous version did instead of the flag.
	if _, err := db.Exec("UPDATE users SET search_dirty = FALSE WHERE id = ?", u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO search_pending (seq) SELECT seq FROM users WHERE id = ?", u.ID); err != nil {
		t.Fatal(err)
	}
	found := func(stage string) {
		res, err := svc.Search(ctx, "qwzx", users.Page{Number: 1, Size: 10})
		if err != nil || len(res.Items) != 1 || res.Items[0].ID != u.ID {
			t.Fatalf("%s: search for the legacy-queued user: %v %d", stage, err, len(res.Items))
		}
	}
	found("queued")
	if n, err := search.Compact(ctx, db); err != nil || n != 1 {
		t.Fatalf("compact: %d %v", n, err)
	}
	var left int
	if err := db.QueryRow("SELECT COUNT(*) FROM search_pending").Scan(&left); err != nil || left != 0 {
		t.Fatalf("search_pending keeps %d rows (%v)", left, err)
	}
	found("compacted")
}
