package users

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/usersvc/usersvc/internal/govid"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// Service runs the user use cases against MySQL.
type Service struct {
	db  *sql.DB
	now func() time.Time
}

// NewService returns a Service on db. now is the clock (time.Now when nil).
func NewService(db *sql.DB, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{db: db, now: now}
}

// Now returns the service clock's current time; validation of ages uses it too.
func (s *Service) Now() time.Time { return s.now() }

// uniqueFields maps the schema's unique keys to the API field they protect.
var uniqueFields = map[string]string{
	"uq_users_email":          "email",
	"uq_users_primary_mobile": "primary_mobile",
	"uq_users_aadhaar":        "aadhaar",
	"uq_users_pan":            "pan",
}

// Create inserts a user. When the email belongs to a soft-deleted user, that user is restored
// with the new data instead (its id is kept), unless another unique value belongs to a
// different user. Duplicates are decided by the database's unique keys, never by a prior read.
func (s *Service) Create(ctx context.Context, c Caller, nu NewUser) (User, error) {
	var out User
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadCommitted, func(q *sqlcgen.Queries) error {
		now, version := s.now().UTC(), uuid.NewString()
		id := uuid.NewString()
		// The key is recorded first, so that a retry of an applied create is recognised before
		// its duplicate values are.
		if err := recordIdempotency(ctx, q, c, id, ActionCreate, now); err != nil {
			return err
		}
		action, changed := ActionCreate, createdFields(nu)
		err := q.InsertUser(ctx, sqlcgen.InsertUserParams{
			ID: id, Name: nu.Name, Email: nu.Email.Display(), EmailKey: nu.Email.Key(),
			PrimaryMobile: nu.PrimaryMobile, SecondaryMobile: nullString(nu.SecondaryMobile),
			DateOfBirth: nu.DateOfBirth, PlaceOfBirth: nu.PlaceOfBirth,
			Aadhaar: nu.Aadhaar.Digits(), Pan: nu.PAN.Value(),
			CurrentAddress: nu.CurrentAddress, PermanentAddress: nu.PermanentAddress,
			CreatedAt: now, UpdatedAt: now, CreatedBy: nullString(c.Actor), UpdatedBy: nullString(c.Actor),
			Version: version,
		})
		if err != nil {
			if !isDuplicate(err) {
				return err
			}
			if id, changed, err = s.revive(ctx, q, c, nu, now, version); err != nil {
				return err
			}
			action = ActionCreateRestore
			if c.Idempotency != nil {
				if err := q.SetIdempotencyKeyUser(ctx, sqlcgen.SetIdempotencyKeyUserParams{UserID: id, KeyHash: c.Idempotency.KeyHash}); err != nil {
					return err
				}
			}
		}
		if err := audit(ctx, q, c, id, action, changed, version, now); err != nil {
			return err
		}
		row, err := q.GetLiveUser(ctx, id)
		out = toUser(row)
		return err
	})
	return out, err
}

