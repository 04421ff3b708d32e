-- Durable idempotency records (see schema/users.sql).

-- name: InsertIdempotencyKey :exec
INSERT INTO idempotency_keys (key_hash, fingerprint, user_id, action, created_at, expires_at)
VALUES (?, ?, ?, ?, ?, ?);

-- A create that revived a soft-deleted user learns the user's id after recording its key.
-- name: SetIdempotencyKeyUser :exec
UPDATE idempotency_keys SET user_id = ? WHERE key_hash = ?;

-- name: GetIdempotencyKey :one
SELECT key_hash, fingerprint, user_id, action, created_at, expires_at
FROM idempotency_keys
WHERE key_hash = ? AND expires_at > ?;

-- An expired row may be replaced by a new request with the same key.
-- name: DeleteExpiredIdempotencyKey :execrows
DELETE FROM idempotency_keys WHERE key_hash = ? AND expires_at <= ?;

-- name: PurgeExpiredIdempotencyKeys :execrows
DELETE FROM idempotency_keys WHERE expires_at <= ? LIMIT 1000;

-- Erasure: the keys of an erased user keep their row (a retry must still change nothing) but
-- lose the fingerprint of the request that held the person's data, and say "erase", so that a
-- retry is answered 410 Gone instead of with the person.
-- name: NeutraliseIdempotencyKeys :execrows
UPDATE idempotency_keys SET fingerprint = sqlc.arg(zero), action = 'erase' WHERE user_id = sqlc.arg(user_id);
