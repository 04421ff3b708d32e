package httpapi

import (
	"time"

	"github.com/usersvc/usersvc/internal/users"
)

// The response bodies and their converters from domain values: generated sqlc types never
// reach JSON.

type userResponse struct {
	ID               string  `json:"id"`
	Name             string  `json:"name"`
	Email            string  `json:"email"`
	PrimaryMobile    string  `json:"primary_mobile"`
	SecondaryMobile  *string `json:"secondary_mobile"`
	Aadhaar          string  `json:"aadhaar"`
	PAN              string  `json:"pan"`
	DateOfBirth      string  `json:"date_of_birth"`
	PlaceOfBirth     string  `json:"place_of_birth"`
	CurrentAddress   string  `json:"current_address"`
	PermanentAddress string  `json:"permanent_address"`
	IsActive         bool    `json:"is_active"`
	EmailVerified    bool    `json:"email_verified"`
	MobileVerified   bool    `json:"mobile_verified"`
	CreatedAt        string  `json:"created_at"`
	UpdatedAt        string  `json:"updated_at"`
	CreatedBy        *string `json:"created_by"`
	UpdatedBy        *string `json:"updated_by"`
	LastLoginAt      *string `json:"last_login_at"`
	Version          string  `json:"version"`
}

// toUserResponse is the masked form: Aadhaar as "XXXX XXXX 1234", PAN as "XXXXX1234X".
func toUserResponse(u users.User) userResponse { return toUserResponseWith(u, false) }

// toUserResponseWith shows the full Aadhaar and PAN when full is true (callers with users:pii,
// whose read has been audited).
func toUserResponseWith(u users.User, full bool) userResponse {
	aadhaar, pan := u.Aadhaar.Masked(), u.PAN.Masked()
	if full {
		aadhaar, pan = u.Aadhaar.Digits(), u.PAN.Value()
	}
	return userResponse{
		ID: u.ID, Name: u.Name, Email: u.Email, PrimaryMobile: u.PrimaryMobile,
		SecondaryMobile: optional(u.SecondaryMobile),
		Aadhaar:         aadhaar, PAN: pan,
		DateOfBirth:  u.DateOfBirth.Format(time.DateOnly),
		PlaceOfBirth: u.PlaceOfBirth, CurrentAddress: u.CurrentAddress, PermanentAddress: u.PermanentAddress,
		IsActive: u.IsActive, EmailVerified: u.EmailVerified, MobileVerified: u.MobileVerified,
		CreatedAt: timestamp(u.CreatedAt), UpdatedAt: timestamp(u.UpdatedAt),
		CreatedBy: optional(u.CreatedBy), UpdatedBy: optional(u.UpdatedBy),
		LastLoginAt: optionalTime(u.LastLoginAt), Version: u.Version,
	}
}

// userSummary is a list item: enough to show a row and fetch the user, no government ids.
type userSummary struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Email         string `json:"email"`
	PrimaryMobile string `json:"primary_mobile"`
	IsActive      bool   `json:"is_active"`
	CreatedAt     string `json:"created_at"`
	UpdatedAt     string `json:"updated_at"`
	Version       string `json:"version"`
}

func toUserSummary(u users.User) userSummary {
	return userSummary{ID: u.ID, Name: u.Name, Email: u.Email, PrimaryMobile: u.PrimaryMobile, IsActive: u.IsActive,
		CreatedAt: timestamp(u.CreatedAt), UpdatedAt: timestamp(u.UpdatedAt), Version: u.Version}
}

type auditResponse struct {
	ID            uint64   `json:"id"`
	UserID        string   `json:"user_id"`
	Action        string   `json:"action"`
	Actor         *string  `json:"actor"`
	RequestID     *string  `json:"request_id"`
	ChangedFields []string `json:"changed_fields"`
	Version       string   `json:"version"`
	At            string   `json:"at"`
}

func toAuditResponse(e users.AuditEntry) auditResponse {
	fields := e.ChangedFields
	if fields == nil {
		fields = []string{}
	}
	return auditResponse{ID: e.ID, UserID: e.UserID, Action: e.Action, Actor: optional(e.Actor),
		RequestID: optional(e.RequestID), ChangedFields: fields, Version: e.Version, At: timestamp(e.At)}
}

type pageResponse[T any] struct {
	Total      int64 `json:"total"`
	Page       *int  `json:"page"` // null when paging by cursor
	PageSize   int   `json:"page_size"`
	TotalPages int64 `json:"total_pages"`
	Data       []T   `json:"data"`
	// NextCursor continues after the last item (lists only; null at the end).
	NextCursor *string `json:"next_cursor,omitempty"`
	// TotalExact is false when Total is an estimate (search only).
	TotalExact *bool `json:"total_exact,omitempty"`
}

func toPageResponse[In, Out any](p users.Page, res users.PageOf[In], conv func(In) Out) pageResponse[Out] {
	data := make([]Out, len(res.Items))
	for i, it := range res.Items {
		data[i] = conv(it)
	}
	size := int64(p.Size)
	number := p.Number
	return pageResponse[Out]{Total: res.Total, Page: &number, PageSize: p.Size,
		TotalPages: (res.Total + size - 1) / size, Data: data}
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optionalTime(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := timestamp(*t)
	return &s
}
