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

	v1 := r.Group("/api/v1")
	v1.POST("/users", handleUserCreate(svc, log))
	v1.GET("/users", handleUserList(svc, log, pages))
	v1.GET("/users/search", handleUserSearch(svc, log, pages))
	v1.GET("/users/:id", handleUserGet(svc, log))
	v1.PUT("/users/:id", handleUserUpdate(svc, log))
	v1.PATCH("/users/:id", handleUserUpdate(svc, log))
	v1.DELETE("/users/:id", handleUserDelete(svc, log))
	v1.POST("/users/:id/restore", handleUserRestore(svc, log))
	v1.GET("/users/:id/audit", handleUserAudit(svc, log, pages))
}
