package livecounts

import (
	"testing"
	"time"
)

// TestBuckets: every unit's bucket of an instant starts at or before it and ends after it, and a
// unit's buckets nest in their parent's as unitsPerParent says.
func TestBuckets(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2026, 12, 1, 13, 59, 59, 999_999_000, time.UTC),
		time.Date(1999, 12, 31, 23, 0, 0, 0, time.FixedZone("IST", 19800)),
		time.Unix(0, 0),
	} {
		for _, unit := range []uint8{Day, Hour, Minute, Second} {
			b := Bucket(at, unit)
			if start := bucketStart(b, unit); start.After(at) || !bucketStart(b+1, unit).After(at) {
				t.Errorf("%v: unit %d bucket %d starts %v", at, unit, b, start)
			}
		}
		for _, child := range []uint8{Hour, Minute, Second} {
			if got, want := Bucket(at, child)/unitsPerParent[child], Bucket(at, child-1); got != want {
				t.Errorf("%v: unit %d bucket / %d = %d, want the parent's %d", at, child, unitsPerParent[child], got, want)
			}
		}
	}
}

// TestBatchCountsEveryUnit: a batch counts each user once in the total and once per unit.
func TestBatchCountsEveryUnit(t *testing.T) {
	b := NewBatch()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	b.Add(at)
	b.Add(at.Add(time.Second))
	b.Add(at.Add(2 * time.Hour))
	if b[Total][0] != 3 || b[Day][Bucket(at, Day)] != 3 || len(b[Hour]) != 2 || len(b[Second]) != 3 {
		t.Fatalf("batch %v", b)
	}
}
