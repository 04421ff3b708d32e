package users

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/usersvc/usersvc/internal/livecounts"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/search"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// Create inserts a user. When the email belongs to a soft-deleted user, that user is restored
// with the new data instead (its id is kept), if the caller may restore (Caller.MayRevive) and no
// other unique value belongs to a different user. Duplicates are decided by the database's unique
// keys, never by a prior read.
func (s *Service) Create(ctx context.Context, c Caller, nu NewUser) (User, error) {
	u := unit{action: ActionCreate, id: newID(), state: noRow, readBack: true}
	return s.write(ctx, c, u, func(ctx context.Context, q *sqlcgen.Queries, _ sqlcgen.User, w *txWrite) error {
		w.changed = createdFields(nu)
		createdAt := w.now
		row, err := s.insertNew(ctx, q, c, w.id, nu, w.now, w.version)
		if err == nil {
			w.written = newUser(row, nu)
		} else {
			if !isDuplicate(err) {
				return err
			}
			if w.id, w.changed, createdAt, err = s.revive(ctx, q, c, nu, row.AadhaarRef.String, row.PanRef.String, w.now, w.version); err != nil {
				return err
			}
			w.action = ActionCreateRestore
			if c.Idempotency != nil {
				if err := q.SetIdempotencyKeyUser(ctx, sqlcgen.SetIdempotencyKeyUserParams{UserID: w.id, KeyHash: c.Idempotency.KeyHash}); err != nil {
					return err
				}
			}
		}
		return livecounts.Add(ctx, q, 1, createdAt) // a new user, or a deleted one made live again
	})
}

// newUser is the user a read returns after insertNew wrote row: the inserted values, the column
// defaults InsertUser writes, and times as the DATETIME(6) columns keep them (microseconds).
// TestCreate compares it with a read.
func newUser(row sqlcgen.InsertUserParams, nu NewUser) *User {
	row.CreatedAt, row.UpdatedAt = row.CreatedAt.Truncate(time.Microsecond), row.UpdatedAt.Truncate(time.Microsecond)
	u := toUser(sqlcgen.User{
		ID: row.ID, Name: row.Name, Email: row.Email, EmailKey: row.EmailKey,
		PrimaryMobile: row.PrimaryMobile, SecondaryMobile: row.SecondaryMobile,
		DateOfBirth: row.DateOfBirth, PlaceOfBirth: row.PlaceOfBirth,
		AadhaarRef: row.AadhaarRef, PanRef: row.PanRef, AadhaarLast4: row.AadhaarLast4, PanLast5: row.PanLast5,
		CurrentAddress: row.CurrentAddress, PermanentAddress: row.PermanentAddress,
		CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt, CreatedBy: row.CreatedBy, UpdatedBy: row.UpdatedBy,
		Version: row.Version, IsActive: true,
	})
	u.Aadhaar, u.PAN = nu.Aadhaar, nu.PAN
	return &u
}

// insertNew writes a new user: its vault entries and the users row (flagged for the search
// compactor). It returns the users row; when a value is taken, the error is the users insert's
// duplicate, and the row still carries the vault refs for a revive.
func (s *Service) insertNew(ctx context.Context, q *sqlcgen.Queries, c Caller, id string, nu NewUser, now time.Time, version string) (sqlcgen.InsertUserParams, error) {
	aRef, pRef, err := s.storeIDs(ctx, q, nu)
	if err != nil {
		return sqlcgen.InsertUserParams{}, err
	}
	row := sqlcgen.InsertUserParams{
		ID: id, Name: nu.Name, Email: nu.Email.Display(), EmailKey: nullString(nu.Email.Key()),
		PrimaryMobile: nullString(nu.PrimaryMobile), SecondaryMobile: nullString(nu.SecondaryMobile),
		DateOfBirth: nullDate(nu.DateOfBirth), PlaceOfBirth: nu.PlaceOfBirth,
		AadhaarRef: nullString(aRef), PanRef: nullString(pRef),
		AadhaarLast4: nullString(nu.Aadhaar.Last4()), PanLast5: nullString(nu.PAN.Last5()),
		CurrentAddress: nu.CurrentAddress, PermanentAddress: nu.PermanentAddress,
		CreatedAt: now, UpdatedAt: now, CreatedBy: nullString(c.Actor), UpdatedBy: nullString(c.Actor),
		Version: version,
	}
	_, err = q.InsertUser(ctx, row) // flags the user search_dirty: the compactor indexes it
	return row, err
}

