package search

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// Postings maps a gram to the seqs of the users that have it.
type Postings map[string]*roaring.Bitmap

// Add records the grams of one user's name and email.
func (p Postings) Add(seq uint32, name, email string) {
	for _, g := range DocGrams(name, email) {
		b := p[g]
		if b == nil {
			b = roaring.New()
			p[g] = b
		}
		b.Add(seq)
	}
}

// compactBase is where the compactor's segments start (see schema/users.sql).
const compactBase = uint64(1) << 32

// Segment writes, as multi-row statements (mysqldb.MultiRow). The upsert form is only for the
// compactor, which holds the rows it replaces locked; a bulk load's segments are new rows, and a
// collision is an error rather than a silent overwrite.
const (
	segmentsPrefix = "INSERT INTO search_segments (gram, segment, seqs, n) VALUES "
	segmentsRow    = "(?, ?, ?, ?)"
	segmentsUpsert = " ON DUPLICATE KEY UPDATE seqs = VALUES(seqs), n = VALUES(n), rev = rev + 1"
	segmentsPerSQL = 500
)

// writeSegments stores p as segment rows.
func writeSegments(ctx context.Context, tx sqlcgen.DBTX, segment func(gram string) uint64, p Postings, upsert bool) error {
	grams := make([]string, 0, len(p))
	for g := range p {
		grams = append(grams, g)
	}
	slices.Sort(grams) // primary key order: fewer page splits, and a fixed lock order
	for len(grams) > 0 {
		n := min(len(grams), segmentsPerSQL)
		args := make([]any, 0, 4*n)
		for _, g := range grams[:n] {
			b := p[g]
			blob, err := b.ToBytes()
			if err != nil {
				return err
			}
			args = append(args, []byte(g), segment(g), blob, b.GetCardinality())
		}
		stmt := mysqldb.MultiRow(segmentsPrefix, segmentsRow, n)
		if upsert {
			stmt += segmentsUpsert
		}
		if _, err := tx.ExecContext(ctx, stmt, args...); err != nil {
			return fmt.Errorf("write search segments: %w", err)
		}
		grams = grams[n:]
	}
	return nil
}

// WriteBulk stores the postings of users loaded in bulk (seed, reindex) as a new segment, keyed by
// the lowest seq among them, inside the loading transaction.
func WriteBulk(ctx context.Context, tx sqlcgen.DBTX, p Postings) error {
	first := uint32(0)
	found := false
	for _, b := range p {
		if m := b.Minimum(); !found || m < first {
			first, found = m, true
		}
	}
	if !found {
		return nil
	}
	return writeSegments(ctx, tx, func(string) uint64 { return uint64(first) }, p, false)
}

// Candidates returns the seqs of users that may match q: indexed postings and every pending user.
func Candidates(ctx context.Context, q *sqlcgen.Queries, cache *Cache, query Query) (*roaring.Bitmap, error) {
	var out *roaring.Bitmap
	if len(query.Grams) == 0 {
		sizes, err := q.SearchGramSizesPrefix(ctx, sqlcgen.SearchGramSizesPrefixParams{Lo: query.Lo, Hi: query.Hi})
		if err != nil {
			return nil, err
		}
		parts := make([]*roaring.Bitmap, 0, len(sizes))
		for _, g := range sizes {
			b, err := gramPostings(ctx, q, cache, sqlcgen.SearchGramSizesRow(g))
			if err != nil {
				return nil, err
			}
			parts = append(parts, b)
		}
		out = roaring.FastOr(parts...)
	} else {
		var err error
		if out, err = intersectRarest(ctx, q, cache, query.Grams); err != nil {
			return nil, err
		}
	}
	pending, err := q.ListSearchPending(ctx)
	if err != nil {
		return nil, err
	}
	out.AddMany(pending)
	return out, nil
}

// enoughCandidates is where intersecting more grams stops paying: checking this many candidates
// against their rows costs less than reading another gram's postings.
const enoughCandidates = 64

// intersectRarest intersects the postings of grams, rarest first (by the size of their
// segments), and stops once few candidates are left: verification makes the result exact either
// way, and a common gram's postings are the expensive part of a query.
func intersectRarest(ctx context.Context, q *sqlcgen.Queries, cache *Cache, grams []string) (*roaring.Bitmap, error) {
	keys := make([][]byte, len(grams))
	for i, g := range grams {
		keys[i] = []byte(g)
	}
	sizes, err := q.SearchGramSizes(ctx, keys)
	if err != nil {
		return nil, err
	}
	if len(sizes) < len(grams) { // a gram no user has: no indexed user matches
		return roaring.New(), nil
	}
	slices.SortFunc(sizes, func(a, b sqlcgen.SearchGramSizesRow) int { return int(a.Size - b.Size) })
	var out *roaring.Bitmap
	for _, g := range sizes {
		postings, err := gramPostings(ctx, q, cache, g)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = postings.Clone() // the cache's copy is shared
		} else {
			out.And(postings)
		}
		if out.GetCardinality() <= enoughCandidates {
			break
		}
	}
	return out, nil
}

