-- The audit trail. Rows are written in the transaction of the change they describe.

-- name: InsertAudit :exec
INSERT INTO user_audit (user_id, action, actor, request_id, changed_fields, version, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: CountAudit :one
SELECT COUNT(*) FROM user_audit WHERE user_id = ?;

-- name: ListAudit :many
SELECT id, user_id, action, actor, request_id, changed_fields, version, created_at
FROM user_audit
WHERE user_id = ?
ORDER BY id DESC
LIMIT ? OFFSET ?;
