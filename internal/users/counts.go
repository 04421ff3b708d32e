package users

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"time"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// countLive moves the maintained live-user counts by delta, on a random slot, in one statement:
// the total and the counts of the user's creation day, hour, minute and second (user_time_counts).
func countLive(ctx context.Context, q *sqlcgen.Queries, delta int64, createdAt time.Time) error {
	slot := uint8(rand.IntN(16))
	return q.AddLiveUsersAt(ctx, sqlcgen.AddLiveUsersAtParams{
		Day: Bucket(createdAt, UnitDay), Hour: Bucket(createdAt, UnitHour), Minute: Bucket(createdAt, UnitMinute),
		Second: Bucket(createdAt, UnitSecond), Slot: slot, Delta: delta,
	})
}

// The units of user_time_counts: the total (one bucket), then by their length in seconds.
const (
	UnitTotal  = 0
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

// RecountLiveUsers rebuilds the maintained counts from the users table. It locks the counts' rows
// (and gaps) first, user_time_counts before the legacy user_counts (the order writers take them
// in), so that writers wait and nothing is counted twice or missed.
func RecountLiveUsers(ctx context.Context, db *sql.DB) (int64, error) {
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
