package events

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
)

// fixture is a fresh database with the users service on it, and the personal values it wrote.
type fixture struct {
	t    *testing.T
	cfg  string
	db   *sql.DB
	svc  *users.Service
	mu   sync.Mutex
	pii  []string // every personal value written, in the forms a leak could take
	seqN int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := testdb.New(t, "events")
	db := openDB(t, testdb.URL(cfg))
	keys, _ := vault.ParseKeyring("e1:"+vault.NewKeyMaterial(), vault.NewKeyMaterial())
	return &fixture{t: t, cfg: testdb.URL(cfg), db: db, svc: users.NewService(db, vault.New(keys, nil), nil)}
}

func openDB(t *testing.T, url string) *sql.DB {
	t.Helper()
	cfg, err := mysqldb.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	db, err := mysqldb.Open(context.Background(), cfg, mysqldb.PoolConfig{MaxOpen: 8, MaxIdle: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// redisFor returns a client of the test Redis and a stream key of this test's own, deleted
// (with its lease key) when the test ends.
func redisFor(t *testing.T, url string) (redis.UniversalClient, string) {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	stream := "usersvc-test-" + strings.ToLower(testdb.Letters(8)) + ":events"
	t.Cleanup(func() {
		rdb.Del(context.Background(), stream, stream+":relay")
		rdb.Close()
	})
	return rdb, stream
}

// life makes one user go through every kind of change: create, update, a full read (which is no
// change and has no event), delete, restore, and, when erase is set, erasure. It returns the
// number of events the user's changes make.
func (f *fixture) life(ctx context.Context, erase bool) (int, error) {
	f.mu.Lock()
	f.seqN++
	n := f.seqN
	f.mu.Unlock()
	str := func(s string) *string { return &s }
	cf := users.CreateFields{
		Name: str(fmt.Sprintf("Eventful Person %d %s", n, testdb.Letters(5))), Email: str(fmt.Sprintf("eventful.%d.%s@example.com", n, testdb.Digits(6))),
		PrimaryMobile: str(testdb.Mobile()), DateOfBirth: str("1987-03-19"), PlaceOfBirth: str("Nagpur " + testdb.Letters(4)),
		Aadhaar: str(testdb.Aadhaar()), PAN: str(testdb.PAN()),
		CurrentAddress: str("14 Civil Lines " + testdb.Letters(6)), PermanentAddress: str("9 Sitabuldi " + testdb.Letters(6)),
	}
	newName, newAddress := fmt.Sprintf("Renamed Person %d %s", n, testdb.Letters(5)), "77 Dharampeth "+testdb.Letters(6)
	f.mu.Lock()
	f.pii = append(f.pii, *cf.Name, *cf.Email, *cf.PrimaryMobile, *cf.PlaceOfBirth, *cf.Aadhaar, *cf.PAN,
		*cf.CurrentAddress, *cf.PermanentAddress, newName, newAddress, "1987-03-19", "19/03/1987")
	f.mu.Unlock()
	var verr users.ValidationError
	nu := users.ParseNewUser(cf, time.Now(), &verr)
	if err := verr.Err(); err != nil {
		return 0, err
	}
	c := users.Caller{Actor: "apikey:events-test", RequestID: fmt.Sprintf("req-%d", n), MayRevive: true}
	u, err := f.svc.Create(ctx, c, nu)
	if err != nil {
		return 0, err
	}
	ch := users.ParseChanges(users.UpdateFields{Name: &newName, CurrentAddress: &newAddress}, &verr)
	if u, err = f.svc.Update(ctx, c, u.ID, users.Precondition{}, ch); err != nil {
		return 0, err
	}
	if _, err := f.svc.Get(ctx, c, u.ID, true); err != nil { // a pii_read: no event
		return 0, err
	}
	if _, err := f.svc.Delete(ctx, c, u.ID, users.Precondition{}); err != nil {
		return 0, err
	}
	if _, err := f.svc.Restore(ctx, c, u.ID, users.Precondition{}); err != nil {
		return 0, err
	}
	if !erase {
		return 4, nil
	}
	_, err = f.svc.Erase(ctx, c, u.ID, "asked by the person")
	return 5, err
}

// lives runs n lives on `workers` goroutines and returns the number of events they make.
func (f *fixture) lives(ctx context.Context, n, workers int) int {
	f.t.Helper()
	var mu sync.Mutex
	var total int
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				k, err := f.life(ctx, i%3 == 0)
				mu.Lock()
				total += k
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if firstErr != nil {
		f.t.Fatal(firstErr)
	}
	return total
}

// waitDrained waits until no event is pending.
func (f *fixture) waitDrained(timeout time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, _, err := Backlog(context.Background(), f.db, time.Now())
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%d events still pending after %v (err %v)", n, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// changeIDs are the ids of every audit row that is a change (an event), in id order.
func (f *fixture) changeIDs() []uint64 {
	f.t.Helper()
	rows, err := f.db.Query("SELECT id FROM user_audit WHERE action NOT IN ('pii_read', 'pii_export') ORDER BY id")
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var ids []uint64
	for rows.Next() {
		var id uint64
		if err := rows.Scan(&id); err != nil {
			f.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return ids
}

// readStream reads every entry of the stream, in stream order.
func readStream(t *testing.T, rdb redis.UniversalClient, stream string) ([]Event, []redis.XMessage) {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	evs := make([]Event, len(msgs))
	for i, m := range msgs {
		if evs[i], err = Parse(m.Values); err != nil {
			t.Fatal(err)
		}
	}
	return evs, msgs
}

// checkComplete checks that the events, duplicates dropped by event_id as a consumer would, are
// exactly the changes in the audit trail, each user's in commit (id) order; it returns how many
// events were duplicates.
func checkComplete(t *testing.T, f *fixture, evs []Event) (dups int) {
	t.Helper()
	seen := map[uint64]bool{}
	lastOf := map[string]uint64{}
	for _, e := range evs {
		if seen[e.ID] {
			dups++
			continue
		}
		seen[e.ID] = true
		if e.ID <= lastOf[e.UserID] {
			t.Fatalf("user %s: event %d after event %d: not in commit order", e.UserID, e.ID, lastOf[e.UserID])
		}
		lastOf[e.UserID] = e.ID
	}
	want := f.changeIDs()
	if len(seen) != len(want) {
		t.Fatalf("%d distinct events published, the audit trail holds %d changes", len(seen), len(want))
	}
	for _, id := range want {
		if !seen[id] {
			t.Fatalf("change %d was never published", id)
		}
	}
	return dups
}
