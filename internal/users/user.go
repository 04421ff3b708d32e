// Package users holds the user-management use cases. Each exported method of Service is one
// use case and runs in one database transaction; its inputs are already-validated domain values
// and its failures are the sentinel errors of this package.
package users

import (
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/usersvc/usersvc/internal/govid"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// User is a user as the service sees it. It holds personal data: it logs and prints as its id.
type User struct {
	ID               string
	Name             string
	Email            string
	PrimaryMobile    string
	SecondaryMobile  string // "" when there is none
	DateOfBirth      time.Time
	PlaceOfBirth     string
	Aadhaar          govid.Aadhaar
	PAN              govid.PAN
	CurrentAddress   string
	PermanentAddress string
	IsActive         bool
	EmailVerified    bool
	MobileVerified   bool
	IsDeleted        bool
	CreatedAt        time.Time
	UpdatedAt        time.Time
	CreatedBy        string
	UpdatedBy        string
	DeletedAt        *time.Time
	DeletedBy        string
	LastLoginAt      *time.Time
	Version          string
	ErasedAt         *time.Time
	ErasureReason    string

	// References into the vault; Aadhaar and PAN are filled from them on demand.
	aadhaarRef, panRef string
}

// String prints only the id, so that a User in an error or log message leaks nothing.
func (u User) String() string { return "User(" + u.ID + ")" }

// LogValue implements slog.LogValuer with the id and version only.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", u.ID), slog.String("version", u.Version))
}

// AuditEntry is one row of a user's history. It names changed fields, never their values.
type AuditEntry struct {
	ID            uint64
	UserID        string
	Action        string
	Actor         string
	RequestID     string
	ChangedFields []string
	Version       string
	At            time.Time
}

// Audit actions.
const (
	ActionCreate        = "create"
	ActionUpdate        = "update"
	ActionDelete        = "delete"
	ActionRestore       = "restore"
	ActionCreateRestore = "create_restore" // a create that revived a soft-deleted user
	ActionPIIRead       = "pii_read"       // someone was shown the full Aadhaar and PAN
	ActionPIIExport     = "pii_export"     // someone was given the person's data export
	ActionErase         = "erase"          // the personal data was removed for good
)

// Caller says who is acting and in which request; it is written to the audit fields.
type Caller struct {
	Actor     string // the authenticated principal ("apikey:<id>", "jwt:<sub>") or a tool's name
	RequestID string // made by the server, never the client's X-Request-ID
	// MayRevive: the caller may restore soft-deleted users (users:delete). Only then does a
	// create whose email belongs to a deleted user revive that user; otherwise it is a conflict.
	MayRevive bool
	// Idempotency, when set, is recorded in the transaction of the change (see AppliedError).
	Idempotency *Idempotency
}

// Idempotency identifies a write made under an Idempotency-Key.
type Idempotency struct {
	KeyHash     []byte // SHA-256 over caller, method, route and key
	Fingerprint []byte // SHA-256 of the canonical request
	TTL         time.Duration
}

// AppliedError says that the Idempotency-Key was already used for a change that committed
// earlier, so this request changed nothing. It matches ErrAlreadyApplied.
type AppliedError struct {
	UserID      string
	Action      string
	SamePayload bool // false: the key was reused for a different request
}

func (e *AppliedError) Error() string { return "idempotency key already applied (" + e.Action + ")" }

// Is makes errors.Is(err, ErrAlreadyApplied) true.
func (e *AppliedError) Is(target error) bool { return target == ErrAlreadyApplied }

// Precondition lists the versions a write may apply to (from If-Match or the body's version).
// The zero value allows any version.
type Precondition struct{ Versions []string }

func (p Precondition) allows(version string) bool {
	if len(p.Versions) == 0 {
		return true
	}
	for _, v := range p.Versions {
		if v == version {
			return true
		}
	}
	return false
}

// Page selects a page of a listing; Number starts at 1.
type Page struct{ Number, Size int }

// Offset returns the row offset of the page.
func (p Page) Offset() int64 { return int64(p.Number-1) * int64(p.Size) }

// PageOf is one page of a listing and the total number of matching items.
type PageOf[T any] struct {
	Items []T
	Total int64
	// Estimated is true when Total is an estimate (a search with very many candidates).
	Estimated bool
}

