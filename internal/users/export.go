package users

import (
	"context"
	"database/sql"
	"errors"
	"math"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// Export is everything the service holds about one person, for their right to obtain it (India's
// DPDP Act, s.11). For an erased person it is the tombstone alone: nothing else is held.
type Export struct {
	User     *User        // with the full Aadhaar and PAN; nil when erased
	Erasure  *Erasure     // the tombstone, when erased
	Changes  []AuditEntry // the history of the record, oldest first
	PIIReads []AuditEntry // who was shown the person's full identifiers, and when, oldest first
}

// Export gathers a user's data, live or soft-deleted, in one transaction, and records the export
// in the audit trail like any full read (action pii_export), in the same transaction.
func (s *Service) Export(ctx context.Context, c Caller, id string) (Export, error) {
	var out Export
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadCommitted, func(ctx context.Context, q *sqlcgen.Queries) error {
		row, err := q.GetUser(ctx, id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		u := toUser(row.User)
		if u.ErasedAt != nil {
			out = Export{Erasure: &Erasure{ID: id, ErasedAt: *u.ErasedAt, Reason: u.ErasureReason}}
			return nil
		}
		if err := s.reveal(ctx, q, &u); err != nil {
			return err
		}
		n, err := q.CountAudit(ctx, id)
		if err != nil {
			return err
		}
		rows, err := q.ListAudit(ctx, sqlcgen.ListAuditParams{UserID: id, Limit: int32(min(n, math.MaxInt32)), Offset: 0})
		if err != nil {
			return err
		}
		out = Export{User: &u, Changes: []AuditEntry{}, PIIReads: []AuditEntry{}}
		for i := len(rows) - 1; i >= 0; i-- { // ListAudit is newest first
			e := toAuditEntry(rows[i].UserAudit)
			if isRead(e.Action) {
				out.PIIReads = append(out.PIIReads, e)
			} else {
				out.Changes = append(out.Changes, e)
			}
		}
		return audit(ctx, q, c, id, ActionPIIExport, []string{"export"}, u.Version, s.now().UTC())
	})
	return out, err
}
