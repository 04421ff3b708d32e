package users

import (
	"context"
	"database/sql"

	"github.com/usersvc/usersvc/internal/livecounts"
	"github.com/usersvc/usersvc/internal/search"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// Update applies a partial update to a live user, if pre allows its current version. An update
// that changes nothing writes nothing and keeps the version.
func (s *Service) Update(ctx context.Context, c Caller, id string, pre Precondition, ch Changes) (User, error) {
	u := unit{action: ActionUpdate, id: id, state: liveRow, pre: pre, readBack: true}
	return s.write(ctx, c, u, func(ctx context.Context, q *sqlcgen.Queries, row sqlcgen.User, w *txWrite) error {
		cur := toUser(row)
		next, emailKey := applyChanges(cur, row.EmailKey.String, ch)
		if next.SecondaryMobile != "" && next.SecondaryMobile == next.PrimaryMobile {
			verr := &ValidationError{}
			verr.Add("secondary_mobile", "must differ from primary_mobile")
			return verr
		}
		if w.changed = diffFields(cur, next); len(w.changed) == 0 {
			return nil
		}
		reindex := next.Name != cur.Name || next.Email != cur.Email
		n, err := q.UpdateUserProfile(ctx, sqlcgen.UpdateUserProfileParams{
			Name: next.Name, Email: next.Email, EmailKey: nullString(emailKey), PrimaryMobile: nullString(next.PrimaryMobile),
			SecondaryMobile: nullString(next.SecondaryMobile), CurrentAddress: next.CurrentAddress,
			PermanentAddress: next.PermanentAddress, IsActive: next.IsActive,
			UpdatedAt: w.now, UpdatedBy: nullString(c.Actor), NewVersion: w.version,
			ID: id, ExpectedVersion: row.Version, Reindex: reindex,
		})
		if isDuplicate(err) {
			return conflicts(ctx, q, emailKey, next.PrimaryMobile, "", "", id)
		}
		if err := guarded(n, err); err != nil {
			return err
		}
		if !reindex {
			return nil
		}
		// The new name or email is indexed by the compactor (the update flagged the user); the
		// old one must not stay rebuildable from the index.
		return search.Forget(ctx, q, row.Seq, row.Name, row.Email)
	})
}

// Delete soft-deletes a live user and returns its new version.
func (s *Service) Delete(ctx context.Context, c Caller, id string, pre Precondition) (string, error) {
	u := unit{action: ActionDelete, id: id, state: liveRow, pre: pre}
	out, err := s.write(ctx, c, u, func(ctx context.Context, q *sqlcgen.Queries, row sqlcgen.User, w *txWrite) error {
		w.changed = []string{"is_deleted", "is_active"}
		if err := guarded(q.SoftDeleteUser(ctx, sqlcgen.SoftDeleteUserParams{
			DeletedAt: sql.NullTime{Time: w.now, Valid: true}, DeletedBy: nullString(c.Actor),
			UpdatedAt: w.now, UpdatedBy: nullString(c.Actor), NewVersion: w.version,
			ID: id, ExpectedVersion: row.Version,
		})); err != nil {
			return err
		}
		return livecounts.Add(ctx, q, -1, row.CreatedAt)
	})
	return out.Version, err
}

// Restore undoes a soft delete. A live user gives ErrNotDeleted; an erased one ErrNotFound.
func (s *Service) Restore(ctx context.Context, c Caller, id string, pre Precondition) (User, error) {
	u := unit{action: ActionRestore, id: id, state: deletedRow, pre: pre, readBack: true}
	return s.write(ctx, c, u, func(ctx context.Context, q *sqlcgen.Queries, row sqlcgen.User, w *txWrite) error {
		w.changed = []string{"is_deleted", "is_active"}
		if err := guarded(q.RestoreUser(ctx, sqlcgen.RestoreUserParams{
			UpdatedAt: w.now, UpdatedBy: nullString(c.Actor), NewVersion: w.version,
			ID: id, ExpectedVersion: row.Version,
		})); err != nil {
			return err
		}
		return livecounts.Add(ctx, q, 1, row.CreatedAt)
	})
}

func applyChanges(u User, emailKey string, ch Changes) (User, string) {
	set := func(dst *string, src *string) {
		if src != nil {
			*dst = *src
		}
	}
	set(&u.Name, ch.Name)
	set(&u.PrimaryMobile, ch.PrimaryMobile)
	set(&u.SecondaryMobile, ch.SecondaryMobile)
	set(&u.CurrentAddress, ch.CurrentAddress)
	set(&u.PermanentAddress, ch.PermanentAddress)
	if ch.Email != nil {
		u.Email, emailKey = ch.Email.Display(), ch.Email.Key()
	}
	if ch.IsActive != nil {
		u.IsActive = *ch.IsActive
	}
	return u, emailKey
}

// diffFields names the API fields that differ between a and b.
func diffFields(a, b User) []string {
	var out []string
	add := func(name string, differ bool) {
		if differ {
			out = append(out, name)
		}
	}
	add("name", a.Name != b.Name)
	add("email", a.Email != b.Email)
	add("primary_mobile", a.PrimaryMobile != b.PrimaryMobile)
	add("secondary_mobile", a.SecondaryMobile != b.SecondaryMobile)
	add("date_of_birth", !a.DateOfBirth.Equal(b.DateOfBirth))
	add("place_of_birth", a.PlaceOfBirth != b.PlaceOfBirth)
	add("aadhaar", a.aadhaarRef != b.aadhaarRef)
	add("pan", a.panRef != b.panRef)
	add("current_address", a.CurrentAddress != b.CurrentAddress)
	add("permanent_address", a.PermanentAddress != b.PermanentAddress)
	add("is_active", a.IsActive != b.IsActive)
	add("email_verified", a.EmailVerified != b.EmailVerified)
	add("mobile_verified", a.MobileVerified != b.MobileVerified)
	return out
}
