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
