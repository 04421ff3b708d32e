-- The maintained counts of live users (schema/users.sql, user_time_counts): unit 0 is the total,
-- units 1-4 the users per creation day, hour, minute and second.

-- The total: unit 0, plus the legacy user_counts table, which only replicas of the previous version
-- still add to during a rolling upgrade (each replica adds its own changes to one of the two, so
-- their sum is exact at every moment).
-- name: CountLiveUsersMaintained :one
SELECT CAST(COALESCE(SUM(t.live), 0) AS SIGNED) AS total FROM (
  SELECT live FROM user_time_counts WHERE unit = 0 AND bucket = 0
  UNION ALL
  SELECT live FROM user_counts
) AS t;

-- Recount: lock every legacy slot (and the gaps, so no slot appears meanwhile), count, replace.
-- name: LockUserCounts :many
SELECT slot FROM user_counts FOR UPDATE;

-- name: ClearUserCounts :exec
DELETE FROM user_counts;

-- Every change that makes a user live or not: the total and the user's creation day, hour, minute
-- and second, in one statement (five rows of one slot).
-- name: AddLiveUsersAt :exec
INSERT INTO user_time_counts (unit, bucket, slot, live) VALUES
  (0, 0, sqlc.arg(slot), sqlc.arg(delta)),
  (1, sqlc.arg(day), sqlc.arg(slot), sqlc.arg(delta)),
  (2, sqlc.arg(hour), sqlc.arg(slot), sqlc.arg(delta)),
  (3, sqlc.arg(minute), sqlc.arg(slot), sqlc.arg(delta)),
  (4, sqlc.arg(second), sqlc.arg(slot), sqlc.arg(delta))
ON DUPLICATE KEY UPDATE live = live + sqlc.arg(delta);

-- Live users per bucket of one unit for the buckets in (lo, hi], newest first: a page by number
-- reads these until it reaches its offset.
-- name: ListTimeCounts :many
SELECT bucket, CAST(SUM(live) AS SIGNED) AS live FROM user_time_counts
WHERE unit = sqlc.arg(unit) AND bucket > sqlc.arg(lo) AND bucket <= sqlc.arg(hi)
GROUP BY bucket
ORDER BY bucket DESC;

-- name: OldestCountedDay :one
SELECT CAST(COALESCE(MIN(bucket), 0) AS SIGNED) AS day FROM user_time_counts WHERE unit = 1;

-- name: LockUserTimeCounts :many
SELECT unit FROM user_time_counts FOR UPDATE;

-- name: ClearUserTimeCounts :exec
DELETE FROM user_time_counts;

-- Recount (migrate): the buckets from created_at itself, stored in UTC (no session time zone).
-- name: FillUserDayCounts :exec
INSERT INTO user_time_counts (unit, bucket, slot, live)
SELECT 1, DATEDIFF(created_at, '1970-01-01'), 0, COUNT(*) FROM users WHERE is_deleted = FALSE
GROUP BY DATEDIFF(created_at, '1970-01-01');

-- name: FillUserHourCounts :exec
INSERT INTO user_time_counts (unit, bucket, slot, live)
SELECT 2, DATEDIFF(created_at, '1970-01-01') * 24 + HOUR(created_at), 0, COUNT(*) FROM users WHERE is_deleted = FALSE
GROUP BY DATEDIFF(created_at, '1970-01-01') * 24 + HOUR(created_at);

-- name: FillUserMinuteCounts :exec
INSERT INTO user_time_counts (unit, bucket, slot, live)
SELECT 3, (DATEDIFF(created_at, '1970-01-01') * 24 + HOUR(created_at)) * 60 + MINUTE(created_at), 0, COUNT(*)
FROM users WHERE is_deleted = FALSE
GROUP BY (DATEDIFF(created_at, '1970-01-01') * 24 + HOUR(created_at)) * 60 + MINUTE(created_at);

-- name: FillUserSecondCounts :exec
INSERT INTO user_time_counts (unit, bucket, slot, live)
SELECT 4, ((DATEDIFF(created_at, '1970-01-01') * 24 + HOUR(created_at)) * 60 + MINUTE(created_at)) * 60 + SECOND(created_at),
  0, COUNT(*)
FROM users WHERE is_deleted = FALSE
GROUP BY ((DATEDIFF(created_at, '1970-01-01') * 24 + HOUR(created_at)) * 60 + MINUTE(created_at)) * 60 + SECOND(created_at);

-- The recount's total (unit 0, one slot).
-- name: SetLiveTotal :exec
INSERT INTO user_time_counts (unit, bucket, slot, live) VALUES (0, 0, 0, sqlc.arg(live));

-- Whether a total is kept at all (unit 0, or the legacy table).
-- name: CountTotalRows :one
SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM user_time_counts WHERE unit = 0 LIMIT 1) AS z)
     + (SELECT COUNT(*) FROM (SELECT 1 FROM user_counts LIMIT 1) AS l) AS n;

-- Whether the counts of the finest unit exist: the units are written together, so a database
-- without them was counted before seconds were (migrate recounts it).
-- name: CountUserTimeCountRows :one
SELECT COUNT(*) FROM (SELECT 1 FROM user_time_counts WHERE unit = 4 LIMIT 1) AS seconds;
