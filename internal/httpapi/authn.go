package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/usersvc/usersvc/internal/auth"
)

const principalCtxKey = "principal"

// authenticate requires valid bearer credentials: 401 with WWW-Authenticate otherwise (RFC 6750).
func authenticate(a *auth.Authenticator, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := a.Authenticate(c.Request.Context(), c.GetHeader("Authorization"))
		switch {
		case errors.Is(err, auth.ErrNoCredentials):
			writeProblem(c, log, &httpError{status: http.StatusUnauthorized, code: "unauthenticated",
				detail: "send Authorization: Bearer <api key>", header: map[string]string{"WWW-Authenticate": `Bearer realm="usersvc"`}})
			return
		case errors.Is(err, auth.ErrInvalid):
			writeProblem(c, log, &httpError{status: http.StatusUnauthorized, code: "invalid_credentials",
				detail: "the bearer credentials are invalid, expired or revoked",
				header: map[string]string{"WWW-Authenticate": `Bearer realm="usersvc", error="invalid_token"`}})
			return
		case err != nil && clientGone(c):
			writeProblem(c, log, context.Canceled) // the client left: not a backend failure
			return
		case err != nil:
			log.WarnContext(c.Request.Context(), "authentication backend failed", "request_id", requestID(c), "error", err.Error())
			writeProblem(c, log, &httpError{status: http.StatusServiceUnavailable, code: "authentication_unavailable",
				detail: "credentials cannot be checked right now; retry later", header: map[string]string{"Retry-After": "1"}})
			return
		}
		c.Set(principalCtxKey, p)
		c.Next()
	}
}

// require answers 403 unless the principal holds scope.
func require(scope string, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !principalOf(c).Has(scope) {
			writeProblem(c, log, &httpError{status: http.StatusForbidden, code: "insufficient_scope",
				detail: "this operation needs the scope " + scope,
				header: map[string]string{"WWW-Authenticate": `Bearer realm="usersvc", error="insufficient_scope", scope="` + scope + `"`}})
			return
		}
		c.Next()
	}
}

func principalOf(c *gin.Context) auth.Principal {
	v, _ := c.Get(principalCtxKey)
	p, _ := v.(auth.Principal)
	return p
}
