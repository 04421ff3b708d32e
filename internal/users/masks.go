package users

import (
	"context"

	"github.com/usersvc/usersvc/internal/govid"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// BackfillMasks fills users.aadhaar_last4 and users.pan_last5 from the vault for rows written
// before those columns existed, a batch of short transactions at a time, and returns how many
// rows it filled. It is resumable by nature (it looks for rows that still lack a mask) and safe
// beside writers and other replicas doing the same: a row whose refs changed meanwhile is left to
// the change that changed them. Until a row is filled, masked reads of it still use the vault.
func (s *Service) BackfillMasks(ctx context.Context, batch int) (int, error) {
	filled, after := 0, ""
	for {
		rows, err := sqlcgen.New(s.db).ListUsersMissingMasks(ctx, sqlcgen.ListUsersMissingMasksParams{After: after, Limit: int32(batch)})
		if err != nil || len(rows) == 0 {
			return filled, mysqldb.Translate(err)
		}
		got := 0
		err = mysqldb.InTx(ctx, s.db, mysqldb.ReadCommitted, func(ctx context.Context, q *sqlcgen.Queries) error {
			got = 0 // the unit may run again after a deadlock
			for _, r := range rows {
				m, err := s.vault.Reveal(ctx, q, r.AadhaarRef.String, r.PanRef.String)
				if err != nil {
					return err
				}
				a, p := govid.AadhaarFromStore(m[r.AadhaarRef.String]), govid.PANFromStore(m[r.PanRef.String])
				n, err := q.SetUserMasks(ctx, sqlcgen.SetUserMasksParams{
					AadhaarLast4: nullString(a.Last4()), PanLast5: nullString(p.Last5()),
					ID: r.ID, AadhaarRef: r.AadhaarRef, PanRef: r.PanRef,
				})
				if err != nil {
					return err
				}
				got += int(n)
			}
			return nil
		})
		filled += got
		if err != nil {
			return filled, err
		}
		after = rows[len(rows)-1].ID
	}
}
