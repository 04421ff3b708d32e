// Package events publishes the service's change events to a Redis Stream, which other services
// follow with stock Redis clients and consumer groups (docs/api.md, "Change events").
//
// The transactional outbox is the audit trail itself: a change's user_audit row is written in the
// change's own transaction with event_pending = TRUE (internal/users), so an event exists exactly
// when its change committed. The relay (relay.go), running in every replica, publishes the pending
// rows in id order and then marks them. An event holds names and ids only, never a personal value.
package events

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// Types of the events, by audit action. Reads (pii_read, pii_export: someone was shown a
// person's data) are not changes and have no event.
var types = map[string]string{
	"create":         "user.created",
	"update":         "user.updated",
	"delete":         "user.deleted",
	"restore":        "user.restored",
	"create_restore": "user.revived", // a create that brought a soft-deleted user back (same id)
	"erase":          "user.erased",
}

// Event is one committed change of a user.
type Event struct {
	// ID is the audit row's id: stable across re-publication (consumers drop duplicates by it),
	// and, per user, growing in commit order.
	ID        uint64    `json:"event_id,string"`
	Type      string    `json:"type"`
	UserID    string    `json:"user_id"`
	Version   string    `json:"version"`        // the user's version (ETag) after the change
	Changed   []string  `json:"changed_fields"` // the names of the changed fields, never their values
	Actor     string    `json:"actor"`          // "apikey:<id>", "jwt:<sub>" or a tool's name
	RequestID string    `json:"request_id"`     // the server's request id
	At        time.Time `json:"time"`
}

// fromAudit is the event of an audit row; ok is false for rows that are not changes.
func fromAudit(r sqlcgen.UserAudit) (e Event, ok bool) {
	typ, ok := types[r.Action]
	if !ok {
		return Event{}, false
	}
	var changed []string
	if r.ChangedFields != "" {
		changed = strings.Split(r.ChangedFields, ",")
	}
	return Event{
		ID: r.ID, Type: typ, UserID: r.UserID, Version: r.Version, Changed: changed,
		Actor: r.Actor.String, RequestID: r.RequestID.String, At: r.CreatedAt.UTC(),
	}, true
}

// values are the event's stream fields.
func (e Event) values() []any {
	return []any{
		"event_id", strconv.FormatUint(e.ID, 10), "type", e.Type, "user_id", e.UserID,
		"version", e.Version, "changed_fields", strings.Join(e.Changed, ","),
		"actor", e.Actor, "request_id", e.RequestID, "time", e.At.Format(time.RFC3339Nano),
	}
}

// Parse reads an event back from a stream entry's fields.
func Parse(fields map[string]any) (Event, error) {
	get := func(k string) string { s, _ := fields[k].(string); return s }
	id, err := strconv.ParseUint(get("event_id"), 10, 64)
	if err != nil {
		return Event{}, fmt.Errorf("event_id: %w", err)
	}
	at, err := time.Parse(time.RFC3339Nano, get("time"))
	if err != nil {
		return Event{}, fmt.Errorf("time: %w", err)
	}
	var changed []string
	if c := get("changed_fields"); c != "" {
		changed = strings.Split(c, ",")
	}
	return Event{
		ID: id, Type: get("type"), UserID: get("user_id"), Version: get("version"), Changed: changed,
		Actor: get("actor"), RequestID: get("request_id"), At: at,
	}, nil
}
