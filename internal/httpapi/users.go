package httpapi

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/govid"
	"github.com/usersvc/usersvc/internal/users"
)

// caller builds the audit identity of the request: the authenticated principal is the actor.
func caller(c *gin.Context) users.Caller {
	p := principalOf(c)
	return users.Caller{Actor: p.ID, RequestID: requestID(c), Idempotency: idempotencyOf(c), MayRevive: p.Has(auth.ScopeUsersDelete)}
}

// writeWriteError answers a failed write. A write refused because its Idempotency-Key was applied
// earlier (the Redis record was lost) is answered as the original success would have been, from
// the user's current state, marked Idempotent-Replayed.
func writeWriteError(c *gin.Context, svc *users.Service, log *slog.Logger, err error) {
	var applied *users.AppliedError
	if !errors.As(err, &applied) {
		writeProblem(c, log, err)
		return
	}
	if applied.Action == users.ActionErase {
		writeProblem(c, log, errKeyErased)
		return
	}
	if !applied.SamePayload {
		writeProblem(c, log, errKeyReused)
		return
	}
	c.Header("Idempotent-Replayed", "true")
	if applied.Action == users.ActionDelete {
		c.JSON(http.StatusOK, gin.H{"message": "User deleted successfully"})
		return
	}
	u, err := svc.Get(c.Request.Context(), caller(c), applied.UserID, false)
	if err != nil {
		writeProblem(c, log, err)
		return
	}
	status := http.StatusOK
	if applied.Action == users.ActionCreate {
		status = http.StatusCreated
		c.Header("Location", "/api/v1/users/"+u.ID)
	}
	c.Header("ETag", etag(u.Version))
	c.JSON(status, toUserResponse(u))
}

// userID returns the path id, or false when it cannot name a user (answered as 404 without
// asking the database).
func userID(c *gin.Context) (string, bool) {
	id := c.Param("id")
	u, err := uuid.Parse(id)
	if err != nil || u.String() != strings.ToLower(id) {
		return "", false
	}
	return u.String(), true
}

func etag(version string) string { return `"` + version + `"` }

func handleUserCreate(svc *users.Service, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		obj, err := readObject(c)
		if err != nil {
			writeProblem(c, log, err)
			return
		}
		f := newFields(obj, createPolicy)
		in := f.createFields()
		// idempotency_key (the description's body form of Idempotency-Key) is honoured by the
		// idempotent middleware; here it is only checked. null means none.
		if !f.isNull("idempotency_key") {
			if k := f.str("idempotency_key", nil); k != nil && !validIdempotencyKey(*k) {
				f.verr.Add("idempotency_key", "must be 1 to 255 visible ASCII characters")
			}
		}
		nu := users.ParseNewUser(in, svc.Now(), f.verr)
		if err := f.verr.Err(); err != nil {
			writeProblem(c, log, err)
			return
		}
		u, err := svc.Create(c.Request.Context(), caller(c), nu)
		if err != nil {
			writeWriteError(c, svc, log, err)
			return
		}
		c.Header("Location", "/api/v1/users/"+u.ID)
		c.Header("ETag", etag(u.Version))
		c.JSON(http.StatusCreated, toUserResponse(u))
	}
}

func handleUserGet(svc *users.Service, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := userID(c)
		if !ok {
			writeProblem(c, log, users.ErrNotFound)
			return
		}
		pii := principalOf(c).Has(auth.ScopeUsersPII)
		u, err := svc.Get(c.Request.Context(), caller(c), id, pii)
		if err != nil {
			writeProblem(c, log, err)
			return
		}
		c.Header("ETag", etag(u.Version))
		c.JSON(http.StatusOK, toUserResponseWith(u, pii))
	}
}

func handleUserUpdate(svc *users.Service, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, ok := userID(c)
		obj, err := readObject(c)
		if err != nil {
			writeProblem(c, log, err)
			return
		}
		f := newFields(obj, updatePolicy)
		empty := ""
		in := users.UpdateFields{
			Name: f.str("name", nil), Email: f.str("email", nil),
			PrimaryMobile: f.str("primary_mobile", nil), SecondaryMobile: f.str("secondary_mobile", &empty),
			CurrentAddress: f.str("current_address", nil), PermanentAddress: f.str("permanent_address", nil),
			IsActive: f.boolean("is_active"),
		}
		bodyVersion := f.str("version", nil)
		ch := users.ParseChanges(in, f.verr)
		if err := f.verr.Err(); err != nil {
			writeProblem(c, log, err)
			return
		}
		if !ok {
			writeProblem(c, log, users.ErrNotFound)
			return
		}
		pre, err := precondition(c, bodyVersion)
		if err != nil {
			writeProblem(c, log, err)
			return
		}
		u, err := svc.Update(c.Request.Context(), caller(c), id, pre, ch)
		if err != nil {
			writeWriteError(c, svc, log, err)
			return
		}
		c.Header("ETag", etag(u.Version))
		c.JSON(http.StatusOK, toUserResponse(u))
	}
}

