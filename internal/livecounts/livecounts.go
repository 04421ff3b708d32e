// Package livecounts keeps user_time_counts: how many users are live, in total and per creation
// day, hour, minute and second (UTC), each spread over 16 slots so that concurrent writers rarely
// wait for one row. A list's total is the sum of the total's slots; a deep page by number finds
// the second that holds its first row from the other units (Locate) instead of walking the index
// from the top. Every change of liveness moves the counts in its own transaction (Add, one
// statement); `usersvc migrate` rebuilds them from the users table (Recount). The statements are
// in queries/counts.sql; the bucket formula below is the one the recount's SQL uses.
package livecounts

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// The units of user_time_counts: the total (one bucket), then by their length in seconds.
const (
	Total  = 0
	Day    = 1
	Hour   = 2
	Minute = 3
	Second = 4
)

// slots is how many rows share each bucket's count.
const slots = 16

// unitSeconds is the length of each unit; unitsPerParent how many of a unit make the one above.
var (
	unitSeconds    = map[uint8]int64{Day: 86400, Hour: 3600, Minute: 60, Second: 1}
	unitsPerParent = map[uint8]uint32{Hour: 24, Minute: 60, Second: 60}
)

// Bucket is the bucket of a creation time: whole UTC days, hours, minutes or seconds since
// 1970-01-01, as DATEDIFF, HOUR, MINUTE and SECOND count them in the recount (queries/counts.sql).
func Bucket(t time.Time, unit uint8) uint32 { return uint32(t.UTC().Unix() / unitSeconds[unit]) }

// bucketStart is the first instant of a bucket.
func bucketStart(bucket uint32, unit uint8) time.Time {
	return time.Unix(int64(bucket)*unitSeconds[unit], 0).UTC()
}

// Add moves the counts of a user created at createdAt by delta (+1: the user became live; -1: it
// no longer is), on a random slot, in one statement: the total, the day, hour, minute and second.
func Add(ctx context.Context, q *sqlcgen.Queries, delta int64, createdAt time.Time) error {
	return q.AddLiveUsersAt(ctx, sqlcgen.AddLiveUsersAtParams{
		Day: Bucket(createdAt, Day), Hour: Bucket(createdAt, Hour), Minute: Bucket(createdAt, Minute),
		Second: Bucket(createdAt, Second), Slot: uint8(rand.IntN(slots)), Delta: delta,
	})
}

// Batch collects the new live users of a bulk load, to be added in multi-row statements.
type Batch map[uint8]map[uint32]int64

// NewBatch returns an empty batch.
func NewBatch() Batch { return Batch{Total: {}, Day: {}, Hour: {}, Minute: {}, Second: {}} }

// Add counts one new live user created at createdAt.
func (b Batch) Add(createdAt time.Time) {
	b[Total][0]++
	for _, unit := range []uint8{Day, Hour, Minute, Second} {
		b[unit][Bucket(createdAt, unit)]++
	}
}

// Write adds the batch to user_time_counts on one random slot: AddLiveUsersAt's statement of
// queries/counts.sql with one row per bucket (sqlc cannot repeat a VALUES row), in key order so
// that concurrent batches never deadlock.
func (b Batch) Write(ctx context.Context, tx *sql.Tx) error {
	slot := uint8(rand.IntN(slots))
	var args []any
	for _, unit := range []uint8{Total, Day, Hour, Minute, Second} {
		keys := make([]uint32, 0, len(b[unit]))
		for k := range b[unit] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			args = append(args, unit, k, slot, b[unit][k])
		}
	}
	const perStatement = 3000 // 4 placeholders a row, under MySQL's 65,535
	for lo := 0; lo < len(args)/4; lo += perStatement {
		hi := min(lo+perStatement, len(args)/4)
		stmt := mysqldb.MultiRow("INSERT INTO user_time_counts (unit, bucket, slot, live) VALUES ", "(?, ?, ?, ?)", hi-lo) +
			" ON DUPLICATE KEY UPDATE live = live + VALUES(live)"
		if _, err := tx.ExecContext(ctx, stmt, args[4*lo:4*hi]...); err != nil {
			return err
		}
	}
	return nil
}

// Recount rebuilds the counts from the users table and returns the live total. It locks the
// counts' rows (and gaps) first, user_time_counts before the legacy user_counts (the order writers
// take them in), so that writers wait and nothing is counted twice or missed.
func Recount(ctx context.Context, db *sql.DB) (int64, error) {
	var n int64
	err := mysqldb.InTx(ctx, db, &sql.TxOptions{Isolation: sql.LevelRepeatableRead}, func(ctx context.Context, q *sqlcgen.Queries) error {
		if _, err := q.LockUserTimeCounts(ctx); err != nil {
			return err
		}
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
		if err := q.ClearUserTimeCounts(ctx); err != nil {
			return err
		}
		for _, fill := range []func(context.Context) error{q.FillUserDayCounts, q.FillUserHourCounts, q.FillUserMinuteCounts, q.FillUserSecondCounts} {
			if err := fill(ctx); err != nil {
				return err
			}
		}
		return q.SetLiveTotal(ctx, n)
	})
	return n, err
}