// revive handles a duplicate on create: if the email's holder is soft-deleted and no other
// user holds the other unique values, it overwrites the deleted user with nu and returns its id.
// Otherwise it returns a *ConflictError naming every field held by someone else.
func (s *Service) revive(ctx context.Context, q *sqlcgen.Queries, c Caller, nu NewUser, now time.Time, version string) (string, []string, error) {
	key, mobile, aadhaar, pan := nu.Email.Key(), nu.PrimaryMobile, nu.Aadhaar.Digits(), nu.PAN.Value()
	holders, err := q.FindUniqueHolders(ctx, sqlcgen.FindUniqueHoldersParams{EmailKey: key, PrimaryMobile: mobile, Aadhaar: aadhaar, Pan: pan})
	if err != nil {
		return "", nil, err
	}
	ownerID := ""
	for _, h := range holders {
		if h.EmailKey == key && h.IsDeleted {
			ownerID = h.ID
		}
	}
	if cerr := conflictError(holders, key, mobile, aadhaar, pan, ownerID); cerr != nil {
		return "", nil, cerr
	}
	if ownerID == "" {
		// The row that caused the duplicate is gone (it was rolled back or changed): let the
		// client retry rather than guess.
		return "", nil, fmt.Errorf("%w: duplicate without a holder", mysqldb.ErrRetryable)
	}
	// Lock the deleted owner only now, so that parallel creates that merely conflict never
	// upgrade their locks (which would deadlock them against each other).
	old, err := q.LockUser(ctx, ownerID)
	if err != nil {
		return "", nil, err
	}
	if !old.IsDeleted {
		return "", nil, &ConflictError{Fields: []string{"email"}}
	}
	_, err = q.ReviveUser(ctx, sqlcgen.ReviveUserParams{
		Name: nu.Name, Email: nu.Email.Display(), EmailKey: key,
		PrimaryMobile: mobile, SecondaryMobile: nullString(nu.SecondaryMobile),
		DateOfBirth: nu.DateOfBirth, PlaceOfBirth: nu.PlaceOfBirth,
		Aadhaar: aadhaar, Pan: pan,
		CurrentAddress: nu.CurrentAddress, PermanentAddress: nu.PermanentAddress,
		UpdatedAt: now, UpdatedBy: nullString(c.Actor), NewVersion: version,
		ID: ownerID, ExpectedVersion: old.Version,
	})
	if isDuplicate(err) {
		return "", nil, conflicts(ctx, q, key, mobile, aadhaar, pan, ownerID)
	}
	if err != nil {
		return "", nil, err
	}
	changed := diffFields(toUser(old), User{
		Name: nu.Name, Email: nu.Email.Display(), PrimaryMobile: mobile, SecondaryMobile: nu.SecondaryMobile,
		DateOfBirth: nu.DateOfBirth, PlaceOfBirth: nu.PlaceOfBirth, Aadhaar: nu.Aadhaar, PAN: nu.PAN,
		CurrentAddress: nu.CurrentAddress, PermanentAddress: nu.PermanentAddress, IsActive: true,
	})
	return ownerID, append(changed, "is_deleted"), nil
}

// conflicts reads who holds the given unique values and names the fields held by users other
// than exclude, as a *ConflictError (nil when nobody else holds them).
func conflicts(ctx context.Context, q *sqlcgen.Queries, emailKey, mobile, aadhaar, pan, exclude string) error {
	holders, err := q.FindUniqueHolders(ctx, sqlcgen.FindUniqueHoldersParams{
		EmailKey: emailKey, PrimaryMobile: mobile, Aadhaar: aadhaar, Pan: pan,
	})
	if err != nil {
		return err
	}
	if cerr := conflictError(holders, emailKey, mobile, aadhaar, pan, exclude); cerr != nil {
		return cerr
	}
	// The duplicate came from a row that has gone since: retrying the unit will succeed or name it.
	return fmt.Errorf("%w: duplicate without a holder", mysqldb.ErrRetryable)
}

