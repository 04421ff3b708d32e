package users

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/usersvc/usersvc/internal/govid"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/sqlcgen"
	"github.com/usersvc/usersvc/internal/vault"
)

// Get returns a live user. With pii, the caller will see the full Aadhaar and PAN: the read is
// recorded in the audit trail in the same transaction (who saw whose data, when).
func (s *Service) Get(ctx context.Context, c Caller, id string, pii bool) (User, error) {
	if !pii {
		u, err := s.readMasked(ctx, sqlcgen.New(s.db), id)
		if errors.Is(err, sql.ErrNoRows) {
			return User{}, ErrNotFound
		}
		if err != nil {
			return User{}, fmt.Errorf("get user: %w", mysqldb.Translate(err))
		}
		return u, nil
	}
	var out User
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadCommitted, func(ctx context.Context, q *sqlcgen.Queries) error {
		var err error
		out, err = s.readBack(ctx, q, id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return audit(ctx, q, c, id, ActionPIIRead, []string{"aadhaar", "pan"}, out.Version, s.now().UTC())
	})
	return out, err
}

// Lookup finds the live user holding an Aadhaar or a PAN (exactly one of them is set) and
// returns it in full; the read is audited like Get with pii.
func (s *Service) Lookup(ctx context.Context, c Caller, aadhaar *govid.Aadhaar, pan *govid.PAN) (User, error) {
	q := sqlcgen.New(s.db)
	kind, value := vault.KindAadhaar, ""
	if aadhaar != nil {
		value = aadhaar.Digits()
	} else {
		kind, value = vault.KindPAN, pan.Value()
	}
	ref, err := s.vault.Find(ctx, q, kind, value)
	if err != nil {
		return User{}, fmt.Errorf("lookup: %w", mysqldb.Translate(err))
	}
	if ref == "" {
		return User{}, ErrNotFound
	}
	var id string
	if kind == vault.KindAadhaar {
		id, err = q.GetLiveUserByAadhaarRef(ctx, nullString(ref))
	} else {
		id, err = q.GetLiveUserByPANRef(ctx, nullString(ref))
	}
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("lookup: %w", mysqldb.Translate(err))
	}
	return s.Get(ctx, c, id, true)
}

// Erased reports whether the user was erased (false when there is no such user). Replays of
// stored responses ask it, so that a response holding an erased person is never sent again.
func (s *Service) Erased(ctx context.Context, id string) (bool, error) {
	row, err := sqlcgen.New(s.db).GetUserState(ctx, id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return row.ErasedAt.Valid, mysqldb.Translate(err)
}

// History returns a user's audit trail, newest first. Soft-deleted users have one too.
func (s *Service) History(ctx context.Context, id string, p Page) (PageOf[AuditEntry], error) {
	var out PageOf[AuditEntry]
	err := mysqldb.InTx(ctx, s.read, mysqldb.ReadSnapshot, func(ctx context.Context, q *sqlcgen.Queries) error {
		if _, err := q.GetUserState(ctx, id); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		var err error
		if out.Total, err = q.CountAudit(ctx, id); err != nil {
			return err
		}
		limit, offset, ok := bounds(p, out.Total)
		if !ok {
			return nil
		}
		rows, err := q.ListAudit(ctx, sqlcgen.ListAuditParams{UserID: id, Limit: limit, Offset: offset})
		for _, r := range rows {
			out.Items = append(out.Items, toAuditEntry(r.UserAudit))
		}
		return err
	})
	return out, err
}

// bounds converts a page to LIMIT/OFFSET; ok is false when the page lies past the end.
func bounds(p Page, total int64) (limit, offset int32, ok bool) {
	off := p.Offset()
	if off >= total || off > math.MaxInt32 {
		return 0, 0, false
	}
	return int32(p.Size), int32(off), true
}