// handleUserLookup finds a user by Aadhaar or PAN sent in the body (never in the URL, which
// proxies log). It needs users:pii and answers with the full values.
func handleUserLookup(svc *users.Service, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		obj, err := readObject(c)
		if err != nil {
			writeProblem(c, log, err)
			return
		}
		f := newFields(obj, lookupPolicy)
		aRaw, pRaw := f.str("aadhaar", nil), f.str("pan", nil)
		var aadhaar *govid.Aadhaar
		var pan *govid.PAN
		switch {
		case aRaw != nil && pRaw != nil:
			f.verr.Add("pan", "send either aadhaar or pan, not both")
		case aRaw != nil:
			if a, err := govid.ParseAadhaar(*aRaw); err != nil {
				f.verr.Add("aadhaar", err.Error())
			} else {
				aadhaar = &a
			}
		case pRaw != nil:
			if p, err := govid.ParsePAN(*pRaw); err != nil {
				f.verr.Add("pan", err.Error())
			} else {
				pan = &p
			}
		case !f.verr.Has("aadhaar") && !f.verr.Has("pan"):
			f.verr.Add("aadhaar", "send aadhaar or pan")
		}
		if err := f.verr.Err(); err != nil {
			writeProblem(c, log, err)
			return
		}
		u, err := svc.Lookup(c.Request.Context(), caller(c), aadhaar, pan)
		if err != nil {
			writeProblem(c, log, err)
			return
		}
		c.Header("ETag", etag(u.Version))
		c.JSON(http.StatusOK, toUserResponseWith(u, true))
	}
}

// handleUserErase removes a user's personal data for good (users:erase). The optional body
// {"reason": "..."} is kept with the tombstone.
func handleUserErase(svc *users.Service, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		reason := ""
		if hasBody(c.Request) {
			obj, err := readObject(c)
			if err != nil {
				writeProblem(c, log, err)
				return
			}
			f := newFields(obj, erasePolicy)
			if r := f.str("reason", nil); r != nil {
				if s, err := users.CleanReason(*r); err != nil {
					f.verr.Add("reason", err.Error())
				} else {
					reason = s
				}
			}
			if err := f.verr.Err(); err != nil {
				writeProblem(c, log, err)
				return
			}
		}
		id, ok := userID(c)
		if !ok {
			writeProblem(c, log, users.ErrNotFound)
			return
		}
		e, err := svc.Erase(c.Request.Context(), caller(c), id, reason)
		if err != nil {
			writeProblem(c, log, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"id": e.ID, "erased_at": timestamp(e.ErasedAt), "reason": optional(e.Reason),
			"message": "User erased: personal data removed for good"})
	}
}

func handleUserDelete(svc *users.Service, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, pre, ok := versionedTarget(c, log)
		if !ok {
			return
		}
		version, err := svc.Delete(c.Request.Context(), caller(c), id, pre)
		if err != nil {
			writeWriteError(c, svc, log, err)
			return
		}
		c.Header("ETag", etag(version))
		c.JSON(http.StatusOK, gin.H{"message": "User deleted successfully"})
	}
}

func handleUserRestore(svc *users.Service, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		id, pre, ok := versionedTarget(c, log)
		if !ok {
			return
		}
		u, err := svc.Restore(c.Request.Context(), caller(c), id, pre)
		if err != nil {
			writeWriteError(c, svc, log, err)
			return
		}
		c.Header("ETag", etag(u.Version))
		c.JSON(http.StatusOK, toUserResponse(u))
	}
}

// versionedTarget reads the id and the precondition of a DELETE or restore: If-Match, or an
// optional JSON body holding only "version". It answers the request itself when ok is false.
func versionedTarget(c *gin.Context, log *slog.Logger) (id string, pre users.Precondition, ok bool) {
	var bodyVersion *string
	if hasBody(c.Request) {
		obj, err := readObject(c)
		if err != nil {
			writeProblem(c, log, err)
			return "", pre, false
		}
		f := newFields(obj, versionOnlyPolicy)
		bodyVersion = f.str("version", nil)
		if err := f.verr.Err(); err != nil {
			writeProblem(c, log, err)
			return "", pre, false
		}
	}
	id, ok = userID(c)
	if !ok {
		writeProblem(c, log, users.ErrNotFound)
		return "", pre, false
	}
	pre, err := precondition(c, bodyVersion)
	if err != nil {
		writeProblem(c, log, err)
		return "", pre, false
	}
	return id, pre, true
}

// precondition reads If-Match (RFC 9110 s.13.1.1, strong comparison) and the body's version.
// When both are given, the body's version must be one of the header's tags.
func precondition(c *gin.Context, bodyVersion *string) (users.Precondition, error) {
	var tags []string
	if h := strings.TrimSpace(c.GetHeader("If-Match")); h != "" && h != "*" {
		for _, part := range strings.Split(h, ",") {
			t := strings.TrimSpace(part)
			if t == "" {
				continue
			}
			// A weak tag never matches under strong comparison; keep it so that it fails.
			if !strings.HasPrefix(t, "W/") {
				t = strings.Trim(t, `"`)
			}
			tags = append(tags, t)
		}
	}
	if bodyVersion != nil {
		if len(tags) == 0 {
			tags = []string{*bodyVersion}
		} else if !contains(tags, *bodyVersion) {
			return users.Precondition{}, users.ErrPreconditionFailed
		}
	}
	return users.Precondition{Versions: tags}, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
