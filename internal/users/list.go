package users

import (
	"context"
	"math"
	"time"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/search"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// List returns a page of live users, newest first. The total comes from the maintained count.
// A page near the top is three statements outside any transaction (the total, the page's ids
// walked on the covering index, their rows by primary key): a transaction's START and COMMIT
// would be two more round trips of five. The total and the page may then be a few changes apart,
// as two requests would be, and a user deleted between the walk and the read is left out of the
// page (usersInOrder). A deep page reads counts and walks within one second of registrations
// (listFromDay), in one snapshot so that both agree.
func (s *Service) List(ctx context.Context, p Page) (PageOf[User], error) {
	var out PageOf[User]
	q := sqlcgen.New(s.read)
	var err error
	if out.Total, err = q.CountLiveUsersMaintained(ctx); err != nil {
		return out, mysqldb.Translate(err)
	}
	off := p.Offset()
	if off > math.MaxInt32 {
		return out, nil
	}
	if off < dayWalkFrom || off >= out.Total {
		ids, err := q.ListLiveUserIDs(ctx, sqlcgen.ListLiveUserIDsParams{Limit: int32(p.Size), Offset: int32(off)})
		if err == nil {
			out.Items, err = usersInOrder(ctx, q, ids)
		}
		return out, mysqldb.Translate(err)
	}
	err = mysqldb.InTx(ctx, s.read, mysqldb.ReadSnapshot, func(ctx context.Context, q *sqlcgen.Queries) error {
		ids, err := s.listFromDay(ctx, q, off, p.Size)
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
// the cost does not grow with the position), and the total: no transaction (see List).
func (s *Service) ListAfter(ctx context.Context, after Cursor, size int) (PageOf[User], error) {
	var out PageOf[User]
	q := sqlcgen.New(s.read)
	var err error
	if out.Total, err = q.CountLiveUsersMaintained(ctx); err != nil {
		return out, mysqldb.Translate(err)
	}
	// sqlc cannot name a LIMIT's parameter on MySQL: the three are the page size (the cursor's
	// ties, the older rows, the merged page).
	rows, err := q.ListLiveUserIDsAfter(ctx, sqlcgen.ListLiveUserIDsAfterParams{
		CursorAt: after.CreatedAt, CursorID: after.ID, Limit: int32(size), Limit_2: int32(size), Limit_3: int32(size),
	})
	if err != nil {
		return out, mysqldb.Translate(err)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	out.Items, err = usersInOrder(ctx, q, ids)
	return out, mysqldb.Translate(err)
}

// usersInOrder reads users by id and returns the live ones in the order of ids (outside a
// snapshot, one may have been deleted or erased since its id was found).
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
		if !r.User.IsDeleted && !r.User.ErasedAt.Valid {
			byID[r.User.ID] = toUser(r.User)
		}
	}
	out := make([]User, 0, len(ids))
	for _, id := range ids {
		if u, ok := byID[id]; ok {
			out = append(out, u)
		}
	}
	return out, nil
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
	err := mysqldb.InTx(ctx, s.read, mysqldb.ReadSnapshot, func(ctx context.Context, q *sqlcgen.Queries) error {
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
