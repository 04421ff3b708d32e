-- Every statement the service runs against the users table. sqlc compiles each one into a typed
-- method of internal/sqlcgen. Live users are those with is_deleted = FALSE. Whole rows are read
-- with sqlc.embed(users): sqlc writes out the one column list of schema/users.sql, and the Go side
-- maps it in one place (users.toUser).

-- InsertUser's result carries the new user's seq (LastInsertId).
-- name: InsertUser :execresult
INSERT INTO users (
  id, name, email, email_key, primary_mobile, secondary_mobile, date_of_birth, place_of_birth,
  aadhaar_ref, pan_ref, aadhaar_last4, pan_last5, current_address, permanent_address, created_at, updated_at,
  created_by, updated_by, is_deleted, version, is_active, email_verified, mobile_verified, search_dirty
) VALUES (
  ?, ?, ?, ?, ?, ?, ?, ?,
  ?, ?, ?, ?, ?, ?, ?, ?,
  ?, ?, FALSE, ?, TRUE, FALSE, FALSE, TRUE
);

-- name: GetLiveUser :one
SELECT sqlc.embed(users)
FROM users
WHERE id = ? AND is_deleted = FALSE;

-- GetUserState tells whether a user exists at all (live or soft-deleted) and whether it was erased.
-- name: GetUserState :one
SELECT id, is_deleted, aadhaar_ref, pan_ref, erased_at FROM users WHERE id = ?;

-- LockUser reads a user, live or deleted, and locks the row until the transaction ends.
-- name: LockUser :one
SELECT sqlc.embed(users)
FROM users
WHERE id = ?
FOR UPDATE;

-- FindUniqueHolders returns every user holding one of the four unique values; used after a
-- duplicate-key error to name all the conflicting fields, not only the first one MySQL reports.
-- It is a plain (non-locking) read: under READ COMMITTED it sees the row that caused the error,
-- and it takes no lock that concurrent losers of the same race could deadlock on.
-- name: FindUniqueHolders :many
SELECT id, is_deleted, email_key, primary_mobile, aadhaar_ref, pan_ref
FROM users
WHERE email_key = ? OR primary_mobile = ? OR aadhaar_ref = ? OR pan_ref = ?;

-- UpdateUserProfile writes the updatable fields; the version guard makes a lost update impossible
-- even if a caller forgot to lock the row.
-- name: UpdateUserProfile :execrows
UPDATE users
SET name = ?, email = ?, email_key = ?, primary_mobile = ?, secondary_mobile = ?,
    current_address = ?, permanent_address = ?, is_active = ?,
    updated_at = ?, updated_by = ?, version = sqlc.arg(new_version),
    search_dirty = search_dirty OR sqlc.arg(reindex)
WHERE id = sqlc.arg(id) AND version = sqlc.arg(expected_version) AND is_deleted = FALSE;

