package mysqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/sqlcgen"
	"github.com/usersvc/usersvc/internal/testdb"
)

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	cfg := testdb.New(t, "tx")
	db, err := mysqldb.Open(context.Background(), cfg, mysqldb.PoolConfig{MaxOpen: 10, MaxIdle: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var seq atomic.Int64

func insertUser(ctx context.Context, q *sqlcgen.Queries) (string, error) {
	id := uuid.NewString()
	n := seq.Add(1)
	now := time.Now().UTC()
	_, err := q.InsertUser(ctx, sqlcgen.InsertUserParams{
		ID: id, Name: "Tx Test", Email: id + "@example.com", EmailKey: sql.NullString{String: id + "@example.com", Valid: true},
		PrimaryMobile:  sql.NullString{String: "9" + leftPad(n, 9), Valid: true},
		DateOfBirth:    sql.NullTime{Time: time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC), Valid: true},
		PlaceOfBirth:   "Pune",
		CurrentAddress: "somewhere long enough", PermanentAddress: "somewhere long enough",
		CreatedAt: now, UpdatedAt: now, Version: uuid.NewString(),
	})
	return id, err
}

func leftPad(n int64, width int) string {
	s := []byte("000000000000")[:width]
	for i := width - 1; i >= 0 && n > 0; i-- {
		s[i] = byte('0' + n%10)
		n /= 10
	}
	return string(s)
}

func exists(t *testing.T, db *sql.DB, id string) bool {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM users WHERE id = ?", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestInTxCommitsAndRollsBack(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	var kept, dropped string
	if err := mysqldb.InTx(ctx, db, mysqldb.ReadCommitted, func(ctx context.Context, q *sqlcgen.Queries) (err error) {
		kept, err = insertUser(ctx, q)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := mysqldb.InTx(ctx, db, mysqldb.ReadCommitted, func(ctx context.Context, q *sqlcgen.Queries) (err error) {
		if dropped, err = insertUser(ctx, q); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error lost: %v", err)
	}
	if !exists(t, db, kept) || exists(t, db, dropped) {
		t.Fatal("commit/rollback wrong")
	}
}

// A request cancelled while its transaction is open must not commit, and the error must say so.
func TestInTxCancelledBeforeCommitRollsBack(t *testing.T) {
	db := openDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	var id string
	err := mysqldb.InTx(ctx, db, mysqldb.ReadCommitted, func(ctx context.Context, q *sqlcgen.Queries) (err error) {
		id, err = insertUser(ctx, q)
		cancel() // the client went away after the write, before the commit
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	// Uncommitted rows are invisible to other sessions, so this sees the row only if it committed.
	if exists(t, db, id) {
		t.Fatal("a cancelled transaction was committed")
	}
}

func TestInTxRetryIsBounded(t *testing.T) {
	db := openDB(t)
	calls := 0
	err := mysqldb.InTx(context.Background(), db, mysqldb.ReadCommitted, func(context.Context, *sqlcgen.Queries) error {
		calls++
		return &mysql.MySQLError{Number: 1213, Message: "Deadlock found"}
	})
	if !errors.Is(err, mysqldb.ErrRetryable) || calls != mysqldb.MaxAttempts {
		t.Fatalf("calls=%d err=%v", calls, err)
	}
	calls = 0
	err = mysqldb.InTx(context.Background(), db, mysqldb.ReadCommitted, func(context.Context, *sqlcgen.Queries) error {
		calls++
		if calls == 1 {
			return &mysql.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded"}
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("calls=%d err=%v", calls, err)
	}
}

// Two transactions lock two rows in opposite orders: the server kills one with a deadlock
// (1213), InTx reruns it, and both units complete.
func TestInTxSurvivesRealDeadlock(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	var a, b string
	if err := mysqldb.InTx(ctx, db, nil, func(ctx context.Context, q *sqlcgen.Queries) (err error) {
		if a, err = insertUser(ctx, q); err != nil {
			return err
		}
		b, err = insertUser(ctx, q)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var (
		wg       sync.WaitGroup
		barrier  sync.WaitGroup
		attempts atomic.Int32
	)
	barrier.Add(2)
	lockBoth := func(first, second string) error {
		try := 0
		return mysqldb.InTx(ctx, db, mysqldb.ReadCommitted, func(ctx context.Context, q *sqlcgen.Queries) error {
			attempts.Add(1)
			try++
			if _, err := q.LockUser(ctx, first); err != nil {
				return err
			}
			if try == 1 {
				barrier.Done()
				barrier.Wait()
			}
			_, err := q.LockUser(ctx, second)
			return err
		})
	}
	errs := make([]error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs[0] = lockBoth(a, b) }()
	go func() { defer wg.Done(); errs[1] = lockBoth(b, a) }()
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("errors: %v", errs)
	}
	if attempts.Load() < 3 {
		t.Fatalf("attempts=%d: no deadlock happened, the test proves nothing", attempts.Load())
	}
}

// ReadSnapshot sets no isolation of its own: its transactions are REPEATABLE READ because Open
// makes every session so, even on a server whose default is READ COMMITTED. A row committed
// meanwhile stays invisible to the snapshot; a READ COMMITTED write transaction on the same pool
// sees it at once.
func TestReadSnapshotIsRepeatableRead(t *testing.T) {
	ctx := context.Background()
	cfg := testdb.New(t, "snapshot")
	// A server whose default is READ COMMITTED, as some DBAs configure it: the session's own
	// setting must win. (Session variables in the URL are sent before Open's statement.)
	cfg.Params["tx_isolation"] = "'READ-COMMITTED'"
	if probe, err := mysqldb.Open(ctx, cfg, mysqldb.PoolConfig{MaxOpen: 1, MaxIdle: 1}); err == nil {
		_ = probe.Close()
	} else { // MySQL 8.0 names the variable transaction_isolation
		delete(cfg.Params, "tx_isolation")
		cfg.Params["transaction_isolation"] = "'READ-COMMITTED'"
	}
	db, err := mysqldb.Open(ctx, cfg, mysqldb.PoolConfig{MaxOpen: 2, MaxIdle: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(q *sqlcgen.Queries) int64 {
		n, err := q.CountLiveUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	err = mysqldb.InTx(ctx, db, mysqldb.ReadSnapshot, func(ctx context.Context, q *sqlcgen.Queries) error {
		before := count(q)
		if err := mysqldb.InTx(ctx, db, mysqldb.ReadCommitted, func(ctx context.Context, w *sqlcgen.Queries) error {
			_, err := insertUser(ctx, w)
			return err
		}); err != nil {
			return err
		}
		if after := count(q); after != before {
			t.Errorf("the snapshot saw a row committed after it began: %d, then %d", before, after)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = mysqldb.InTx(ctx, db, mysqldb.ReadCommitted, func(ctx context.Context, q *sqlcgen.Queries) error {
		before := count(q)
		if err := mysqldb.InTx(ctx, db, mysqldb.ReadCommitted, func(ctx context.Context, w *sqlcgen.Queries) error {
			_, err := insertUser(ctx, w)
			return err
		}); err != nil {
			return err
		}
		if after := count(q); after != before+1 {
			t.Errorf("a READ COMMITTED transaction did not see a committed row: %d, then %d", before, after)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