func conflictError(holders []sqlcgen.FindUniqueHoldersRow, emailKey, mobile, aadhaar, pan, exclude string) *ConflictError {
	var email, mob, aad, pn bool
	for _, h := range holders {
		if h.ID == exclude {
			continue
		}
		email = email || h.EmailKey == emailKey
		mob = mob || h.PrimaryMobile == mobile
		aad = aad || h.Aadhaar == aadhaar
		pn = pn || h.Pan == pan
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

// Get returns a live user. With pii, the caller will see the full Aadhaar and PAN: the read is
// recorded in the audit trail in the same transaction (who saw whose data, when).
func (s *Service) Get(ctx context.Context, c Caller, id string, pii bool) (User, error) {
	if !pii {
		row, err := sqlcgen.New(s.db).GetLiveUser(ctx, id)
		if errors.Is(err, sql.ErrNoRows) {
			return User{}, ErrNotFound
		}
		if err != nil {
			return User{}, fmt.Errorf("get user: %w", err)
		}
		return toUser(row), nil
	}
	var out User
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadCommitted, func(q *sqlcgen.Queries) error {
		row, err := q.GetLiveUser(ctx, id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		out = toUser(row)
		return audit(ctx, q, c, id, ActionPIIRead, []string{"aadhaar", "pan"}, row.Version, s.now().UTC())
	})
	return out, err
}

// Lookup finds the live user holding an Aadhaar or a PAN (exactly one of them is set) and
// returns it in full; the read is audited like Get with pii.
func (s *Service) Lookup(ctx context.Context, c Caller, aadhaar *govid.Aadhaar, pan *govid.PAN) (User, error) {
	var id string
	var err error
	q := sqlcgen.New(s.db)
	if aadhaar != nil {
		id, err = q.GetLiveUserByAadhaar(ctx, aadhaar.Digits())
	} else {
		id, err = q.GetLiveUserByPAN(ctx, pan.Value())
	}
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	if err != nil {
		return User{}, fmt.Errorf("lookup: %w", err)
	}
	return s.Get(ctx, c, id, true)
}

// Update applies a partial update to a live user, if pre allows its current version. An update that changes nothing writes nothing and keeps the version.
func (s *Service) Update(ctx context.Context, c Caller, id string, pre Precondition, ch Changes) (User, error) {
	var out User
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadCommitted, func(q *sqlcgen.Queries) error {
		if err := recordIdempotency(ctx, q, c, id, ActionUpdate, s.now().UTC()); err != nil {
			return err
		}
		row, err := lockLive(ctx, q, id, pre)
		if err != nil {
			return err
		}
		cur := toUser(row)
		next, emailKey := applyChanges(cur, row.EmailKey, ch)
		if next.SecondaryMobile != "" && next.SecondaryMobile == next.PrimaryMobile {
			verr := &ValidationError{}
			verr.Add("secondary_mobile", "must differ from primary_mobile")
			return verr
		}
		changed := diffFields(cur, next)
		if len(changed) == 0 {
			out = cur
			return nil
		}
		now, version := s.now().UTC(), uuid.NewString()
		_, err = q.UpdateUserProfile(ctx, sqlcgen.UpdateUserProfileParams{
			Name: next.Name, Email: next.Email, EmailKey: emailKey, PrimaryMobile: next.PrimaryMobile,
			SecondaryMobile: nullString(next.SecondaryMobile), CurrentAddress: next.CurrentAddress,
			PermanentAddress: next.PermanentAddress, IsActive: next.IsActive,
			UpdatedAt: now, UpdatedBy: nullString(c.Actor), NewVersion: version,
			ID: id, ExpectedVersion: row.Version,
		})
		if isDuplicate(err) {
			return conflicts(ctx, q, emailKey, next.PrimaryMobile, "", "", id)
		}
		if err != nil {
			return err
		}
		if err := audit(ctx, q, c, id, ActionUpdate, changed, version, now); err != nil {
			return err
		}
		row, err = q.GetLiveUser(ctx, id)
		out = toUser(row)
		return err
	})
	return out, err
}

// Delete soft-deletes a live user and returns its new version.
func (s *Service) Delete(ctx context.Context, c Caller, id string, pre Precondition) (string, error) {
	var version string
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadCommitted, func(q *sqlcgen.Queries) error {
		now := s.now().UTC()
		if err := recordIdempotency(ctx, q, c, id, ActionDelete, now); err != nil {
			return err
		}
		row, err := lockLive(ctx, q, id, pre)
		if err != nil {
			return err
		}
		version = uuid.NewString()
		if _, err := q.SoftDeleteUser(ctx, sqlcgen.SoftDeleteUserParams{
			DeletedAt: sql.NullTime{Time: now, Valid: true}, DeletedBy: nullString(c.Actor),
			UpdatedAt: now, UpdatedBy: nullString(c.Actor), NewVersion: version,
			ID: id, ExpectedVersion: row.Version,
		}); err != nil {
			return err
		}
		return audit(ctx, q, c, id, ActionDelete, []string{"is_deleted", "is_active"}, version, now)
	})
	return version, err
}

// Restore undoes a soft delete. A live user gives ErrNotDeleted.
func (s *Service) Restore(ctx context.Context, c Caller, id string, pre Precondition) (User, error) {
	var out User
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadCommitted, func(q *sqlcgen.Queries) error {
		if err := recordIdempotency(ctx, q, c, id, ActionRestore, s.now().UTC()); err != nil {
			return err
		}
		row, err := q.LockUser(ctx, id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if !row.IsDeleted {
			return ErrNotDeleted
		}
		if !pre.allows(row.Version) {
			return ErrPreconditionFailed
		}
		now, version := s.now().UTC(), uuid.NewString()
		if _, err := q.RestoreUser(ctx, sqlcgen.RestoreUserParams{
			UpdatedAt: now, UpdatedBy: nullString(c.Actor), NewVersion: version,
			ID: id, ExpectedVersion: row.Version,
		}); err != nil {
			return err
		}
		if err := audit(ctx, q, c, id, ActionRestore, []string{"is_deleted", "is_active"}, version, now); err != nil {
			return err
		}
		row2, err := q.GetLiveUser(ctx, id)
		out = toUser(row2)
		return err
	})
	return out, err
}

