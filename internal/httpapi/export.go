package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/usersvc/usersvc/internal/users"
)

// exportResponse is a person's data export: the profile, the history and the record of full
// reads; for an erased person, the tombstone fields alone.
type exportResponse struct {
	ID            string           `json:"id"`
	Erased        bool             `json:"erased"`
	ErasedAt      *string          `json:"erased_at,omitempty"`
	ErasureReason *string          `json:"erasure_reason,omitempty"`
	Profile       *exportProfile   `json:"profile,omitempty"`
	Changes       *[]auditResponse `json:"changes,omitempty"`
	PIIReads      *[]auditResponse `json:"pii_reads,omitempty"`
	ExportedAt    string           `json:"exported_at"`
}

// exportProfile is the full user (identifiers unmasked) with its soft-delete state.
type exportProfile struct {
	userResponse
	IsDeleted bool    `json:"is_deleted"`
	DeletedAt *string `json:"deleted_at"`
	DeletedBy *string `json:"deleted_by"`
}

func toExportResponse(x users.Export, now time.Time) exportResponse {
	if x.Erasure != nil {
		at := timestamp(x.Erasure.ErasedAt)
		return exportResponse{ID: x.Erasure.ID, Erased: true, ErasedAt: &at, ErasureReason: optional(x.Erasure.Reason), ExportedAt: timestamp(now)}
	}
	u := *x.User
	conv := func(es []users.AuditEntry) *[]auditResponse {
		out := make([]auditResponse, len(es))
		for i, e := range es {
			out[i] = toAuditResponse(e)
		}
		return &out
	}
	return exportResponse{
		ID: u.ID,
		Profile: &exportProfile{userResponse: toUserResponseWith(u, true), IsDeleted: u.IsDeleted,
			DeletedAt: optionalTime(u.DeletedAt), DeletedBy: optional(u.DeletedBy)},
		Changes: conv(x.Changes), PIIReads: conv(x.PIIReads), ExportedAt: timestamp(now),
	}
}

func handleUserExport(svc *users.Service, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := userID(c)
		if !ok {
			writeProblem(c, log, users.ErrNotFound)
			return
		}
		x, err := svc.Export(c.Request.Context(), caller(c), id)
		if err != nil {
			writeProblem(c, log, err)
			return
		}
		c.Header("Cache-Control", "no-store")
		c.JSON(http.StatusOK, toExportResponse(x, svc.Now()))
	}
}
