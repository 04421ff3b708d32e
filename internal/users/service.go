package users

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/usersvc/usersvc/internal/govid"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/search"
	"github.com/usersvc/usersvc/internal/sqlcgen"
	"github.com/usersvc/usersvc/internal/vault"
)

// Service runs the user use cases against MySQL; Aadhaar and PAN go to the vault.
type Service struct {
	db    *sql.DB
	read  *sql.DB // reads that tolerate replication lag (lists, search, audit); db by default
	vault *vault.Vault
	now   func() time.Time
	// searchCache keeps common grams' postings (user seqs, no personal data) between searches.
	searchCache *search.Cache
	// pageFallbacks counts deep pages that user_time_counts could not place (see listFromDay).
	pageFallbacks atomic.Int64
	// createFallbacks counts creates that the pipeline handed to the interactive transaction.
	createFallbacks atomic.Int64
	// forgetCopies removes the copies of a user's data kept outside MySQL (the stored
	// Idempotency-Key responses in Redis) after an erasure; nil when there are none.
	forgetCopies func(ctx context.Context, userID string) error
}

// WithErasureOf makes every erasure (Erase, PurgeDeletedBefore) also call forget with the erased
// user's id, after the database commit: it removes copies of the person kept elsewhere. If it
// fails, Erase fails with ErrUnavailable and can be repeated until it succeeds.
func (s *Service) WithErasureOf(forget func(ctx context.Context, userID string) error) *Service {
	s.forgetCopies = forget
	return s
}