// List returns live users, newest first.
func (s *Service) List(ctx context.Context, p Page) (PageOf[User], error) {
	var out PageOf[User]
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadSnapshot, func(q *sqlcgen.Queries) error {
		var err error
		if out.Total, err = q.CountLiveUsers(ctx); err != nil {
			return err
		}
		limit, offset, ok := bounds(p, out.Total)
		if !ok {
			return nil
		}
		rows, err := q.ListLiveUsers(ctx, sqlcgen.ListLiveUsersParams{Limit: limit, Offset: offset})
		out.Items = toUsers(rows)
		return err
	})
	return out, err
}

// SearchMinLen and SearchMaxLen bound the search text, in characters.
const SearchMinLen, SearchMaxLen = 2, 100

// Search returns live users whose name or email contains text, case-insensitively, newest
// first. '%' and '_' in text match themselves.
func (s *Service) Search(ctx context.Context, text string, p Page) (PageOf[User], error) {
	var out PageOf[User]
	pattern := "%" + escapeLike(text) + "%"
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadSnapshot, func(q *sqlcgen.Queries) error {
		var err error
		out.Total, err = q.CountSearchUsers(ctx, sqlcgen.CountSearchUsersParams{NamePattern: pattern, EmailPattern: pattern})
		if err != nil {
			return err
		}
		limit, offset, ok := bounds(p, out.Total)
		if !ok {
			return nil
		}
		rows, err := q.SearchUsers(ctx, sqlcgen.SearchUsersParams{NamePattern: pattern, EmailPattern: pattern, Limit: limit, Offset: offset})
		out.Items = toUsers(rows)
		return err
	})
	return out, err
}

// History returns a user's audit trail, newest first. Soft-deleted users have one too.
func (s *Service) History(ctx context.Context, id string, p Page) (PageOf[AuditEntry], error) {
	var out PageOf[AuditEntry]
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadSnapshot, func(q *sqlcgen.Queries) error {
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
			out.Items = append(out.Items, toAuditEntry(r))
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

func lockLive(ctx context.Context, q *sqlcgen.Queries, id string, pre Precondition) (sqlcgen.User, error) {
	row, err := q.LockUser(ctx, id)
	if errors.Is(err, sql.ErrNoRows) || err == nil && row.IsDeleted {
		return row, ErrNotFound
	}
	if err != nil {
		return row, err
	}
	if !pre.allows(row.Version) {
		return row, ErrPreconditionFailed
	}
	return row, nil
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
	add("aadhaar", a.Aadhaar != b.Aadhaar)
	add("pan", a.PAN != b.PAN)
	add("current_address", a.CurrentAddress != b.CurrentAddress)
	add("permanent_address", a.PermanentAddress != b.PermanentAddress)
	add("is_active", a.IsActive != b.IsActive)
	add("email_verified", a.EmailVerified != b.EmailVerified)
	add("mobile_verified", a.MobileVerified != b.MobileVerified)
	return out
}

func createdFields(nu NewUser) []string {
	f := []string{"name", "email", "primary_mobile", "date_of_birth", "place_of_birth", "aadhaar", "pan",
		"current_address", "permanent_address"}
	if nu.SecondaryMobile != "" {
		f = append(f, "secondary_mobile")
	}
	return f
}

func audit(ctx context.Context, q *sqlcgen.Queries, c Caller, id, action string, fields []string, version string, now time.Time) error {
	return q.InsertAudit(ctx, sqlcgen.InsertAuditParams{
		UserID: id, Action: action, Actor: nullString(c.Actor), RequestID: nullString(c.RequestID),
		ChangedFields: strings.Join(fields, ","), Version: version, CreatedAt: now,
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

// escapeLike makes s a literal inside a LIKE pattern that uses '!' as its escape character.
func escapeLike(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s)
}