-- ReviveUser brings a soft-deleted user back with the data of a new create request (the
-- description's auto-restore on create).
-- name: ReviveUser :execrows
UPDATE users
SET name = ?, email = ?, email_key = ?, primary_mobile = ?, secondary_mobile = ?,
    date_of_birth = ?, place_of_birth = ?, aadhaar_ref = ?, pan_ref = ?,
    aadhaar_last4 = ?, pan_last5 = ?,
    current_address = ?, permanent_address = ?,
    updated_at = ?, updated_by = ?, version = sqlc.arg(new_version),
    is_deleted = FALSE, deleted_at = NULL, deleted_by = NULL,
    is_active = TRUE, email_verified = FALSE, mobile_verified = FALSE, search_dirty = TRUE
WHERE id = sqlc.arg(id) AND version = sqlc.arg(expected_version) AND is_deleted = TRUE;

-- name: SoftDeleteUser :execrows
UPDATE users
SET is_deleted = TRUE, deleted_at = ?, deleted_by = ?, is_active = FALSE,
    updated_at = ?, updated_by = ?, version = sqlc.arg(new_version)
WHERE id = sqlc.arg(id) AND version = sqlc.arg(expected_version) AND is_deleted = FALSE;

-- name: RestoreUser :execrows
UPDATE users
SET is_deleted = FALSE, deleted_at = NULL, deleted_by = NULL, is_active = TRUE,
    updated_at = ?, updated_by = ?, version = sqlc.arg(new_version)
WHERE id = sqlc.arg(id) AND version = sqlc.arg(expected_version) AND is_deleted = TRUE;

-- name: CountLiveUsers :one
SELECT COUNT(*) FROM users WHERE is_deleted = FALSE;

-- Pages by number: the offset is walked on the covering index (is_deleted, created_at, id) only,
-- then the page's rows are read by primary key (a "deferred join").
-- name: ListLiveUserIDs :many
SELECT id FROM users
WHERE is_deleted = FALSE
ORDER BY created_at DESC, id DESC
LIMIT ? OFFSET ?;

-- Pages by cursor (keyset): the rows strictly after (created_at, id) in the list order. Two
-- index seeks, so that many rows sharing one created_at never turn into a scan: the cursor's
-- ties with a smaller id, then the older rows.
-- name: ListLiveUserIDsAfter :many
SELECT page.id, page.created_at FROM (
  (SELECT t.id, t.created_at FROM users t
   WHERE t.is_deleted = FALSE AND t.created_at = sqlc.arg(cursor_at) AND t.id < sqlc.arg(cursor_id)
   ORDER BY t.id DESC LIMIT ?)
  UNION ALL
  (SELECT o.id, o.created_at FROM users o
   WHERE o.is_deleted = FALSE AND o.created_at < sqlc.arg(cursor_at)
   ORDER BY o.created_at DESC, o.id DESC LIMIT ?)
) AS page
ORDER BY page.created_at DESC, page.id DESC
LIMIT ?;

-- name: GetUsersByIDs :many
SELECT sqlc.embed(users)
FROM users
WHERE id IN (sqlc.slice(ids));

-- Exact lookup: the vault turns the value into its ref first.
-- name: GetLiveUserByAadhaarRef :one
SELECT id FROM users WHERE aadhaar_ref = ? AND is_deleted = FALSE;

-- name: GetLiveUserByPANRef :one
SELECT id FROM users WHERE pan_ref = ? AND is_deleted = FALSE;

-- EraseUser irreversibly removes a user's personal data, leaving a tombstone: id, timestamps,
-- audit fields and the reason. The vault entries are deleted separately (internal/vault).
-- name: EraseUser :execrows
UPDATE users
SET name = '', email = '', email_key = NULL, primary_mobile = NULL, secondary_mobile = NULL,
    date_of_birth = NULL, place_of_birth = '', aadhaar_ref = NULL, pan_ref = NULL,
    aadhaar_last4 = NULL, pan_last5 = NULL,
    current_address = '', permanent_address = '',
    is_deleted = TRUE, deleted_at = COALESCE(deleted_at, sqlc.arg(deleted_at)), deleted_by = COALESCE(deleted_by, sqlc.arg(deleted_by)),
    is_active = FALSE, email_verified = FALSE, mobile_verified = FALSE, last_login_at = NULL,
    erased_at = sqlc.arg(erased_at), erasure_reason = sqlc.arg(reason),
    updated_at = sqlc.arg(updated_at), updated_by = sqlc.arg(updated_by), version = sqlc.arg(new_version),
    search_dirty = FALSE
WHERE id = sqlc.arg(id) AND erased_at IS NULL;

-- Retention: soft-deleted users whose deletion is older than the cut-off, oldest first.
-- name: ListDeletedBefore :many
SELECT id FROM users
WHERE is_deleted = TRUE AND erased_at IS NULL AND deleted_at < ?
ORDER BY deleted_at, id
LIMIT ?;

-- GetLiveUserWithIDs is GetLiveUser with the vault entries of its Aadhaar and PAN in the same
-- round trip, for when the vault shares this database.
-- name: GetLiveUserWithIDs :one
SELECT sqlc.embed(u), a.ciphertext AS aadhaar_ciphertext, p.ciphertext AS pan_ciphertext
FROM users u
LEFT JOIN pii_vault a ON a.ref = u.aadhaar_ref
LEFT JOIN pii_vault p ON p.ref = u.pan_ref
WHERE u.id = ? AND u.is_deleted = FALSE;

-- Pages by number past the first few: the rows created before a minute's end, from an offset within
-- that minute (see user_time_counts), on the same covering index.
-- name: ListLiveUserIDsBefore :many
SELECT id FROM users
WHERE is_deleted = FALSE AND created_at < ?
ORDER BY created_at DESC, id DESC
LIMIT ? OFFSET ?;

-- Backfill of the display forms (users.BackfillMasks) for rows written before those columns: the
-- next rows that still lack one, by primary key after a cursor (one pass of the table at most).
-- name: ListUsersMissingMasks :many
SELECT id, aadhaar_ref, pan_ref FROM users
WHERE id > sqlc.arg(after)
  AND ((aadhaar_ref IS NOT NULL AND aadhaar_last4 IS NULL) OR (pan_ref IS NOT NULL AND pan_last5 IS NULL))
ORDER BY id
LIMIT ?;

-- Only while the refs are the ones the masks were read from (a concurrent revive or erasure wins).
-- name: SetUserMasks :execrows
UPDATE users SET aadhaar_last4 = sqlc.arg(aadhaar_last4), pan_last5 = sqlc.arg(pan_last5)
WHERE id = sqlc.arg(id) AND aadhaar_ref <=> sqlc.arg(aadhaar_ref) AND pan_ref <=> sqlc.arg(pan_ref);

-- GetUser reads a user in any state (live, soft-deleted, erased): the data export.
-- name: GetUser :one
SELECT sqlc.embed(users)
FROM users
WHERE id = ?;

-- The import's uniqueness checks, a batch at a time: which of these emails (normalised) and
-- primary mobiles belong to a user already, live or soft-deleted.
-- name: FindEmailHolders :many
SELECT id, email_key FROM users WHERE email_key IN (sqlc.slice(email_keys));

-- name: FindMobileHolders :many
SELECT primary_mobile FROM users WHERE primary_mobile IN (sqlc.slice(mobiles));
