package search

import (
	"context"
	"fmt"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// Forget takes seq out of the postings of every gram of the given name and email (a user's
// indexed text before an erasure or a change), inside the transaction of that change, so that the
// index cannot rebuild a value the user no longer has. All old grams go, not only those the new
// value lacks: the compactor indexes the user's current text again into its bucket (the change
// queues it), which keeps a simple invariant: a user's postings are either in the one bulk segment
// that loaded it or in its compactor bucket, never partly in both.
func Forget(ctx context.Context, q *sqlcgen.Queries, seq uint32, name, email string) error {
	docGrams := DocGrams(name, email)
	if len(docGrams) == 0 {
		return nil
	}
	grams := make([][]byte, len(docGrams))
	for i, g := range docGrams {
		grams[i] = []byte(g)
	}
	bucket := compactBase + uint64(seq>>16)
	keys, err := q.SearchSegmentKeysFor(ctx, sqlcgen.SearchSegmentKeysForParams{Grams: grams, Seq: uint64(seq), Bucket: bucket})
	if err != nil {
		return err
	}
	// The bulk segment that loaded the user has all its grams: keep the segments every gram has.
	perSegment := map[uint64]int{}
	for _, k := range keys {
		perSegment[k.Segment]++
	}
	segments := []uint64{bucket}
	for seg, n := range perSegment {
		if seg != bucket && n == len(grams) {
			segments = append(segments, seg)
		}
	}
	rows, err := q.LockSearchSegmentsAt(ctx, sqlcgen.LockSearchSegmentsAtParams{Grams: grams, Segments: segments})
	if err != nil {
		return err
	}
	for _, r := range rows {
		b := roaring.New()
		if err := b.UnmarshalBinary(r.Seqs); err != nil {
			return fmt.Errorf("search segment %x: %w", r.Gram, err)
		}
		if !b.CheckedRemove(seq) {
			continue
		}
		blob, err := b.ToBytes()
		if err != nil {
			return err
		}
		if _, err := q.SetSearchSegment(ctx, sqlcgen.SetSearchSegmentParams{
			Seqs: blob, N: uint32(b.GetCardinality()), Gram: r.Gram, Segment: r.Segment,
		}); err != nil {
			return err
		}
	}
	return nil
}
