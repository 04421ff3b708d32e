package users

import (
	"context"
	"database/sql"
	"sync/atomic"
	"time"

	"github.com/usersvc/usersvc/internal/govid"
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
	// forgetCopies removes the copies of a user's data kept outside MySQL (the stored
	// Idempotency-Key responses in Redis) after an erasure; nil when there are none.
	forgetCopies func(ctx context.Context, userID string) error
}

// NewService returns a Service on db and v. now is the clock (time.Now when nil).
func NewService(db *sql.DB, v *vault.Vault, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{db: db, read: db, vault: v, now: now, searchCache: search.NewCache(SearchCacheBytes)}
}

// WithReadReplica sends the reads that tolerate lag (lists, search, history) to replica. Reads
// of one user by id stay on the primary, so a client always sees its own writes.
func (s *Service) WithReadReplica(replica *sql.DB) *Service {
	if replica != nil {
		s.read = replica
	}
	return s
}

// WithErasureOf makes every erasure (Erase, PurgeDeletedBefore) also call forget with the erased
// user's id, after the database commit: it removes copies of the person kept elsewhere. If it
// fails, Erase fails with ErrUnavailable and can be repeated until it succeeds.
func (s *Service) WithErasureOf(forget func(ctx context.Context, userID string) error) *Service {
	s.forgetCopies = forget
	return s
}

// PageFallbacks is how many deep pages by number fell back to the plain offset walk because the
// live counts per day, hour, minute and second did not reach their offset. It stays 0 while the counts are
// right; tests assert that, so that the fast path cannot silently stop working.
func (s *Service) PageFallbacks() int64 { return s.pageFallbacks.Load() }

// SearchCacheBytes bounds the memory of a replica's search cache.
const SearchCacheBytes = 32 << 20

// Stores returns the main database and the vault, for bulk work beside the use cases (the import).
func (s *Service) Stores() (*sql.DB, *vault.Vault) { return s.db, s.vault }

// Now returns the service clock's current time; validation of ages uses it too.
func (s *Service) Now() time.Time { return s.now() }

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
	return s.vault.StorePair(ctx, q, nu.Aadhaar.Digits(), nu.PAN.Value())
}

// readBack reads a live user with its full Aadhaar and PAN (for callers with users:pii). When the
// vault shares the database, the vault entries come in the same round trip (one query, not two).
func (s *Service) readBack(ctx context.Context, q *sqlcgen.Queries, id string) (User, error) {
	return s.readUser(ctx, q, id, true)
}

// readMasked reads a live user for an answer that masks Aadhaar and PAN: from the users row alone
// (aadhaar_last4, pan_last5), without the vault, unless the row predates those columns and the
// backfill has not reached it yet.
func (s *Service) readMasked(ctx context.Context, q *sqlcgen.Queries, id string) (User, error) {
	return s.readUser(ctx, q, id, false)
}

func (s *Service) readUser(ctx context.Context, q *sqlcgen.Queries, id string, full bool) (User, error) {
	if !full {
		row, err := q.GetLiveUser(ctx, id)
		if err != nil {
			return User{}, err
		}
		u := toUser(row.User)
		if (u.aadhaarRef == "" || row.User.AadhaarLast4.Valid) && (u.panRef == "" || row.User.PanLast5.Valid) {
			return u, nil
		}
		return u, s.reveal(ctx, q, &u) // not backfilled yet
	}
	if !s.vault.Shared() {
		row, err := q.GetLiveUser(ctx, id)
		if err != nil {
			return User{}, err
		}
		u := toUser(row.User)
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