// newID returns a user id: a UUIDv7, random in 74 bits and time-ordered, so that new rows append
// to the primary key instead of splitting pages across it.
func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// revive handles a duplicate on create: if the email's holder is soft-deleted, the caller may
// revive, and no other user holds the other unique values, it overwrites the deleted user with nu
// and returns its id, the changed fields and its creation time. Otherwise it returns a
// *ConflictError naming every field held by someone else.
func (s *Service) revive(ctx context.Context, q *sqlcgen.Queries, c Caller, nu NewUser, aadhaar, pan string, now time.Time, version string) (string, []string, time.Time, error) {
	key, mobile := nu.Email.Key(), nu.PrimaryMobile
	holders, err := findHolders(ctx, q, key, mobile, aadhaar, pan)
	if err != nil {
		return "", nil, time.Time{}, err
	}
	ownerID := ""
	for _, h := range holders {
		if h.EmailKey.String == key && h.IsDeleted {
			ownerID = h.ID
		}
	}
	if cerr := conflictError(holders, key, mobile, aadhaar, pan, ownerID); cerr != nil {
		return "", nil, time.Time{}, cerr
	}
	if ownerID != "" && !c.MayRevive {
		// Reviving frees the deleted user's old identifiers: it needs the right to restore.
		return "", nil, time.Time{}, &ConflictError{Fields: []string{"email"}, Deleted: true}
	}
	if ownerID == "" {
		// The row that caused the duplicate is gone (it was rolled back or changed): let the
		// client retry rather than guess.
		return "", nil, time.Time{}, fmt.Errorf("%w: duplicate without a holder", mysqldb.ErrRetryable)
	}
	// Lock the deleted owner only now, so that parallel creates that merely conflict never
	// upgrade their locks (which would deadlock them against each other).
	old, err := lockUser(ctx, q, ownerID)
	if errors.Is(err, ErrNotFound) {
		return "", nil, time.Time{}, fmt.Errorf("%w: the deleted holder went away", mysqldb.ErrRetryable)
	}
	if err != nil {
		return "", nil, time.Time{}, err
	}
	if !old.IsDeleted {
		return "", nil, time.Time{}, &ConflictError{Fields: []string{"email"}}
	}
	n, err := q.ReviveUser(ctx, sqlcgen.ReviveUserParams{
		Name: nu.Name, Email: nu.Email.Display(), EmailKey: nullString(key),
		PrimaryMobile: nullString(mobile), SecondaryMobile: nullString(nu.SecondaryMobile),
		DateOfBirth: nullDate(nu.DateOfBirth), PlaceOfBirth: nu.PlaceOfBirth,
		AadhaarRef: nullString(aadhaar), PanRef: nullString(pan),
		AadhaarLast4: nullString(nu.Aadhaar.Last4()), PanLast5: nullString(nu.PAN.Last5()),
		CurrentAddress: nu.CurrentAddress, PermanentAddress: nu.PermanentAddress,
		UpdatedAt: now, UpdatedBy: nullString(c.Actor), NewVersion: version,
		ID: ownerID, ExpectedVersion: old.Version,
	})
	if isDuplicate(err) {
		return "", nil, time.Time{}, conflicts(ctx, q, key, mobile, aadhaar, pan, ownerID)
	}
	err = guarded(n, err) // ReviveUser flags the user search_dirty: the compactor indexes it
	if err == nil {
		err = search.Forget(ctx, q, old.Seq, old.Name, old.Email)
	}
	if err != nil {
		return "", nil, time.Time{}, err
	}
	prev := toUser(old)
	changed := diffFields(prev, User{
		Name: nu.Name, Email: nu.Email.Display(), PrimaryMobile: mobile, SecondaryMobile: nu.SecondaryMobile,
		DateOfBirth: nu.DateOfBirth, PlaceOfBirth: nu.PlaceOfBirth, aadhaarRef: aadhaar, panRef: pan,
		CurrentAddress: nu.CurrentAddress, PermanentAddress: nu.PermanentAddress, IsActive: true,
	})
	// The old Aadhaar and PAN, when replaced, are referenced by nobody now: remove them. (With a
	// separate vault database they stay as unreferenced entries: see docs/security.md.)
	if s.vault.Shared() {
		var gone []string
		if prev.aadhaarRef != aadhaar {
			gone = append(gone, prev.aadhaarRef)
		}
		if prev.panRef != pan {
			gone = append(gone, prev.panRef)
		}
		if err := s.vault.Delete(ctx, q, gone...); err != nil {
			return "", nil, time.Time{}, err
		}
	}
	return ownerID, append(changed, "is_deleted"), old.CreatedAt, nil
}