// gramPostings returns every seq that has gram: from the cache when its segments are unchanged,
// else read from the segments (and cached).
func gramPostings(ctx context.Context, q *sqlcgen.Queries, cache *Cache, g sqlcgen.SearchGramSizesRow) (*roaring.Bitmap, error) {
	v := gramVersion{size: g.Size, segments: g.Segments, newest: g.Newest, revs: g.Revs}
	if b := cache.get(string(g.Gram), v); b != nil {
		return b, nil
	}
	rows, err := q.SearchSegments(ctx, [][]byte{g.Gram})
	if err != nil {
		return nil, err
	}
	parts := make([]*roaring.Bitmap, 0, len(rows))
	for _, r := range rows {
		b := roaring.New()
		if err := b.UnmarshalBinary(r.Seqs); err != nil {
			return nil, fmt.Errorf("search segment %x: %w", r.Gram, err)
		}
		parts = append(parts, b)
	}
	// FastOr unites through bitmap containers: an in-place Or into run containers adds value by
	// value, which was most of a common query's time.
	postings := roaring.FastOr(parts...)
	// Within one snapshot the sizes and the segments agree, so the version describes postings.
	cache.put(string(g.Gram), v, postings)
	return postings, nil
}

// ExactLimit is how many candidates a search verifies to give an exact total. Past it, only the
// candidates the requested page needs are verified and the total is estimated from them.
const ExactLimit = 1000

// verifyChunk bounds one verification query.
const verifyChunk = 500

// Result is one page of a search.
type Result struct {
	IDs   []string // the page's users, newest-registered first
	Total int64
	Exact bool // false when Total is an estimate
}

// Find returns the page [offset, offset+limit) of the users matching q, newest-registered first.
func Find(ctx context.Context, q *sqlcgen.Queries, cache *Cache, query Query, offset, limit int) (Result, error) {
	cands, err := Candidates(ctx, q, cache, query)
	if err != nil {
		return Result{}, err
	}
	n := int(cands.GetCardinality())
	need := offset + limit
	verifyAll := n <= ExactLimit
	var matched []string
	verified := 0
	it := cands.ReverseIterator()
	for it.HasNext() && (verifyAll || len(matched) < need) {
		size := verifyChunk
		if !verifyAll {
			// Ask for what is still missing, with room for misses.
			size = min(verifyChunk, max(32, 2*(need-len(matched))))
		}
		chunk := make([]uint32, 0, size)
		for len(chunk) < size && it.HasNext() {
			chunk = append(chunk, it.Next())
		}
		verified += len(chunk)
		rows, err := q.SearchVerifyUsers(ctx, chunk)
		if err != nil {
			return Result{}, err
		}
		slices.SortFunc(rows, func(a, b sqlcgen.SearchVerifyUsersRow) int { return int(int64(b.Seq) - int64(a.Seq)) })
		for _, r := range rows {
			if Matches(query.Folded, r.Name, r.Email) {
				matched = append(matched, r.ID)
			}
		}
	}
	res := Result{Total: int64(len(matched)), Exact: verified == n}
	if !res.Exact && verified > 0 {
		res.Total += int64(float64(n-verified) * float64(len(matched)) / float64(verified))
	}
	if offset < len(matched) {
		res.IDs = matched[offset:min(need, len(matched))]
	}
	return res, nil
}

// CompactChunk bounds the users one compaction transaction indexes.
const CompactChunk = 1000

// Compact indexes the users flagged search_dirty into segments until none are left, and returns
// how many it indexed. It first moves rows of the legacy search_pending queue (written by replicas
// of the previous version during a rolling upgrade) onto the flag. Replicas may run it at the same
// time: the users and segments it touches are locked, so they take turns.
func Compact(ctx context.Context, db *sql.DB) (int, error) {
	if err := drainLegacyQueue(ctx, db); err != nil {
		return 0, err
	}
	total := 0
	for {
		n := 0
		err := mysqldb.InRawTx(ctx, db, mysqldb.ReadCommitted, func(ctx context.Context, tx *sql.Tx) error {
			q := sqlcgen.New(tx)
			rows, err := q.LockSearchDirty(ctx, CompactChunk)
			if err != nil || len(rows) == 0 {
				n = 0
				return err
			}
			n = len(rows)
			// Group by compactor bucket; each bucket's segments are merged under lock.
			buckets := map[uint64]Postings{}
			seqs := make([]uint32, len(rows))
			for i, r := range rows {
				seqs[i] = r.Seq
				b := compactBase + uint64(r.Seq>>16)
				if buckets[b] == nil {
					buckets[b] = Postings{}
				}
				buckets[b].Add(r.Seq, r.Name, r.Email)
			}
			for bucket, p := range buckets {
				if err := mergeInto(ctx, tx, q, bucket, p); err != nil {
					return err
				}
			}
			_, err = q.ClearSearchDirty(ctx, seqs)
			return err
		})
		total += n
		if err != nil || n < CompactChunk {
			return total, err
		}
	}
}

