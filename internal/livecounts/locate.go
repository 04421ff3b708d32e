package livecounts

import (
	"context"
	"time"

	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// dayWindow is how many days one ListTimeCounts reads.
const dayWindow = 64

// WalkWithin is the most live users a bucket may hold for a deep page to walk it instead of
// reading its children's counts: a walk of that many index entries costs less than a round trip.
// A variable only so that tests can set it to 0 and make every page descend to seconds.
var WalkWithin int64 = 256

// Position is where row off of the list (live users, newest first) is: the list's rows created
// before Before, skipping the first Skip of them.
type Position struct {
	Before time.Time
	Skip   int64
}

// Locate finds the bucket that holds row off of the list by summing live counts newest first:
// days (dayWindow at a time, from now), then that day's hours, that hour's minutes and that
// minute's seconds. It stops early at a bucket of at most WalkWithin users. found is false when
// the counts hold fewer than off+1 users (they cannot disagree with the total unless edited by
// hand). The counts must be read in the same snapshot as the walk that follows.
func Locate(ctx context.Context, q *sqlcgen.Queries, now time.Time, off int64) (pos Position, found bool, err error) {
	var before int64 // live users created after the bucket being looked at
	var day uint32
	var live int64      // live users in the bucket found
	oldest := int64(-1) // the oldest counted day, read only when the newest days do not reach off
	for hi := int64(Bucket(now, Day)) + 2; ; hi -= dayWindow {
		lo := max(hi-dayWindow, 0)
		if day, live, found, err = findBucket(ctx, q, Day, uint32(lo), uint32(hi), off, &before); err != nil {
			return pos, false, err
		}
		if found || lo == 0 {
			break
		}
		if oldest < 0 {
			if oldest, err = q.OldestCountedDay(ctx); err != nil {
				return pos, false, err
			}
		}
		if lo < oldest {
			break
		}
	}
	bucket, unit := day, uint8(Day)
	for _, child := range []uint8{Hour, Minute, Second} {
		if !found || live <= WalkWithin {
			break // walking this bucket's few users costs less than reading its children's counts
		}
		first := bucket * unitsPerParent[child] // the first child bucket of the parent
		bucket, live, found, err = findBucket(ctx, q, child, first-1, first+unitsPerParent[child]-1, off, &before)
		if err != nil {
			return pos, false, err
		}
		unit = child
	}
	return Position{Before: bucketStart(bucket+1, unit), Skip: off - before}, found, nil
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