// uniqueFields maps the schema's unique keys to the API field they protect.
var uniqueFields = map[string]string{
	"uq_users_email":          "email",
	"uq_users_primary_mobile": "primary_mobile",
	"uq_users_aadhaar":        "aadhaar",
	"uq_users_pan":            "pan",
}

// conflicts reads who holds the given unique values and names the fields held by users other
// than exclude, as a *ConflictError (nil when nobody else holds them).
func conflicts(ctx context.Context, q *sqlcgen.Queries, emailKey, mobile, aadhaar, pan, exclude string) error {
	holders, err := findHolders(ctx, q, emailKey, mobile, aadhaar, pan)
	if err != nil {
		return err
	}
	if cerr := conflictError(holders, emailKey, mobile, aadhaar, pan, exclude); cerr != nil {
		return cerr
	}
	// The duplicate came from a row that has gone since: retrying the unit will succeed or name it.
	return fmt.Errorf("%w: duplicate without a holder", mysqldb.ErrRetryable)
}

// findHolders reads the users holding any of the unique values (aadhaar and pan are vault refs).
func findHolders(ctx context.Context, q *sqlcgen.Queries, emailKey, mobile, aadhaar, pan string) ([]sqlcgen.FindUniqueHoldersRow, error) {
	return q.FindUniqueHolders(ctx, sqlcgen.FindUniqueHoldersParams{
		EmailKey: nullString(emailKey), PrimaryMobile: nullString(mobile), AadhaarRef: nullString(aadhaar), PanRef: nullString(pan),
	})
}

func conflictError(holders []sqlcgen.FindUniqueHoldersRow, emailKey, mobile, aadhaar, pan, exclude string) *ConflictError {
	var email, mob, aad, pn bool
	for _, h := range holders {
		if h.ID == exclude {
			continue
		}
		email = email || emailKey != "" && h.EmailKey.String == emailKey
		mob = mob || mobile != "" && h.PrimaryMobile.String == mobile
		aad = aad || aadhaar != "" && h.AadhaarRef.String == aadhaar
		pn = pn || pan != "" && h.PanRef.String == pan
	}
	var fields []string
	for _, f := range []struct {
		hit  bool
		name string
	}{{email, "email"}, {mob, "primary_mobile"}, {aad, "aadhaar"}, {pn, "pan"}} {
		if f.hit {
			fields = append(fields, f.name)
		}
	}
	if len(fields) == 0 {
		return nil
	}
	return &ConflictError{Fields: fields}
}

func createdFields(nu NewUser) []string {
	f := []string{"name", "email", "primary_mobile", "date_of_birth", "place_of_birth", "aadhaar", "pan",
		"current_address", "permanent_address"}
	if nu.SecondaryMobile != "" {
		f = append(f, "secondary_mobile")
	}
	return f
}