// drainLegacyQueue moves the rows of search_pending onto users.search_dirty, a chunk per
// transaction, under the rows' locks (a previous-version replica may be adding rows meanwhile).
func drainLegacyQueue(ctx context.Context, db *sql.DB) error {
	for {
		n := 0
		err := mysqldb.InTx(ctx, db, mysqldb.ReadCommitted, func(ctx context.Context, q *sqlcgen.Queries) error {
			seqs, err := q.LockLegacySearchPending(ctx, CompactChunk)
			if n = len(seqs); err != nil || n == 0 {
				return err
			}
			if _, err := q.MarkSearchDirty(ctx, seqs); err != nil {
				return err
			}
			_, err = q.DeleteSearchPending(ctx, seqs)
			return err
		})
		if err != nil || n < CompactChunk {
			return err
		}
	}
}

// mergeInto ORs p into the compactor segments of bucket.
func mergeInto(ctx context.Context, tx sqlcgen.DBTX, q *sqlcgen.Queries, bucket uint64, p Postings) error {
	grams := make([][]byte, 0, len(p))
	for g := range p {
		grams = append(grams, []byte(g))
	}
	slices.SortFunc(grams, func(a, b []byte) int { return strings.Compare(string(a), string(b)) })
	existing, err := q.LockCompactSegments(ctx, sqlcgen.LockCompactSegmentsParams{Segment: bucket, Grams: grams})
	if err != nil {
		return err
	}
	for _, r := range existing {
		old := roaring.New()
		if err := old.UnmarshalBinary(r.Seqs); err != nil {
			return fmt.Errorf("search segment %x: %w", r.Gram, err)
		}
		p[string(r.Gram)].Or(old)
	}
	return writeSegments(ctx, tx, func(string) uint64 { return bucket }, p, true)
}

// Reindex builds the index of every user when it has none (a database from before the index, or
// restored without it). It runs as one transaction, so that an index either is whole or is not
// there: a reindex cut short leaves no segments, and the next migrate starts again (a partial one
// would make the "has segments" check skip users for good). It is safe while the service runs:
// changes meanwhile are flagged search_dirty as usual. It returns the number of users indexed.
func Reindex(ctx context.Context, db *sql.DB, out io.Writer) (int, error) {
	has, err := sqlcgen.New(db).CountSearchSegments(ctx)
	if err != nil || has > 0 {
		return 0, err
	}
	return build(ctx, db, out, false)
}

// Rebuild replaces the whole index with one built from the users table, in one transaction
// (`usersvc reindex`). Run it once after upgrading from a version without search.Forget: it drops
// the postings of names and emails that were changed or erased before, which that version left
// rebuildable. Searches meanwhile read the old index; the compactor waits for the rebuild.
func Rebuild(ctx context.Context, db *sql.DB, out io.Writer) (int, error) {
	return build(ctx, db, out, true)
}

func build(ctx context.Context, db *sql.DB, out io.Writer, clear bool) (int, error) {
	const batch = 4096
	total := 0
	err := mysqldb.InRawTx(ctx, db, mysqldb.ReadCommitted, func(ctx context.Context, tx *sql.Tx) error {
		q := sqlcgen.New(tx)
		if clear {
			if err := q.ClearSearchSegments(ctx); err != nil {
				return err
			}
		}
		after := uint32(0)
		total = 0
		for {
			rows, err := q.ListUsersForIndex(ctx, sqlcgen.ListUsersForIndexParams{Seq: after, Limit: batch})
			if err != nil || len(rows) == 0 {
				return err
			}
			p := Postings{}
			for _, r := range rows {
				p.Add(r.Seq, r.Name, r.Email)
			}
			if err := WriteBulk(ctx, tx, p); err != nil {
				return err
			}
			total += len(rows)
			after = rows[len(rows)-1].Seq
		}
	})
	if err != nil {
		return 0, err
	}
	if total > 0 && out != nil {
		fmt.Fprintf(out, "-- indexed %d users for search\n", total)
	}
	return total, nil
}
