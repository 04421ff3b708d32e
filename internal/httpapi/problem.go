package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/usersvc/usersvc/internal/users"
)

// problem is an RFC 9457 problem document. detail keeps clients of the original {"detail": ...}
// shape working; errors lists field errors; request_id lets a client quote the failing request.
type problem struct {
	Type      string         `json:"type"`
	Title     string         `json:"title"`
	Status    int            `json:"status"`
	Detail    string         `json:"detail"`
	Code      string         `json:"code"`
	Instance  string         `json:"instance,omitempty"`
	RequestID string         `json:"request_id"`
	Errors    []fieldProblem `json:"errors,omitempty"`
	// ErrorsOmitted counts the field errors left out of errors[] past maxFieldProblems.
	ErrorsOmitted int `json:"errors_omitted,omitempty"`
}

// maxFieldName caps how much of a client-chosen field name (an unknown key) is echoed back.
const maxFieldName = 64

// shortField cuts a field name to maxFieldName bytes (on a character boundary) and marks the cut.
func shortField(name string) string {
	if len(name) <= maxFieldName {
		return name
	}
	cut := maxFieldName
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut] + "…"
}

// maxFieldProblems caps errors[]: a body of 60,000 unknown keys must not make a 3.6 MB answer.
const maxFieldProblems = 50

type fieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// problemTypeBase prefixes the stable problem codes to form the RFC 9457 type URI.
const problemTypeBase = "https://usersvc.dev/problems/"

// httpError is an error that already knows its response (bad requests found by the HTTP layer).
type httpError struct {
	status int
	code   string
	detail string
	header map[string]string
}

func (e *httpError) Error() string { return e.detail }

func newHTTPError(status int, code, format string, args ...any) *httpError {
	return &httpError{status: status, code: code, detail: fmt.Sprintf(format, args...)}
}

// statusClientClosedRequest is logged when the client went away before the answer.
const statusClientClosedRequest = 499

// problemFor is the one table from errors to HTTP responses.
func problemFor(err error) (p problem, header map[string]string) {
	var (
		herr *httpError
		verr *users.ValidationError
		cerr *users.ConflictError
	)
	switch {
	case errors.As(err, &herr):
		return problem{Status: herr.status, Code: herr.code, Detail: herr.detail}, herr.header
	case errors.As(err, &verr):
		p = problem{Status: http.StatusUnprocessableEntity, Code: "validation_error"}
		shown := verr.Fields[:min(len(verr.Fields), maxFieldProblems)]
		names := make([]string, 0, len(shown))
		for _, f := range shown {
			name := shortField(f.Field)
			p.Errors = append(p.Errors, fieldProblem{Field: name, Message: f.Message})
			names = append(names, name)
		}
		p.ErrorsOmitted = len(verr.Fields) - len(shown)
		switch {
		case len(verr.Fields) == 1:
			p.Detail = names[0] + " " + verr.Fields[0].Message
		case p.ErrorsOmitted > 0:
			p.Detail = fmt.Sprintf("%d fields are invalid; the first %d are listed (%d left out): %s",
				len(verr.Fields), len(shown), p.ErrorsOmitted, strings.Join(names, ", "))
		default:
			p.Detail = fmt.Sprintf("%d fields are invalid: %s", len(names), strings.Join(names, ", "))
		}
		return p, nil
	case errors.As(err, &cerr) && cerr.Deleted:
		p = problem{Status: http.StatusConflict, Code: "held_by_deleted_user",
			Detail: "already in use by a deleted user: " + strings.Join(cerr.Fields, ", ") +
				"; restoring that user needs the users:delete scope (POST /api/v1/users/{id}/restore)"}
		for _, f := range cerr.Fields {
			p.Errors = append(p.Errors, fieldProblem{Field: f, Message: "belongs to a deleted user, whom only a caller with users:delete may restore"})
		}
		return p, nil
	case errors.As(err, &cerr):
		p = problem{Status: http.StatusConflict, Code: "duplicate",
			Detail: "already in use by another user: " + strings.Join(cerr.Fields, ", ")}
		for _, f := range cerr.Fields {
			p.Errors = append(p.Errors, fieldProblem{Field: f, Message: "is already in use by another user"})
		}
		return p, nil
	case errors.Is(err, users.ErrNotFound):
		return problem{Status: http.StatusNotFound, Code: "not_found", Detail: "User not found"}, nil
	case errors.Is(err, users.ErrPreconditionFailed):
		return problem{Status: http.StatusPreconditionFailed, Code: "version_mismatch",
			Detail: "the user has been changed since the version you sent; read it again and retry with its current ETag"}, nil
	case errors.Is(err, users.ErrNotDeleted):
		return problem{Status: http.StatusConflict, Code: "not_deleted", Detail: "the user is not deleted, so there is nothing to restore"}, nil
	case errors.Is(err, users.ErrUnavailable):
		return problem{Status: http.StatusServiceUnavailable, Code: "dependency_unavailable",
			Detail: "a dependency (Redis) is unavailable; the change is committed, repeat the request to finish it"}, map[string]string{"Retry-After": "1"}
	case errors.Is(err, context.Canceled):
		return problem{Status: statusClientClosedRequest, Code: "client_closed_request", Detail: "the client closed the request"}, nil
	case errors.Is(err, context.DeadlineExceeded):
		return problem{Status: http.StatusServiceUnavailable, Code: "timeout", Detail: "the request took too long and was cancelled; nothing was changed"},
			map[string]string{"Retry-After": "1"}
	case errors.Is(err, users.ErrBusy):
		return problem{Status: http.StatusServiceUnavailable, Code: "busy", Detail: "the database was busy with conflicting changes; nothing was changed, retry"},
			map[string]string{"Retry-After": "1"}
	case errors.Is(err, users.ErrDatabaseUnavailable):
		return problem{Status: http.StatusServiceUnavailable, Code: "database_unavailable", Detail: "the database is unavailable; retry later"},
			map[string]string{"Retry-After": "2"}
	}
	return problem{Status: http.StatusInternalServerError, Code: "internal_error",
		Detail: "internal error; quote the request_id when reporting it"}, nil
}

// clientGone reports whether the client closed the connection (or half-closed it) before the
// answer: net/http then cancels the request's context. A server-side timeout is not this.
func clientGone(c *gin.Context) bool { return errors.Is(c.Request.Context().Err(), context.Canceled) }

// writeProblem answers with the problem for err and logs server-side failures with their cause.
func writeProblem(c *gin.Context, log *slog.Logger, err error) {
	if clientGone(c) {
		// Whatever failed, it failed because the client went away: answered (to nobody) as 499
		// and logged once, at INFO, by the access log; never as a server fault.
		err = context.Canceled
	}
	p, header := problemFor(err)
	p.Type = problemTypeBase + p.Code
	p.Title = http.StatusText(p.Status)
	if p.Status == statusClientClosedRequest {
		p.Title = "Client Closed Request"
	}
	p.RequestID = requestID(c)
	p.Instance = c.Request.URL.Path
	if p.Status >= 500 {
		// Error texts here never carry personal data: the driver's duplicate-key message (the
		// one MySQL error that quotes a value) is replaced by mysqldb.Translate.
		log.ErrorContext(c.Request.Context(), "request failed", "request_id", p.RequestID, "error", err.Error())
	}
	for k, v := range header {
		c.Header(k, v)
	}
	c.Header("Content-Type", "application/problem+json")
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(p.Status, p)
}
