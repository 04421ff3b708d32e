-- The audit trail. Rows are written in the transaction of the change they describe; a change's row
-- is also its event, pending until the relay publishes it (queries/events.sql).

-- name: InsertAudit :exec
INSERT INTO user_audit (user_id, action, actor, request_id, changed_fields, version, created_at, event_pending)
VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: CountAudit :one
SELECT COUNT(*) FROM user_audit WHERE user_id = ?;

-- name: ListAudit :many
SELECT sqlc.embed(user_audit)
FROM user_audit
WHERE user_id = ?
ORDER BY id DESC
LIMIT ? OFFSET ?;