// Sentinel errors. The HTTP layer maps each to one status and problem type.
var (
	ErrNotFound           = errors.New("user not found")
	ErrPreconditionFailed = errors.New("the user has changed since the given version")
	ErrNotDeleted         = errors.New("user is not deleted")
	ErrConflict           = errors.New("a unique value is already in use")
	ErrInvalid            = errors.New("invalid input")
	ErrAlreadyApplied     = errors.New("idempotency key already applied")
	// ErrUnavailable: a dependency other than the database (Redis) failed; retrying may succeed.
	ErrUnavailable = errors.New("a dependency is unavailable")
	// ErrBusy: the database aborted the transaction (deadlock, lock-wait timeout) more often than
	// the bounded retry allows; nothing was changed and retrying may succeed.
	ErrBusy = mysqldb.ErrRetryable
	// ErrDatabaseUnavailable: the database could not be reached or the connection broke.
	ErrDatabaseUnavailable = mysqldb.ErrUnavailable
)

// ConflictError names the fields whose values belong to another user. It matches ErrConflict.
// Deleted says that the holder is a soft-deleted user whom this caller may not revive (a create
// revives only for a caller who may restore: Caller.MayRevive).
type ConflictError struct {
	Fields  []string
	Deleted bool
}

func (e *ConflictError) Error() string {
	if e.Deleted {
		return "belongs to a deleted user: " + strings.Join(e.Fields, ", ")
	}
	return "already in use by another user: " + strings.Join(e.Fields, ", ")
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// FieldError is one invalid field. Message never repeats the value.
type FieldError struct {
	Field   string
	Message string
}

// ValidationError lists every invalid field of a request. It matches ErrInvalid.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + " " + f.Message
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Add records a field error.
func (e *ValidationError) Add(field, message string) {
	e.Fields = append(e.Fields, FieldError{Field: field, Message: message})
}

// Has reports whether field already has an error.
func (e *ValidationError) Has(field string) bool {
	for _, f := range e.Fields {
		if f.Field == field {
			return true
		}
	}
	return false
}

// Err returns e as an error, or nil when no field is invalid.
func (e *ValidationError) Err() error {
	if e == nil || len(e.Fields) == 0 {
		return nil
	}
	return e
}

func toUser(r sqlcgen.User) User {
	return User{
		ID:               r.ID,
		Name:             r.Name,
		Email:            r.Email,
		PrimaryMobile:    r.PrimaryMobile.String,
		SecondaryMobile:  r.SecondaryMobile.String,
		DateOfBirth:      r.DateOfBirth.Time,
		PlaceOfBirth:     r.PlaceOfBirth,
		Aadhaar:          govid.AadhaarFromLast4(r.AadhaarLast4.String),
		PAN:              govid.PANFromLast5(r.PanLast5.String),
		aadhaarRef:       r.AadhaarRef.String,
		panRef:           r.PanRef.String,
		ErasedAt:         timePtr(r.ErasedAt),
		ErasureReason:    r.ErasureReason.String,
		CurrentAddress:   r.CurrentAddress,
		PermanentAddress: r.PermanentAddress,
		IsActive:         r.IsActive,
		EmailVerified:    r.EmailVerified,
		MobileVerified:   r.MobileVerified,
		IsDeleted:        r.IsDeleted,
		CreatedAt:        r.CreatedAt.UTC(),
		UpdatedAt:        r.UpdatedAt.UTC(),
		CreatedBy:        r.CreatedBy.String,
		UpdatedBy:        r.UpdatedBy.String,
		DeletedAt:        timePtr(r.DeletedAt),
		DeletedBy:        r.DeletedBy.String,
		LastLoginAt:      timePtr(r.LastLoginAt),
		Version:          r.Version,
	}
}

func toAuditEntry(r sqlcgen.UserAudit) AuditEntry {
	var fields []string
	if r.ChangedFields != "" {
		fields = strings.Split(r.ChangedFields, ",")
	}
	return AuditEntry{
		ID:            r.ID,
		UserID:        r.UserID,
		Action:        r.Action,
		Actor:         r.Actor.String,
		RequestID:     r.RequestID.String,
		ChangedFields: fields,
		Version:       r.Version,
		At:            r.CreatedAt.UTC(),
	}
}

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

func nullDate(t time.Time) sql.NullTime { return sql.NullTime{Time: t, Valid: !t.IsZero()} }

// String guard: fmt must never reach personal data through %v of these types.
var _ fmt.Stringer = User{}

// isRead tells the audit rows of reads (someone was shown personal data) from those of changes.
func isRead(action string) bool { return action == ActionPIIRead || action == ActionPIIExport }
