-- API keys (see schema/users.sql).

-- name: InsertAPIKey :exec
INSERT INTO api_keys (id, name, secret_hash, scopes, created_at) VALUES (?, ?, ?, ?, ?);

-- name: GetAPIKey :one
SELECT id, name, secret_hash, scopes, created_at, last_used_at, revoked_at FROM api_keys WHERE id = ?;

-- name: ListAPIKeys :many
SELECT id, name, secret_hash, scopes, created_at, last_used_at, revoked_at FROM api_keys ORDER BY created_at, id;

-- name: RevokeAPIKey :execrows
UPDATE api_keys SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL;

-- TouchAPIKey records use at most once a minute per key, to keep reads from turning into writes.
-- name: TouchAPIKey :exec
UPDATE api_keys SET last_used_at = sqlc.arg(now)
WHERE id = sqlc.arg(id) AND (last_used_at IS NULL OR last_used_at < sqlc.arg(stale_before));
