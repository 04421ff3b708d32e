package users

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// The write skeleton. Every write use case (create, update, delete, restore) is one transaction of
// this shape, run by Service.write:
//
//  1. record the Idempotency-Key, if the request has one (recordIdempotency): a key already used
//     ends the transaction with an *AppliedError before anything else happens;
//  2. lock the user's row and check that it is in the state the use case needs (live, or
//     soft-deleted for a restore) and that the caller's version precondition allows it;
//  3. run the use case's own statements (its step), which say what changed;
//  4. write one audit row naming the changed fields (nothing changed: no audit row, same version);
//  5. read the user back (MySQL has no RETURNING), inside the same transaction, unless the step
//     wrote every column itself (a new user) and says so.
//
// A step only says what is its own; it never opens a transaction, locks or audits.

// rowState is the state a write needs its user's row in.
type rowState int

const (
	noRow      rowState = iota // a create: the step makes the row
	liveRow                    // update, delete
	deletedRow                 // restore
)

// unit describes one write for the skeleton.
type unit struct {
	action string // the audit action
	id     string // the user (a create passes the id it will give the new user)
	state  rowState
	pre    Precondition
	// readBack: answer with the user as written (delete does not: the user is no longer live).
	readBack bool
}

// txWrite is what a step works with and reports.
type txWrite struct {
	now     time.Time
	version string   // the user's new version, if the step writes
	id      string   // the user; a create that revives a deleted user sets that user's id
	action  string   // the audit action; a create that revives says create_restore
	changed []string // the fields the step changed; none: nothing was written
	// written, when a step set it, is the whole user exactly as a read would return it (a new
	// user: every column is known): the skeleton then saves the read-back's round trip.
	written *User
}

// step is a use case's own part of a write: its statements, given the locked row (the zero row
// for a create).
type step func(ctx context.Context, q *sqlcgen.Queries, row sqlcgen.User, w *txWrite) error

// write runs one write use case in one transaction (see above) and returns the user as written,
// or, without readBack, only its id and new version.
func (s *Service) write(ctx context.Context, c Caller, u unit, fn step) (User, error) {
	var out User
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadCommitted, func(ctx context.Context, q *sqlcgen.Queries) error {
		w := &txWrite{now: s.now().UTC(), version: uuid.NewString(), id: u.id, action: u.action}
		if err := recordIdempotency(ctx, q, c, w.id, u.action, w.now); err != nil {
			return err
		}
		var row sqlcgen.User
		if u.state != noRow {
			var err error
			if row, err = lockState(ctx, q, u.id, u.state, u.pre); err != nil {
				return err
			}
		}
		if err := fn(ctx, q, row, w); err != nil {
			return err
		}
		if len(w.changed) > 0 {
			if err := audit(ctx, q, c, w.id, w.action, w.changed, w.version, w.now); err != nil {
				return err
			}
		}
		if !u.readBack {
			out = User{ID: w.id, Version: w.version}
			return nil
		}
		if w.written != nil {
			out = *w.written
			return nil
		}
		var err error
		out, err = s.readMasked(ctx, q, w.id) // write answers are always masked
		return err
	})
	return out, err
}

// lockState locks a user's row and checks its state and version. An erased user is not found.
func lockState(ctx context.Context, q *sqlcgen.Queries, id string, state rowState, pre Precondition) (sqlcgen.User, error) {
	row, err := lockUser(ctx, q, id)
	switch {
	case err != nil:
		return row, err
	case row.ErasedAt.Valid, state == liveRow && row.IsDeleted:
		return row, ErrNotFound
	case state == deletedRow && !row.IsDeleted:
		return row, ErrNotDeleted
	case !pre.allows(row.Version):
		return row, ErrPreconditionFailed
	}
	return row, nil
}

// guarded checks the affected rows of a version-guarded statement (... WHERE id = ? AND version =
// ?). The skeleton holds the row locked and has checked its version, so anything but one row
// means the row changed under the lock, which InnoDB does not allow: it is reported, never ignored.
func guarded(n int64, err error) error {
	if err != nil {
		return err
	}
	if n != 1 {
		return errors.New("a version-guarded write matched no row although the row was locked")
	}
	return nil
}

// lockUser locks a user's row, live or deleted; a missing user is ErrNotFound.
func lockUser(ctx context.Context, q *sqlcgen.Queries, id string) (sqlcgen.User, error) {
	row, err := q.LockUser(ctx, id)
	if errors.Is(err, sql.ErrNoRows) {
		return row.User, ErrNotFound
	}
	return row.User, err
}

// audit writes the audit row of a change or of a full PII read. A change's row is also its change
// event, pending until the relay publishes it (internal/events); a read is no event.
func audit(ctx context.Context, q *sqlcgen.Queries, c Caller, id, action string, fields []string, version string, now time.Time) error {
	return q.InsertAudit(ctx, sqlcgen.InsertAuditParams{
		UserID: id, Action: action, Actor: nullString(c.Actor), RequestID: nullString(c.RequestID),
		ChangedFields: strings.Join(fields, ","), Version: version, CreatedAt: now,
		EventPending: !isRead(action),
	})
}

// recordIdempotency writes the durable idempotency row in the change's own transaction. If the
// key already has a live row, the change was applied before (the Redis record was lost): the
// transaction is abandoned with an *AppliedError so that nothing is done twice.
func recordIdempotency(ctx context.Context, q *sqlcgen.Queries, c Caller, userID, action string, now time.Time) error {
	idem := c.Idempotency
	if idem == nil {
		return nil
	}
	params := sqlcgen.InsertIdempotencyKeyParams{
		KeyHash: idem.KeyHash, Fingerprint: idem.Fingerprint, UserID: userID, Action: action,
		CreatedAt: now, ExpiresAt: now.Add(idem.TTL),
	}
	err := q.InsertIdempotencyKey(ctx, params)
	if duplicateKey(err) != "PRIMARY" {
		return err
	}
	// An expired row from an old use of the key may be replaced.
	if n, derr := q.DeleteExpiredIdempotencyKey(ctx, sqlcgen.DeleteExpiredIdempotencyKeyParams{KeyHash: idem.KeyHash, ExpiresAt: now}); derr != nil {
		return derr
	} else if n == 1 {
		return q.InsertIdempotencyKey(ctx, params)
	}
	row, err := q.GetIdempotencyKey(ctx, sqlcgen.GetIdempotencyKeyParams{KeyHash: idem.KeyHash, ExpiresAt: now})
	if err != nil {
		return err
	}
	return &AppliedError{UserID: row.UserID, Action: row.Action, SamePayload: bytes.Equal(row.Fingerprint, idem.Fingerprint)}
}

func duplicateKey(err error) string {
	var dup *mysqldb.DuplicateKeyError
	if errors.As(mysqldb.Translate(err), &dup) {
		return dup.Key
	}
	return ""
}

func isDuplicate(err error) bool {
	var dup *mysqldb.DuplicateKeyError
	return errors.As(mysqldb.Translate(err), &dup) && uniqueFields[dup.Key] != ""
}
