package users

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/usersvc/usersvc/internal/livecounts"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/search"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// Erasure is the tombstone of an erased user.
type Erasure struct {
	ID       string
	ErasedAt time.Time
	Reason   string
}

// Erase removes a user's personal data for good, whether live or soft-deleted: the vault
// entries of its Aadhaar and PAN, every personal column, and the unique values (so the person
// can register again). The row stays as a tombstone (id, timestamps, reason) and the audit trail,
// which never held personal data, stays whole. Erasing an erased user changes nothing.
func (s *Service) Erase(ctx context.Context, c Caller, id, reason string) (Erasure, error) {
	if !s.vault.Shared() {
		// A separate vault cannot join the transaction: delete the entries first, so that a
		// crash in between leaves a user without readable ids (finished by erasing again),
		// never erased-looking data that is still decryptable.
		row, err := sqlcgen.New(s.db).GetUserState(ctx, id)
		if errors.Is(err, sql.ErrNoRows) {
			return Erasure{}, ErrNotFound
		} else if err != nil {
			return Erasure{}, mysqldb.Translate(err)
		}
		if err := s.vault.Delete(ctx, nil, row.AadhaarRef.String, row.PanRef.String); err != nil {
			return Erasure{}, err
		}
	}
	var out Erasure
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadCommitted, func(ctx context.Context, q *sqlcgen.Queries) error {
		row, err := lockUser(ctx, q, id)
		if err != nil {
			return err
		}
		if row.ErasedAt.Valid {
			out = Erasure{ID: id, ErasedAt: row.ErasedAt.Time.UTC(), Reason: row.ErasureReason.String}
			return nil
		}
		if s.vault.Shared() {
			if err := s.vault.Delete(ctx, q, row.AadhaarRef.String, row.PanRef.String); err != nil {
				return err
			}
		}
		now, version := s.now().UTC(), uuid.NewString()
		if _, err := q.EraseUser(ctx, sqlcgen.EraseUserParams{
			DeletedAt: sql.NullTime{Time: now, Valid: true}, DeletedBy: nullString(c.Actor),
			ErasedAt: sql.NullTime{Time: now, Valid: true}, Reason: nullString(reason),
			UpdatedAt: now, UpdatedBy: nullString(c.Actor), NewVersion: version, ID: id,
		}); err != nil {
			return err
		}
		if !row.IsDeleted {
			if err := livecounts.Add(ctx, q, -1, row.CreatedAt); err != nil {
				return err
			}
		}
		// Every other stored copy of the person: the search postings of the name and email, and
		// the fingerprints of the requests made under Idempotency-Keys (a retry of one is then
		// answered 410 Gone). The Redis copies are removed by the caller (see the HTTP layer).
		if err := search.Forget(ctx, q, row.Seq, row.Name, row.Email); err != nil {
			return err
		}
		if _, err := q.NeutraliseIdempotencyKeys(ctx, sqlcgen.NeutraliseIdempotencyKeysParams{Zero: make([]byte, 32), UserID: id}); err != nil {
			return err
		}
		out = Erasure{ID: id, ErasedAt: now, Reason: reason}
		return audit(ctx, q, c, id, ActionErase, []string{"personal_data"}, version, now)
	})
	if err == nil && s.forgetCopies != nil {
		// Also when the user was erased before: an earlier erasure may have failed right here.
		if ferr := s.forgetCopies(ctx, id); ferr != nil {
			return out, fmt.Errorf("%w: the stored copies of the erased user's data were not removed yet (%w); erase again", ErrUnavailable, ferr)
		}
	}
	return out, err
}

// PurgeProgress reports a retention purge batch.
type PurgeProgress struct{ Erased, Failed int }

// PurgeDeletedBefore erases soft-deleted users deleted before cutoff, in batches, until none
// is left. Each user is erased in its own transaction (see Erase).
func (s *Service) PurgeDeletedBefore(ctx context.Context, c Caller, cutoff time.Time, batch int, progress func(PurgeProgress)) (PurgeProgress, error) {
	var p PurgeProgress
	q := sqlcgen.New(s.db)
	failed := map[string]bool{}
	for {
		ids, err := q.ListDeletedBefore(ctx, sqlcgen.ListDeletedBeforeParams{DeletedAt: sql.NullTime{Time: cutoff, Valid: true}, Limit: int32(batch + len(failed))})
		if err != nil {
			return p, err
		}
		todo := 0
		for _, id := range ids {
			if failed[id] {
				continue
			}
			todo++
			if _, err := s.Erase(ctx, c, id, "retention: soft-deleted before "+cutoff.UTC().Format(time.RFC3339)); err != nil {
				if ctx.Err() != nil {
					return p, ctx.Err()
				}
				failed[id] = true
				p.Failed++
				continue
			}
			p.Erased++
		}
		if progress != nil {
			progress(p)
		}
		if todo == 0 {
			return p, nil
		}
	}
}
