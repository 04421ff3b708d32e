package bench

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/usersvc/usersvc/internal/seed"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// freshCandidates picks where this run's people start (seed.Person's k). Their mobiles depend on
// k mod 10^9 and their Aadhaar numbers on k mod 10^10, and each seed run took a window of a few
// million k from a random start: a run whose start falls in one would find every mobile taken
// (every create a 409). So a start is tried on 32 people first and taken only if none of their
// mobiles is in use (a mobile clash is implied by an Aadhaar clash).
func freshCandidates(ctx context.Context, db *sql.DB, tag string) (uint64, error) {
	q := sqlcgen.New(db)
	for range 20 {
		start := rand.Uint64N(1 << 40)
		clash := false
		for k, n := start, 0; n < 32; k++ {
			p, ok := seed.Person(k, tag, time.Now())
			if !ok {
				continue
			}
			n++
			holders, err := q.FindUniqueHolders(ctx, sqlcgen.FindUniqueHoldersParams{PrimaryMobile: sql.NullString{String: p.PrimaryMobile, Valid: true}})
			if err != nil {
				return 0, err
			}
			if len(holders) > 0 {
				clash = true
				break
			}
		}
		if !clash {
			return start, nil
		}
	}
	return 0, errors.New("no start for new people whose mobiles are free: the database is nearly full of seeded mobiles")
}

// The write baselines work on scratch copies of users, pii_vault, user_audit and user_time_counts
// (same columns, indexes and engine; CREATE TABLE ... LIKE copies no foreign keys), in the same
// database, dropped afterwards. Their statements are the service's own (queries/), aimed at those copies: this is the
// one place where SQL is written in Go, because sqlc accessors cannot be pointed at another table
// (see docs/database.md).
func scratchTables(ctx context.Context, db *sql.DB) (func(), error) {
	drop := func() {
		for _, t := range []string{"bench_raw_users", "bench_raw_vault", "bench_raw_audit", "bench_raw_counts"} {
			_, _ = db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+t)
		}
	}
	drop()
	for _, stmt := range []string{
		"CREATE TABLE bench_raw_users LIKE users",
		"CREATE TABLE bench_raw_vault LIKE pii_vault",
		"CREATE TABLE bench_raw_audit LIKE user_audit",
		"CREATE TABLE bench_raw_counts LIKE user_time_counts",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			drop()
			return nil, err
		}
	}
	return drop, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// rawInsert is one single-row insert: the service's InsertUser statement (queries/users.sql),
// aimed at the scratch table; with db a *sql.DB it is committed on its own. It is the floor of a
// write (no vault, no audit).
func rawInsert(ctx context.Context, db execer, cand *atomic.Uint64, tag string, now time.Time) error {
	for {
		p, ok := seed.Person(cand.Add(1), tag, now)
		if !ok {
			continue
		}
		id, _ := uuid.NewV7()
		t := time.Now().UTC()
		_, err := db.ExecContext(ctx, `INSERT INTO bench_raw_users (
  id, name, email, email_key, primary_mobile, secondary_mobile, date_of_birth, place_of_birth,
  aadhaar_ref, pan_ref, current_address, permanent_address, created_at, updated_at, created_by, updated_by,
  is_deleted, version, is_active, email_verified, mobile_verified
) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, NULL, NULL, ?, ?, ?, ?, NULL, NULL, FALSE, ?, TRUE, FALSE, FALSE)`,
			id.String(), p.Name, p.Email.Display(), p.Email.Key(), p.PrimaryMobile, p.DateOfBirth, p.PlaceOfBirth,
			p.CurrentAddress, p.PermanentAddress, t, t, uuid.NewString())
		return err
	}
}

// rawWrite3 is the three-row baseline: one READ COMMITTED transaction (as the service's writes)
// inserting a users row, one vault row and one audit row into the scratch tables. With
// createShape it sends a create's own statements instead: the vault's two rows in one statement
// (InsertVaultEntryPair) and the five-row live-count upsert (AddLiveUsersAt), so that the bench
// separates what a create's SQL costs from what the service around it costs.
func rawWrite3(ctx context.Context, db *sql.DB, cand *atomic.Uint64, tag string, now time.Time, createShape bool) error {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := rawInsert(ctx, tx, cand, tag, now); err != nil {
		return err
	}
	t := time.Now().UTC()
	ref, ref2 := uuid.NewString(), uuid.NewString()
	blind, blind2 := sha256.Sum256([]byte(ref)), sha256.Sum256([]byte(ref2))
	vault := `INSERT INTO bench_raw_vault (ref, kind, blind_index, key_id, ciphertext, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?)`
	args := []any{ref, "aadhaar", blind[:], "b1", blind[:], t, t}
	if createShape {
		vault += ", (?, ?, ?, ?, ?, ?, ?)"
		args = append(args, ref2, "pan", blind2[:], "b1", blind2[:], t, t)
	}
	if _, err := tx.ExecContext(ctx, vault, args...); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO bench_raw_audit (user_id, action, actor, request_id, changed_fields, version, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?)`, ref, "create", "bench", nil, "name,email", uuid.NewString(), t); err != nil {
		return err
	}
	if createShape {
		u, slot := t.Unix(), rand.IntN(16)
		if _, err := tx.ExecContext(ctx, `INSERT INTO bench_raw_counts (unit, bucket, slot, live)
VALUES (0, 0, ?, 1), (1, ?, ?, 1), (2, ?, ?, 1), (3, ?, ?, 1), (4, ?, ?, 1) ON DUPLICATE KEY UPDATE live = live + 1`,
			slot, u/86400, slot, u/3600, slot, u/60, slot, u, slot); err != nil {
			return err
		}
	}
	return tx.Commit()
}
