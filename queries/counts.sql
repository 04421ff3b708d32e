-- The maintained count of live users (schema/users.sql, user_counts).

-- name: AddLiveUsers :exec
INSERT INTO user_counts (slot, live) VALUES (sqlc.arg(slot), sqlc.arg(delta))
ON DUPLICATE KEY UPDATE live = live + sqlc.arg(delta);

-- name: CountLiveUsersMaintained :one
SELECT CAST(COALESCE(SUM(live), 0) AS SIGNED) AS total FROM user_counts;

-- Recount: lock every slot (and the gaps, so no slot appears meanwhile), count, replace.
-- name: LockUserCounts :many
SELECT slot FROM user_counts FOR UPDATE;

-- name: ClearUserCounts :exec
DELETE FROM user_counts;

-- name: CountUserCountSlots :one
SELECT COUNT(*) FROM user_counts;

-- name: AddLiveUsersOnDay :exec
INSERT INTO user_day_counts (day, slot, live) VALUES (sqlc.arg(day), sqlc.arg(slot), sqlc.arg(delta))
ON DUPLICATE KEY UPDATE live = live + sqlc.arg(delta);

-- Live users per day for the days in (lo, hi], newest first: a page by number reads these in
-- windows until it reaches its offset.
-- name: ListDayCounts :many
SELECT day, CAST(SUM(live) AS SIGNED) AS live FROM user_day_counts
WHERE day > sqlc.arg(lo) AND day <= sqlc.arg(hi)
GROUP BY day
ORDER BY day DESC;

-- name: OldestCountedDay :one
SELECT CAST(COALESCE(MIN(day), 0) AS SIGNED) AS day FROM user_day_counts;

-- name: LockUserDayCounts :many
SELECT day FROM user_day_counts FOR UPDATE;

-- name: ClearUserDayCounts :exec
DELETE FROM user_day_counts;

-- name: FillUserDayCounts :exec
INSERT INTO user_day_counts (day, slot, live)
SELECT DATEDIFF(created_at, '1970-01-01'), 0, COUNT(*) FROM users WHERE is_deleted = FALSE
GROUP BY DATEDIFF(created_at, '1970-01-01');

-- name: CountUserDayCountRows :one
SELECT COUNT(*) FROM user_day_counts;
