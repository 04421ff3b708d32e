package httpapi

import (
	"io/fs"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/httpapi/apidocs"
	"github.com/usersvc/usersvc/internal/users"
)

// RouteScope is one API route and the scope it requires.
type RouteScope struct{ Method, Path, Scope string }

type route struct {
	RouteScope
	// idem: the route is a write that honours Idempotency-Key; bodyKey: also the body field.
	idem, bodyKey bool
	handler       gin.HandlerFunc
}

// routeTable lists every /api route with its scope. It is the single source for registration,
// for Routes (which the tests check against docs/api.md), and for authorization.
func routeTable(opts Options, svc *users.Service) []route {
	log := opts.Logger
	pages := pageRules{def: opts.DefaultPageSize, max: opts.MaxPageSize}
	r := func(method, path, scope string, h gin.HandlerFunc) route {
		return route{RouteScope: RouteScope{method, path, scope}, handler: h}
	}
	write := func(rt route, bodyKey bool) route { rt.idem, rt.bodyKey = true, bodyKey; return rt }
	return []route{
		write(r(http.MethodPost, "/api/v1/users", auth.ScopeUsersWrite, handleUserCreate(svc, log)), true),
		r(http.MethodGet, "/api/v1/users", auth.ScopeUsersRead, handleUserList(svc, log, pages, opts.cursors)),
		r(http.MethodGet, "/api/v1/users/search", auth.ScopeUsersRead, handleUserSearch(svc, log, pages)),
		r(http.MethodPost, ImportPath, auth.ScopeUsersImport, handleUserImport(svc, log)),
		r(http.MethodPost, "/api/v1/users/lookup", auth.ScopeUsersPII, handleUserLookup(svc, log)),
		r(http.MethodGet, "/api/v1/users/:id", auth.ScopeUsersRead, handleUserGet(svc, log)),
		write(r(http.MethodPut, "/api/v1/users/:id", auth.ScopeUsersWrite, handleUserUpdate(svc, log)), false),
		write(r(http.MethodPatch, "/api/v1/users/:id", auth.ScopeUsersWrite, handleUserUpdate(svc, log)), false),
		write(r(http.MethodDelete, "/api/v1/users/:id", auth.ScopeUsersDelete, handleUserDelete(svc, log)), false),
		write(r(http.MethodPost, "/api/v1/users/:id/restore", auth.ScopeUsersDelete, handleUserRestore(svc, log)), false),
		r(http.MethodGet, "/api/v1/users/:id/audit", auth.ScopeAuditRead, handleUserAudit(svc, log, pages)),
		r(http.MethodGet, "/api/v1/users/:id/export", auth.ScopeUsersPII, handleUserExport(svc, log)),
		r(http.MethodPost, "/api/v1/users/:id/erase", auth.ScopeUsersErase, handleUserErase(svc, log)),
	}
}

// Routes returns every /api route with the scope it needs.
func Routes() []RouteScope {
	var out []RouteScope
	for _, rt := range routeTable(Options{}, nil) {
		out = append(out, rt.RouteScope)
	}
	return out
}

// addRoutes is the only place routes are registered. Every route also answers with a trailing
// slash (see trimTrailingSlash).
func addRoutes(r *gin.Engine, opts Options, svc *users.Service) {
	log := opts.Logger
	// Health, readiness and metrics are public and unlimited: they carry no personal data.
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", handleReady(opts))
	if !opts.MetricsElsewhere {
		r.GET("/metrics", gin.WrapH(opts.Metrics.Handler()))
	}

	// API documentation: the OpenAPI document and Swagger UI, embedded (no CDN).
	specJSON, err := apidocs.JSON()
	if err != nil {
		panic(err) // a broken embedded document is a build defect; tests catch it first
	}
	r.GET("/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", specJSON) })
	r.GET("/openapi.yaml", func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", apidocs.YAML()) })
	docs := http.FileServer(http.FS(apidocs.UI()))
	index, err := fs.ReadFile(apidocs.UI(), "index.html")
	if err != nil {
		panic(err)
	}
	r.GET("/docs", func(c *gin.Context) { c.Data(http.StatusOK, "text/html; charset=utf-8", index) })
	r.GET("/docs/*file", gin.WrapH(http.StripPrefix("/docs", docs)))

	// Everything under /api: rate limit (per client IP, before authentication, so that guessing
	// keys is limited too), then authentication, then per-route scope and idempotency, then the
	// database gate right before the handler: a request refused earlier, or a repeated
	// Idempotency-Key waiting for its first request, never holds a database slot.
	api := r.Group("")
	if opts.limit != nil {
		api.Use(opts.limit)
	}
	api.Use(authenticate(opts.Auth, log))
	var gate gin.HandlerFunc // one semaphore shared by every route
	if opts.DBSlots > 0 {
		gate = dbGate(opts.DBSlots, opts.AcquireTimeout, opts.Metrics, log)
	}
	for _, rt := range routeTable(opts, svc) {
		chain := []gin.HandlerFunc{require(rt.Scope, log)}
		if rt.idem && opts.Idempotency != nil {
			chain = append(chain, idempotent(opts.Idempotency, svc.Erased, opts.Metrics, log, rt.bodyKey))
		}
		if gate != nil {
			chain = append(chain, gate)
		}
		api.Handle(rt.Method, rt.Path, append(chain, rt.handler)...)
	}
}
