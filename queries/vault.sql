-- The Aadhaar/PAN vault (schema/vault.sql). Only internal/vault calls these.

-- name: GetVaultRefByIndex :one
SELECT ref FROM pii_vault WHERE kind = ? AND blind_index = ?;

-- name: InsertVaultEntry :exec
INSERT INTO pii_vault (ref, kind, blind_index, key_id, ciphertext, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: GetVaultEntries :many
SELECT ref, kind, ciphertext FROM pii_vault WHERE ref IN (sqlc.slice(refs));

-- name: DeleteVaultEntries :execrows
DELETE FROM pii_vault WHERE ref IN (sqlc.slice(refs));

-- Key rotation: the next batch of entries not under the active key, after a cursor.
-- name: ListVaultEntriesToRekey :many
SELECT ref, kind, key_id, ciphertext FROM pii_vault
WHERE key_id <> sqlc.arg(active_key) AND ref > sqlc.arg(after_ref)
ORDER BY ref
LIMIT ?;

-- name: CountVaultEntriesToRekey :one
SELECT COUNT(*) FROM pii_vault WHERE key_id <> ?;

-- name: RekeyVaultEntry :execrows
UPDATE pii_vault SET key_id = ?, ciphertext = ?, updated_at = ?
WHERE ref = sqlc.arg(ref) AND key_id = sqlc.arg(old_key_id);
