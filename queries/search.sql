-- The substring search index (schema/users.sql, search_segments and search_pending; the
-- algorithm is in internal/search). Grams are UTF-8 bytes of three case- and accent-folded
-- characters; a two-character query reads every gram that starts with it (a prefix range).

-- name: SearchSegments :many
SELECT gram, seqs FROM search_segments WHERE gram IN (sqlc.slice(grams));

-- Users not yet indexed (the compactor's lag): flagged on their row, or queued by a replica of the
-- previous version in the legacy search_pending table during a rolling upgrade.
-- name: ListSearchPending :many
SELECT seq FROM users WHERE search_dirty = TRUE
UNION
SELECT seq FROM search_pending;

-- Verification of candidates: the folded name and email are compared in Go. Deleted users are
-- left out here; stale postings of changed users fail the comparison.
-- name: SearchVerifyUsers :many
SELECT id, seq, name, email FROM users
WHERE seq IN (sqlc.slice(seqs)) AND is_deleted = FALSE;

-- The seqs of users just inserted by a bulk load (seed), to index them.
-- name: GetUserSeqs :many
SELECT id, seq FROM users WHERE id IN (sqlc.slice(ids));

-- Reindex and compaction read the indexed text of users by seq.
-- name: ListUsersForIndex :many
SELECT seq, name, email FROM users
WHERE seq > ? AND erased_at IS NULL
ORDER BY seq
LIMIT ?;

-- name: CountSearchSegments :one
SELECT COUNT(*) FROM (SELECT 1 FROM search_segments LIMIT 1) s;

-- Compaction: lock the oldest flagged users (a writer that changes one of them meanwhile waits,
-- and flags it again after), read their text, merge their grams into the locked segments, then
-- clear exactly the flags read.
-- name: LockSearchDirty :many
SELECT seq, name, email FROM users
WHERE search_dirty = TRUE
ORDER BY seq
LIMIT ?
FOR UPDATE;

-- name: ClearSearchDirty :execrows
UPDATE users SET search_dirty = FALSE WHERE seq IN (sqlc.slice(seqs));

-- name: LockCompactSegments :many
SELECT gram, seqs FROM search_segments
WHERE segment = sqlc.arg(segment) AND gram IN (sqlc.slice(grams))
FOR UPDATE;

-- The legacy queue (see schema/users.sql): the compactor moves its rows onto users.search_dirty.
-- name: LockLegacySearchPending :many
SELECT seq FROM search_pending ORDER BY seq LIMIT ? FOR UPDATE;

-- name: MarkSearchDirty :execrows
UPDATE users SET search_dirty = TRUE WHERE seq IN (sqlc.slice(seqs)) AND erased_at IS NULL;

-- name: DeleteSearchPending :execrows
DELETE FROM search_pending WHERE seq IN (sqlc.slice(seqs));

-- How many users each gram has, to read the rarest grams first (a range of the primary key;
-- the bitmaps themselves are not read). Segment rows are never deleted and every rewrite bumps
-- rev, so the number of segments and the sum of rev also tell a replica whether the postings it
-- has cached for a gram are still current.
-- name: SearchGramSizes :many
SELECT gram, CAST(SUM(n) AS SIGNED) AS size, COUNT(*) AS segments, CAST(MAX(segment) AS UNSIGNED) AS newest,
       CAST(SUM(rev) AS SIGNED) AS revs FROM search_segments
WHERE gram IN (sqlc.slice(grams))
GROUP BY gram;

-- The same for every gram that starts with a two-character query.
-- name: SearchGramSizesPrefix :many
SELECT gram, CAST(SUM(n) AS SIGNED) AS size, COUNT(*) AS segments, CAST(MAX(segment) AS UNSIGNED) AS newest,
       CAST(SUM(rev) AS SIGNED) AS revs FROM search_segments
WHERE gram >= sqlc.arg(lo) AND gram < sqlc.arg(hi)
GROUP BY gram;

-- Forgetting a user's postings (search.Forget: erasure, and a change of name or email). First the
-- segments that may hold the user, without their bitmaps: its compactor bucket, and the bulk
-- segments at or below its seq (the one that holds it has every one of its grams).
-- name: SearchSegmentKeysFor :many
SELECT gram, segment FROM search_segments
WHERE gram IN (sqlc.slice(grams)) AND (segment <= sqlc.arg(seq) OR segment = sqlc.arg(bucket));

-- Then those rows, locked, to take the seq out of their bitmaps.
-- name: LockSearchSegmentsAt :many
SELECT gram, segment, seqs FROM search_segments
WHERE gram IN (sqlc.slice(grams)) AND segment IN (sqlc.slice(segments))
FOR UPDATE;

-- An emptied segment stays as a row with an empty bitmap, so that the number of segments and the
-- sum of rev only ever grow: together they tell a cached gram apart from a changed one.
-- name: SetSearchSegment :execrows
UPDATE search_segments SET seqs = sqlc.arg(seqs), n = sqlc.arg(n), rev = rev + 1
WHERE gram = sqlc.arg(gram) AND segment = sqlc.arg(segment);

-- Rebuild (usersvc reindex) empties the index in its own transaction before indexing every user
-- again, which drops postings left by values changed or erased before search.Forget existed.
-- name: ClearSearchSegments :exec
DELETE FROM search_segments;
