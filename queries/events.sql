-- Change events (internal/events). A change's audit row is its event: written in the change's
-- transaction with event_pending = TRUE, published to the Redis Stream by the relay, then marked.

-- name: ListPendingEvents :many
-- The next events to publish, oldest first. Per user, id order is commit order: a user's changes
-- are written under its row lock, so a later change's row is inserted after the earlier commit.
SELECT sqlc.embed(user_audit)
FROM user_audit
WHERE event_pending = TRUE
ORDER BY id
LIMIT ?;

-- name: MarkEventsPublished :execrows
UPDATE user_audit SET event_pending = FALSE WHERE id IN (sqlc.slice(ids));

-- name: CountPendingEvents :one
-- How many events wait, counted up to the cap (the backlog metric).
SELECT COUNT(*) FROM (SELECT id FROM user_audit WHERE event_pending = TRUE LIMIT ?) AS pending;

-- name: OldestPendingEvent :one
-- The time of the oldest waiting event (the lag metric); no row when none waits.
SELECT created_at FROM user_audit WHERE event_pending = TRUE ORDER BY id LIMIT 1;

-- name: ReplayEvents :execrows
-- Publish again the changes from audit row from_id on (usersvc events replay), a batch at a time.
UPDATE user_audit SET event_pending = TRUE
WHERE id >= sqlc.arg(from_id) AND id < sqlc.arg(to_id) AND action NOT IN ('pii_read', 'pii_export');

-- name: LastAuditID :one
SELECT id FROM user_audit ORDER BY id DESC LIMIT 1;
