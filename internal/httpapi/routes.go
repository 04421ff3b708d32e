package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/usersvc/usersvc/internal/users"
)

// addRoutes is the only place routes are registered. Every route also answers with a trailing
// slash (see trimTrailingSlash).
func addRoutes(r *gin.Engine, opts Options, svc *users.Service) {
	log := opts.Logger
	pages := pageRules{def: opts.DefaultPageSize, max: opts.MaxPageSize}

	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })

	// Health endpoints above are exempt from rate limiting; everything under /api is limited.
	v1 := r.Group("/api/v1")
	if opts.RateLimit.Limiter != nil {
		v1.Use(rateLimit(opts.RateLimit, log))
	}
	// Writes honour Idempotency-Key (create also the description's idempotency_key field).
	idem := func(bodyKey bool) gin.HandlerFunc {
		if opts.Idempotency == nil {
			return func(c *gin.Context) { c.Next() }
		}
		return idempotent(opts.Idempotency, log, bodyKey)
	}
	v1.POST("/users", idem(true), handleUserCreate(svc, log))
	v1.GET("/users", handleUserList(svc, log, pages))
	v1.GET("/users/search", handleUserSearch(svc, log, pages))
	v1.GET("/users/:id", handleUserGet(svc, log))
	v1.PUT("/users/:id", idem(false), handleUserUpdate(svc, log))
	v1.PATCH("/users/:id", idem(false), handleUserUpdate(svc, log))
	v1.DELETE("/users/:id", idem(false), handleUserDelete(svc, log))
	v1.POST("/users/:id/restore", idem(false), handleUserRestore(svc, log))
	v1.GET("/users/:id/audit", handleUserAudit(svc, log, pages))
}
