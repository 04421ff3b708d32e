package users

import (
	"context"
	"math"
	"time"

	"github.com/usersvc/usersvc/internal/livecounts"
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

// dayWalkFrom is the offset from which a page by number is placed by the live counts
// (livecounts.Locate) instead of walking the index from the top: below it the walk is cheaper.
const dayWalkFrom = 2000

// listFromDay reads the ids of the page at off through the live counts (livecounts.Locate), in
// the caller's snapshot: the rows created before the located bucket's end, skipping the newer
// ones the counts have already placed. The counts are exact, as the total is: they change in the
// transaction of every change that makes a user live or not, and migrate's recount rebuilds them.
func (s *Service) listFromDay(ctx context.Context, q *sqlcgen.Queries, off int64, size int) ([]string, error) {
	pos, found, err := livecounts.Locate(ctx, q, time.Now(), off)
	if err != nil {
		return nil, err
	}
	if !found {
		// The counts say the list is shorter than the maintained total (they cannot disagree
		// unless edited by hand): fall back to the plain walk, which is always right, and count it.
		s.pageFallbacks.Add(1)
		return q.ListLiveUserIDs(ctx, sqlcgen.ListLiveUserIDsParams{Limit: int32(size), Offset: int32(off)})
	}
	return q.ListLiveUserIDsBefore(ctx, sqlcgen.ListLiveUserIDsBeforeParams{
		CreatedAt: pos.Before, Limit: int32(size), Offset: int32(pos.Skip),
	})
}

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
