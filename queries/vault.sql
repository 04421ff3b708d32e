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

-- A new user's Aadhaar and PAN in one statement (one round trip). When either value is in the
-- vault already, the server refuses the whole statement and the vault stores them one by one
-- (InsertVaultEntry, GetVaultRefByIndex).
-- name: InsertVaultEntryPair :exec
INSERT INTO pii_vault (ref, kind, blind_index, key_id, ciphertext, created_at, updated_at)
VALUES (sqlc.arg(a_ref), 'aadhaar', sqlc.arg(a_blind_index), sqlc.arg(a_key_id), sqlc.arg(a_ciphertext), sqlc.arg(now), sqlc.arg(now)),
       (sqlc.arg(p_ref), 'pan', sqlc.arg(p_blind_index), sqlc.arg(p_key_id), sqlc.arg(p_ciphertext), sqlc.arg(now), sqlc.arg(now));

-- Which of these values (by blind index) the vault holds: the import's uniqueness check.
-- name: ListVaultIndexesIn :many
SELECT blind_index FROM pii_vault WHERE kind = ? AND blind_index IN (sqlc.slice(blind_indexes));