// Erased reports whether the user was erased (false when there is no such user). Replays of
// stored responses ask it, so that a response holding an erased person is never sent again.
func (s *Service) Erased(ctx context.Context, id string) (bool, error) {
	row, err := sqlcgen.New(s.db).GetUserState(ctx, id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return row.ErasedAt.Valid, err
}

// PageFallbacks is how many deep pages by number fell back to the plain offset walk because the
// live counts per day, hour, minute and second did not reach their offset. It stays 0 while the counts are
// right; tests assert that, so that the fast path cannot silently stop working.
func (s *Service) PageFallbacks() int64 { return s.pageFallbacks.Load() }

// SearchCacheBytes bounds the memory of a replica's search cache.
const SearchCacheBytes = 32 << 20

// WithReadReplica sends the reads that tolerate lag (lists, search, history) to replica. Reads
// of one user by id stay on the primary, so a client always sees its own writes.
func (s *Service) WithReadReplica(replica *sql.DB) *Service {
	if replica != nil {
		s.read = replica
	}
	return s
}

// NewService returns a Service on db and v. now is the clock (time.Now when nil).
func NewService(db *sql.DB, v *vault.Vault, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{db: db, read: db, vault: v, now: now, searchCache: search.NewCache(SearchCacheBytes)}
}

// reveal fills u's Aadhaar and PAN from the vault. An entry that is gone (erased) stays empty.
func (s *Service) reveal(ctx context.Context, q *sqlcgen.Queries, u *User) error {
	m, err := s.vault.Reveal(ctx, q, u.aadhaarRef, u.panRef)
	if err != nil {
		return err
	}
	u.Aadhaar, u.PAN = govid.AadhaarFromStore(m[u.aadhaarRef]), govid.PANFromStore(m[u.panRef])
	return nil
}

// storeIDs puts nu's Aadhaar and PAN in the vault and returns their refs.
func (s *Service) storeIDs(ctx context.Context, q *sqlcgen.Queries, nu NewUser) (aRef, pRef string, err error) {
	if aRef, err = s.vault.Store(ctx, q, vault.KindAadhaar, nu.Aadhaar.Digits()); err != nil {
		return "", "", err
	}
	pRef, err = s.vault.Store(ctx, q, vault.KindPAN, nu.PAN.Value())
	return aRef, pRef, err
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
	if s.vault.Shared() {
		u, err := s.createPipelined(ctx, c, nu)
		if !errors.Is(err, mysqldb.ErrRefused) {
			return u, err
		}
		// A value is taken (perhaps by a deleted user, who is then restored), the idempotency key
		// was used before, or a deadlock: the interactive transaction below decides which.
		s.createFallbacks.Add(1)
	}
	var out User
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadCommitted, func(q *sqlcgen.Queries) error {
		now, version, id := s.now().UTC(), uuid.NewString(), newID()
		action, changed := ActionCreate, createdFields(nu)
		row, err := s.insertNew(ctx, q, c, id, nu, now, version)
		if err != nil {
			if !isDuplicate(err) {
				return err
			}
			if id, changed, err = s.revive(ctx, q, c, nu, row.AadhaarRef.String, row.PanRef.String, now, version); err != nil {
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
		if out, err = s.readBack(ctx, q, id); err != nil {
			return err
		}
		return countLive(ctx, q, 1, out.CreatedAt) // a new user, or a deleted one made live again
	})
	return out, err
}

// createPipelined is Create in the common case, where every value is new: the same statements
// as the interactive transaction's first try (insertNew, audit, countLive), recorded into a
// pipeline and sent in one round trip (see mysqldb.Pipeline). The returned user is made from the
// row as written, with the timestamps cut to the columns' microseconds first, so it is what a read
// would return. It fails with mysqldb.ErrRefused, having written nothing, when the server refuses
// a statement.
func (s *Service) createPipelined(ctx context.Context, c Caller, nu NewUser) (User, error) {
	p := mysqldb.NewPipeline()
	q := p.Queries()
	now, version, id := s.now().UTC().Truncate(time.Microsecond), uuid.NewString(), newID()
	row, err := s.insertNew(ctx, q, c, id, nu, now, version)
	if err != nil {
		return User{}, err
	}
	if err := audit(ctx, q, c, id, ActionCreate, createdFields(nu), version, now); err != nil {
		return User{}, err
	}
	if err := countLive(ctx, q, 1, now); err != nil {
		return User{}, err
	}
	if err := p.Run(ctx, s.db); err != nil {
		return User{}, err
	}
	u := toUser(sqlcgen.User{
		ID: row.ID, Name: row.Name, Email: row.Email, EmailKey: row.EmailKey,
		PrimaryMobile: row.PrimaryMobile, SecondaryMobile: row.SecondaryMobile,
		DateOfBirth: row.DateOfBirth, PlaceOfBirth: row.PlaceOfBirth,
		AadhaarRef: row.AadhaarRef, PanRef: row.PanRef,
		CurrentAddress: row.CurrentAddress, PermanentAddress: row.PermanentAddress,
		CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt, CreatedBy: row.CreatedBy, UpdatedBy: row.UpdatedBy,
		Version: row.Version, IsActive: true, // the column defaults InsertUser writes
	})
	u.Aadhaar, u.PAN = nu.Aadhaar, nu.PAN
	return u, nil
}

// CreateFallbacks is how many creates the pipelined path handed to the interactive transaction
// because the server refused a statement (see Create). Tests assert it, so that a pipeline that
// always fails cannot hide behind the fallback.
func (s *Service) CreateFallbacks() int64 { return s.createFallbacks.Load() }

// insertNew makes, through q, the statements that write a new user, for both ways of creating
// one: the idempotency row (first, so that a retry of an applied create is recognised before its
// duplicate values are), the vault entries, the users row, and its search-queue row. It returns
// the users row; when a value is taken, the error is the users insert's duplicate, and the row
// still carries the vault refs for a revive.
func (s *Service) insertNew(ctx context.Context, q *sqlcgen.Queries, c Caller, id string, nu NewUser, now time.Time, version string) (sqlcgen.InsertUserParams, error) {
	if err := recordIdempotency(ctx, q, c, id, ActionCreate, now); err != nil {
		return sqlcgen.InsertUserParams{}, err
	}
	aRef, pRef, err := s.storeIDs(ctx, q, nu)
	if err != nil {
		return sqlcgen.InsertUserParams{}, err
	}
	row := sqlcgen.InsertUserParams{
		ID: id, Name: nu.Name, Email: nu.Email.Display(), EmailKey: nullString(nu.Email.Key()),
		PrimaryMobile: nullString(nu.PrimaryMobile), SecondaryMobile: nullString(nu.SecondaryMobile),
		DateOfBirth: nullDate(nu.DateOfBirth), PlaceOfBirth: nu.PlaceOfBirth,
		AadhaarRef: nullString(aRef), PanRef: nullString(pRef),
		CurrentAddress: nu.CurrentAddress, PermanentAddress: nu.PermanentAddress,
		CreatedAt: now, UpdatedAt: now, CreatedBy: nullString(c.Actor), UpdatedBy: nullString(c.Actor),
		Version: version,
	}
	if _, err := q.InsertUser(ctx, row); err != nil {
		return row, err
	}
	return row, q.AddSearchPendingFor(ctx, id)
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

// countLive moves the maintained live-user counts by delta, on a random slot: the total
// (user_counts) and those of the user's creation day, hour, minute and second (user_time_counts).
func countLive(ctx context.Context, q *sqlcgen.Queries, delta int64, createdAt time.Time) error {
	slot := uint8(rand.IntN(16))
	if err := q.AddLiveUsers(ctx, sqlcgen.AddLiveUsersParams{Slot: slot, Delta: delta}); err != nil {
		return err
	}
	return q.AddLiveUsersAt(ctx, sqlcgen.AddLiveUsersAtParams{
		Day: Bucket(createdAt, UnitDay), Hour: Bucket(createdAt, UnitHour), Minute: Bucket(createdAt, UnitMinute),
		Second: Bucket(createdAt, UnitSecond), Slot: slot, Delta: delta,
	})
}

// The units of user_time_counts, by their length in seconds.
const (
	UnitDay    = 1
	UnitHour   = 2
	UnitMinute = 3
	UnitSecond = 4
)

// unitSeconds is the length of each unit; unitsPerParent how many of a unit make the one above.
var (
	unitSeconds    = map[uint8]int64{UnitDay: 86400, UnitHour: 3600, UnitMinute: 60, UnitSecond: 1}
	unitsPerParent = map[uint8]uint32{UnitHour: 24, UnitMinute: 60, UnitSecond: 60}
)

// Bucket is the user_time_counts bucket of a creation time: whole UTC days, hours, minutes or
// seconds since 1970-01-01, as DATEDIFF, HOUR, MINUTE and SECOND count them in the recount.
func Bucket(t time.Time, unit uint8) uint32 { return uint32(t.UTC().Unix() / unitSeconds[unit]) }

// bucketStart is the first instant of a bucket.
func bucketStart(bucket uint32, unit uint8) time.Time {
	return time.Unix(int64(bucket)*unitSeconds[unit], 0).UTC()
}

// readBack reads a live user with its Aadhaar and PAN: after a write, inside its transaction
// (MySQL has no RETURNING), or for a plain read. When the vault shares the database, the vault
// entries come in the same round trip (one query instead of two).
func (s *Service) readBack(ctx context.Context, q *sqlcgen.Queries, id string) (User, error) {
	if !s.vault.Shared() {
		row, err := q.GetLiveUser(ctx, id)
		if err != nil {
			return User{}, err
		}
		u := toUser(row)
		return u, s.reveal(ctx, q, &u)
	}
	row, err := q.GetLiveUserWithIDs(ctx, id)
	if err != nil {
		return User{}, err
	}
	u := toUser(row.User)
	open := func(kind, ref string, ct sql.NullString) (string, error) {
		if ref == "" || !ct.Valid {
			return "", nil // erased
		}
		return s.vault.Open(kind, ref, []byte(ct.String))
	}
	a, err := open(vault.KindAadhaar, u.aadhaarRef, row.AadhaarCiphertext)
	if err != nil {
		return User{}, err
	}
	p, err := open(vault.KindPAN, u.panRef, row.PanCiphertext)
	if err != nil {
		return User{}, err
	}
	u.Aadhaar, u.PAN = govid.AadhaarFromStore(a), govid.PANFromStore(p)
	return u, nil
}

// revive handles a duplicate on create: if the email's holder is soft-deleted and no other
// user holds the other unique values, it overwrites the deleted user with nu and returns its id.
// Otherwise it returns a *ConflictError naming every field held by someone else.
func (s *Service) revive(ctx context.Context, q *sqlcgen.Queries, c Caller, nu NewUser, aadhaar, pan string, now time.Time, version string) (string, []string, error) {
	key, mobile := nu.Email.Key(), nu.PrimaryMobile
	holders, err := findHolders(ctx, q, key, mobile, aadhaar, pan)
	if err != nil {
		return "", nil, err
	}
	ownerID := ""
	for _, h := range holders {
		if h.EmailKey.String == key && h.IsDeleted {
			ownerID = h.ID
		}
	}
	if cerr := conflictError(holders, key, mobile, aadhaar, pan, ownerID); cerr != nil {
		return "", nil, cerr
	}
	if ownerID != "" && !c.MayRevive {
		// Reviving frees the deleted user's old identifiers: it needs the right to restore.
		return "", nil, &ConflictError{Fields: []string{"email"}, Deleted: true}
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
		Name: nu.Name, Email: nu.Email.Display(), EmailKey: nullString(key),
		PrimaryMobile: nullString(mobile), SecondaryMobile: nullString(nu.SecondaryMobile),
		DateOfBirth: nullDate(nu.DateOfBirth), PlaceOfBirth: nu.PlaceOfBirth,
		AadhaarRef: nullString(aadhaar), PanRef: nullString(pan),
		CurrentAddress: nu.CurrentAddress, PermanentAddress: nu.PermanentAddress,
		UpdatedAt: now, UpdatedBy: nullString(c.Actor), NewVersion: version,
		ID: ownerID, ExpectedVersion: old.Version,
	})
	if isDuplicate(err) {
		return "", nil, conflicts(ctx, q, key, mobile, aadhaar, pan, ownerID)
	}
	if err == nil {
		err = search.Queue(ctx, q, old.Seq)
	}
	if err == nil {
		err = search.Forget(ctx, q, old.Seq, old.Name, old.Email)
	}
	if err != nil {
		return "", nil, err
	}
	prev := toUser(old)
	changed := diffFields(prev, User{
		Name: nu.Name, Email: nu.Email.Display(), PrimaryMobile: mobile, SecondaryMobile: nu.SecondaryMobile,
		DateOfBirth: nu.DateOfBirth, PlaceOfBirth: nu.PlaceOfBirth, aadhaarRef: aadhaar, panRef: pan,
		CurrentAddress: nu.CurrentAddress, PermanentAddress: nu.PermanentAddress, IsActive: true,
	})
	// The old Aadhaar and PAN, when replaced, are referenced by nobody now: remove them. (With a
	// separate vault database they stay as unreferenced entries: see README.)
	if s.vault.Shared() {
		var gone []string
		if prev.aadhaarRef != aadhaar {
			gone = append(gone, prev.aadhaarRef)
		}
		if prev.panRef != pan {
			gone = append(gone, prev.panRef)
		}
		if err := s.vault.Delete(ctx, q, gone...); err != nil {
			return "", nil, err
		}
	}
	return ownerID, append(changed, "is_deleted"), nil
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

// Get returns a live user. With pii, the caller will see the full Aadhaar and PAN: the read is
// recorded in the audit trail in the same transaction (who saw whose data, when).
func (s *Service) Get(ctx context.Context, c Caller, id string, pii bool) (User, error) {
	if !pii {
		u, err := s.readBack(ctx, sqlcgen.New(s.db), id)
		if errors.Is(err, sql.ErrNoRows) {
			return User{}, ErrNotFound
		}
		if err != nil {
			return User{}, fmt.Errorf("get user: %w", err)
		}
		return u, nil
	}
	var out User
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadCommitted, func(q *sqlcgen.Queries) error {
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
		return User{}, fmt.Errorf("lookup: %w", err)
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
		return User{}, fmt.Errorf("lookup: %w", err)
	}
	return s.Get(ctx, c, id, true)
}

// Update applies a partial update to a live user, if pre allows its current version. An update that changes nothing writes nothing and keeps the version.
func (s *Service) Update(ctx context.Context, c Caller, id string, pre Precondition, ch Changes) (User, error) {
	var out User
	err := mysqldb.InRawTx(ctx, s.db, mysqldb.ReadCommitted, func(tx *sql.Tx) error {
		q := sqlcgen.New(tx)
		if err := recordIdempotency(ctx, q, c, id, ActionUpdate, s.now().UTC()); err != nil {
			return err
		}
		row, err := lockLive(ctx, q, id, pre)
		if err != nil {
			return err
		}
		cur := toUser(row)
		next, emailKey := applyChanges(cur, row.EmailKey.String, ch)
		if next.SecondaryMobile != "" && next.SecondaryMobile == next.PrimaryMobile {
			verr := &ValidationError{}
			verr.Add("secondary_mobile", "must differ from primary_mobile")
			return verr
		}
		changed := diffFields(cur, next)
		if len(changed) == 0 {
			out = cur
			return s.reveal(ctx, q, &out)
		}
		// The writes need no answer: one round trip (see mysqldb.Pipeline.Flush). The update
		// comes first, so that when a new value is taken nothing after it has run.
		p := mysqldb.NewPipeline()
		w := p.Queries()
		now, version := s.now().UTC(), uuid.NewString()
		if _, err := w.UpdateUserProfile(ctx, sqlcgen.UpdateUserProfileParams{
			Name: next.Name, Email: next.Email, EmailKey: nullString(emailKey), PrimaryMobile: nullString(next.PrimaryMobile),
			SecondaryMobile: nullString(next.SecondaryMobile), CurrentAddress: next.CurrentAddress,
			PermanentAddress: next.PermanentAddress, IsActive: next.IsActive,
			UpdatedAt: now, UpdatedBy: nullString(c.Actor), NewVersion: version,
			ID: id, ExpectedVersion: row.Version,
		}); err != nil {
			return err
		}
		if next.Name != cur.Name || next.Email != cur.Email {
			if err := search.Queue(ctx, w, row.Seq); err != nil {
				return err
			}
		}
		if err := audit(ctx, w, c, id, ActionUpdate, changed, version, now); err != nil {
			return err
		}
		if err := p.Flush(ctx, tx); isDuplicate(err) {
			return conflicts(ctx, q, emailKey, next.PrimaryMobile, "", "", id)
		} else if err != nil {
			return err
		}
		if next.Name != cur.Name || next.Email != cur.Email {
			// The old name or email must not stay rebuildable from the index.
			if err := search.Forget(ctx, q, row.Seq, row.Name, row.Email); err != nil {
				return err
			}
		}
		out, err = s.readBack(ctx, q, id)
		return err
	})
	return out, err
}

// Delete soft-deletes a live user and returns its new version.
func (s *Service) Delete(ctx context.Context, c Caller, id string, pre Precondition) (string, error) {
	var version string
	err := mysqldb.InRawTx(ctx, s.db, mysqldb.ReadCommitted, func(tx *sql.Tx) error {
		q := sqlcgen.New(tx)
		now := s.now().UTC()
		if err := recordIdempotency(ctx, q, c, id, ActionDelete, now); err != nil {
			return err
		}
		row, err := lockLive(ctx, q, id, pre)
		if err != nil {
			return err
		}
		// The writes need no answer: one round trip (see mysqldb.Pipeline.Flush).
		p := mysqldb.NewPipeline()
		w := p.Queries()
		version = uuid.NewString()
		if _, err := w.SoftDeleteUser(ctx, sqlcgen.SoftDeleteUserParams{
			DeletedAt: sql.NullTime{Time: now, Valid: true}, DeletedBy: nullString(c.Actor),
			UpdatedAt: now, UpdatedBy: nullString(c.Actor), NewVersion: version,
			ID: id, ExpectedVersion: row.Version,
		}); err != nil {
			return err
		}
		if err := countLive(ctx, w, -1, row.CreatedAt); err != nil {
			return err
		}
		if err := audit(ctx, w, c, id, ActionDelete, []string{"is_deleted", "is_active"}, version, now); err != nil {
			return err
		}
		return p.Flush(ctx, tx)
	})
	return version, err
}

// Restore undoes a soft delete. A live user gives ErrNotDeleted.
func (s *Service) Restore(ctx context.Context, c Caller, id string, pre Precondition) (User, error) {
	var out User
	err := mysqldb.InRawTx(ctx, s.db, mysqldb.ReadCommitted, func(tx *sql.Tx) error {
		q := sqlcgen.New(tx)
		if err := recordIdempotency(ctx, q, c, id, ActionRestore, s.now().UTC()); err != nil {
			return err
		}
		row, err := lockUser(ctx, q, id)
		if err != nil {
			return err
		}
		if row.ErasedAt.Valid {
			return ErrNotFound // an erased user is gone for good
		}
		if !row.IsDeleted {
			return ErrNotDeleted
		}
		if !pre.allows(row.Version) {
			return ErrPreconditionFailed
		}
		p := mysqldb.NewPipeline()
		w := p.Queries()
		now, version := s.now().UTC(), uuid.NewString()
		if _, err := w.RestoreUser(ctx, sqlcgen.RestoreUserParams{
			UpdatedAt: now, UpdatedBy: nullString(c.Actor), NewVersion: version,
			ID: id, ExpectedVersion: row.Version,
		}); err != nil {
			return err
		}
		if err := countLive(ctx, w, 1, row.CreatedAt); err != nil {
			return err
		}
		if err := audit(ctx, w, c, id, ActionRestore, []string{"is_deleted", "is_active"}, version, now); err != nil {
			return err
		}
		if err := p.Flush(ctx, tx); err != nil {
			return err
		}
		out, err = s.readBack(ctx, q, id)
		return err
	})
	return out, err
}

// List returns a page of live users, newest first. The total comes from the maintained count
// and the offset is walked on the covering index only (see ListLiveUserIDs).
func (s *Service) List(ctx context.Context, p Page) (PageOf[User], error) {
	var out PageOf[User]
	err := mysqldb.InTx(ctx, s.read, mysqldb.ReadSnapshot, func(q *sqlcgen.Queries) error {
		var err error
		if out.Total, err = q.CountLiveUsersMaintained(ctx); err != nil {
			return err
		}
		off := p.Offset()
		if off > math.MaxInt32 {
			return nil
		}
		var ids []string
		if off < dayWalkFrom || off >= out.Total {
			ids, err = q.ListLiveUserIDs(ctx, sqlcgen.ListLiveUserIDsParams{Limit: int32(p.Size), Offset: int32(off)})
		} else {
			ids, err = s.listFromDay(ctx, q, off, p.Size)
		}
		if err != nil {
			return err
		}
		out.Items, err = usersInOrder(ctx, q, ids)
		return err
	})
	return out, err
}

// dayWalkFrom is the offset from which a page by number starts from its second
// (user_time_counts) instead of walking the index from the top: below it the walk is cheaper.
const dayWalkFrom = 2000

// dayWindow is how many days one ListTimeCounts reads.
const dayWindow = 64

// listFromDay finds the second that holds row off of the list (newest first) by summing live
// counts newest first: days, then that day's hours, that hour's minutes and that minute's seconds.
// It stops early at a bucket of at most walkWithin users, and then walks the index from the end of
// the bucket it stopped at. The counts must be exact, as the total is: they change in the
// transaction of every change that makes a user live or not, and migrate's recount rebuilds them.
func (s *Service) listFromDay(ctx context.Context, q *sqlcgen.Queries, off int64, size int) ([]string, error) {
	var before int64 // live users created after the bucket being looked at
	var day uint32
	var live int64 // live users in the bucket found
	found := false
	oldest := int64(-1) // the oldest counted day, read only when the newest days do not reach off
	var err error
	for hi := int64(Bucket(time.Now(), UnitDay)) + 2; ; hi -= dayWindow {
		lo := max(hi-dayWindow, 0)
		if day, live, found, err = findBucket(ctx, q, UnitDay, uint32(lo), uint32(hi), off, &before); err != nil {
			return nil, err
		}
		if found || lo == 0 {
			break
		}
		if oldest < 0 {
			if oldest, err = q.OldestCountedDay(ctx); err != nil {
				return nil, err
			}
		}
		if lo < oldest {
			break
		}
	}
	bucket, unit := day, uint8(UnitDay)
	for _, child := range []uint8{UnitHour, UnitMinute, UnitSecond} {
		if !found || live <= walkWithin {
			break // walking this bucket's few users costs less than reading its children's counts
		}
		first := bucket * unitsPerParent[child] // the first child bucket of the parent
		bucket, live, found, err = findBucket(ctx, q, child, first-1, first+unitsPerParent[child]-1, off, &before)
		if err != nil {
			return nil, err
		}
		unit = child
	}
	if !found {
		// The counts say the list is shorter than the maintained total (they cannot disagree
		// unless edited by hand): fall back to the plain walk, which is always right, and count it.
		s.pageFallbacks.Add(1)
		return q.ListLiveUserIDs(ctx, sqlcgen.ListLiveUserIDsParams{Limit: int32(size), Offset: int32(off)})
	}
	return q.ListLiveUserIDsBefore(ctx, sqlcgen.ListLiveUserIDsBeforeParams{
		CreatedAt: bucketStart(bucket+1, unit), Limit: int32(size), Offset: int32(off - before),
	})
}

// findBucket reads the counts of unit's buckets in (lo, hi], newest first, adding them to *before
// until the bucket that holds row off, which it returns with its count.
func findBucket(ctx context.Context, q *sqlcgen.Queries, unit uint8, lo, hi uint32, off int64, before *int64) (uint32, int64, bool, error) {
	rows, err := q.ListTimeCounts(ctx, sqlcgen.ListTimeCountsParams{Unit: unit, Lo: lo, Hi: hi})
	if err != nil {
		return 0, 0, false, err
	}
	for _, r := range rows {
		if *before+r.Live > off {
			return r.Bucket, r.Live, true, nil
		}
		*before += r.Live
	}
	return 0, 0, false, nil
}

// walkWithin is the most live users a bucket may hold for a deep page to walk it instead of
// reading its children's counts: a walk of that many index entries costs less than a round trip.
// A variable only so that tests can set it to 0 and make every page descend to seconds.
var walkWithin int64 = 256

// Cursor is a position in the list order (newest first): the last item a client has seen.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// CursorOf returns the cursor after u.
func CursorOf(u User) Cursor { return Cursor{CreatedAt: u.CreatedAt, ID: u.ID} }

// ListAfter returns up to size live users after the cursor, newest first (keyset pagination:
// the cost does not grow with the position), and the total.
func (s *Service) ListAfter(ctx context.Context, after Cursor, size int) (PageOf[User], error) {
	var out PageOf[User]
	err := mysqldb.InTx(ctx, s.read, mysqldb.ReadSnapshot, func(q *sqlcgen.Queries) error {
		var err error
		if out.Total, err = q.CountLiveUsersMaintained(ctx); err != nil {
			return err
		}
		// The three limits: ties after the cursor, older rows, and the merged page.
		rows, err := q.ListLiveUserIDsAfter(ctx, sqlcgen.ListLiveUserIDsAfterParams{
			CursorAt: after.CreatedAt, CursorID: after.ID, Limit: int32(size),
			CursorAtAgain: after.CreatedAt, Limit_2: int32(size), Limit_3: int32(size),
		})
		if err != nil {
			return err
		}
		ids := make([]string, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		out.Items, err = usersInOrder(ctx, q, ids)
		return err
	})
	return out, err
}

// usersInOrder reads users by id and returns them in the order of ids.
func usersInOrder(ctx context.Context, q *sqlcgen.Queries, ids []string) ([]User, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := q.GetUsersByIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]User, len(rows))
	for _, r := range rows {
		byID[r.ID] = toUser(r)
	}
	out := make([]User, 0, len(ids))
	for _, id := range ids {
		if u, ok := byID[id]; ok {
			out = append(out, u)
		}
	}
	return out, nil
}

// RecountLiveUsers rebuilds the maintained count from the users table. It locks the count's
// rows (and gaps) first, so that writers wait and nothing is counted twice or missed.
func RecountLiveUsers(ctx context.Context, db *sql.DB) (int64, error) {
	var n int64
	err := mysqldb.InTx(ctx, db, &sql.TxOptions{Isolation: sql.LevelRepeatableRead}, func(q *sqlcgen.Queries) error {
		if _, err := q.LockUserCounts(ctx); err != nil {
			return err
		}
		var err error
		if n, err = q.CountLiveUsers(ctx); err != nil {
			return err
		}
		if err := q.ClearUserCounts(ctx); err != nil {
			return err
		}
		if _, err := q.LockUserTimeCounts(ctx); err != nil {
			return err
		}
		if err := q.ClearUserTimeCounts(ctx); err != nil {
			return err
		}
		for _, fill := range []func(context.Context) error{q.FillUserDayCounts, q.FillUserHourCounts, q.FillUserMinuteCounts, q.FillUserSecondCounts} {
			if err := fill(ctx); err != nil {
				return err
			}
		}
		return q.AddLiveUsers(ctx, sqlcgen.AddLiveUsersParams{Slot: 0, Delta: n})
	})
	return n, err
}

// SearchMinLen and SearchMaxLen bound the search text, in characters.
const SearchMinLen, SearchMaxLen = 2, 100

// Search returns live users whose name or email contains text, ignoring case and accents,
// newest-registered first, from the search index (internal/search). The total is exact up to
// search.ExactLimit candidates and estimated past it (PageOf.Estimated).
func (s *Service) Search(ctx context.Context, text string, p Page) (PageOf[User], error) {
	var out PageOf[User]
	query, ok := search.ParseQuery(text)
	if !ok || p.Offset() > math.MaxInt32 {
		return out, nil
	}
	err := mysqldb.InTx(ctx, s.read, mysqldb.ReadSnapshot, func(q *sqlcgen.Queries) error {
		res, err := search.Find(ctx, q, s.searchCache, query, int(p.Offset()), p.Size)
		if err != nil {
			return err
		}
		out.Total, out.Estimated = res.Total, !res.Exact
		if len(res.IDs) > 0 {
			out.Items, err = usersInOrder(ctx, q, res.IDs)
		}
		return err
	})
	return out, err
}

// History returns a user's audit trail, newest first. Soft-deleted users have one too.
func (s *Service) History(ctx context.Context, id string, p Page) (PageOf[AuditEntry], error) {
	var out PageOf[AuditEntry]
	err := mysqldb.InTx(ctx, s.read, mysqldb.ReadSnapshot, func(q *sqlcgen.Queries) error {
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

// lockUser locks a user's row, live or deleted; a missing user is ErrNotFound.
func lockUser(ctx context.Context, q *sqlcgen.Queries, id string) (sqlcgen.User, error) {
	row, err := q.LockUser(ctx, id)
	if errors.Is(err, sql.ErrNoRows) {
		return row, ErrNotFound
	}
	return row, err
}

// lockLive locks a live user whose version pre allows.
func lockLive(ctx context.Context, q *sqlcgen.Queries, id string, pre Precondition) (sqlcgen.User, error) {
	row, err := lockUser(ctx, q, id)
	if err != nil {
		return row, err
	}
	if row.IsDeleted {
		return row, ErrNotFound
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
	add("aadhaar", a.aadhaarRef != b.aadhaarRef)
	add("pan", a.panRef != b.panRef)
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
			return Erasure{}, err
		}
		if err := s.vault.Delete(ctx, nil, row.AadhaarRef.String, row.PanRef.String); err != nil {
			return Erasure{}, err
		}
	}
	var out Erasure
	err := mysqldb.InTx(ctx, s.db, mysqldb.ReadCommitted, func(q *sqlcgen.Queries) error {
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
			if err := countLive(ctx, q, -1, row.CreatedAt); err != nil {
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
