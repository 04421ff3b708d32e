// Package httpapi is the HTTP face of the service: NewServer builds the handler, routes.go lists
// every route, handlers turn requests into validated domain values, call one use case and map
// its result or error (problem.go holds the one error table) to a response.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/idempotency"
	"github.com/usersvc/usersvc/internal/logx"
	"github.com/usersvc/usersvc/internal/metrics"
	"github.com/usersvc/usersvc/internal/users"
)

// Options configures the HTTP layer.
type Options struct {
	Logger          *slog.Logger
	Tokens          logx.Tokenizer
	DefaultPageSize int
	MaxPageSize     int
	AllowedOrigins  []string
	// Tracing, when set, starts each request's server span (internal/tracing); nil when tracing
	// is off.
	Tracing gin.HandlerFunc
	// RequestTimeout bounds the work of one request, database included.
	RequestTimeout time.Duration
	// TrustedProxies are CIDRs of load balancers whose X-Forwarded-For is read (right to left,
	// skipping trusted hops). Empty: the client is the TCP peer.
	TrustedProxies []string
	// RateLimit, when its Limiter is set, limits /api requests per client.
	RateLimit RateLimit
	// Idempotency, when set, honours Idempotency-Key on every write route.
	Idempotency *idempotency.Store
	// Auth authenticates every /api request (required).
	Auth *auth.Authenticator
	// Metrics receives the request series (a private registry when nil).
	Metrics *metrics.Metrics
	// MetricsElsewhere: /metrics is served by an admin listener (ADMIN_ADDR), not by this handler.
	MetricsElsewhere bool
	// Ready checks the dependencies for /readyz: a name -> error map (nil errors are healthy).
	Ready func(ctx context.Context) map[string]error
	// Draining, once true, makes /readyz answer 503 so that load balancers stop sending traffic.
	Draining *atomic.Bool
	// DBSlots bounds the /api requests working at once (the pool size); a request that cannot
	// get a slot within AcquireTimeout answers 503 at once instead of queueing without bound.
	// 0 disables the gate.
	DBSlots        int
	AcquireTimeout time.Duration
	// CursorKey signs list cursors (see cursors); every replica must have the same one. Empty:
	// a random key, so cursors only work on this process.
	CursorKey []byte

	cursors cursors
	// limit is the one rate-limit middleware (nil without a Limiter), shared by the /api routes
	// and by unknown paths and methods under /api.
	limit gin.HandlerFunc
}

func init() { gin.SetMode(gin.ReleaseMode) }

// NewServer returns the service's HTTP handler.
func NewServer(opts Options, svc *users.Service) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if opts.Auth == nil {
		panic("httpapi: Options.Auth is required")
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New("dev", "", nil)
	}
	if opts.Draining == nil {
		opts.Draining = &atomic.Bool{}
	}
	opts.cursors = newCursors(opts.CursorKey)
	if opts.RateLimit.Limiter != nil {
		opts.limit = rateLimit(opts.RateLimit, opts.Metrics, opts.Logger)
	}
	r := gin.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = false
	// Only X-Forwarded-For, and only from trusted proxies (validated by config.Load).
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	if err := r.SetTrustedProxies(opts.TrustedProxies); err != nil {
		panic(fmt.Sprintf("httpapi: trusted proxies: %v", err))
	}
	r.Use(instrument(opts.Metrics), securityHeaders(), withRequestID())
	if opts.Tracing != nil {
		r.Use(opts.Tracing) // before the access log, whose line then carries the trace id
	}
	r.Use(
		accessLog(opts.Logger, opts.Tokens),
		recovery(opts.Logger),
		cors(opts.AllowedOrigins),
		withTimeout(opts.RequestTimeout),
	)
	// Unknown paths and methods under /api count against the rate limit like any other request,
	// so that probing them is limited too.
	limitAPI := func(c *gin.Context) {
		if p := c.Request.URL.Path; opts.limit != nil && (p == "/api" || strings.HasPrefix(p, "/api/")) {
			opts.limit(c)
			return
		}
		c.Next()
	}
	r.NoRoute(limitAPI, func(c *gin.Context) {
		writeProblem(c, opts.Logger, newHTTPError(http.StatusNotFound, "no_route", "no route for this path"))
	})
	r.NoMethod(limitAPI, func(c *gin.Context) {
		writeProblem(c, opts.Logger, newHTTPError(http.StatusMethodNotAllowed, "method_not_allowed",
			"method %s is not allowed on this route", methodLabel(c.Request.Method)))
	})
	addRoutes(r, opts, svc)
	return trimTrailingSlash(r)
}

// trimTrailingSlash serves /api/v1/users/ and /api/v1/users alike, without a redirect.
func trimTrailingSlash(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
			r.URL.Path = strings.TrimRight(p, "/")
			if r.URL.Path == "" {
				r.URL.Path = "/"
			}
			r.URL.RawPath = ""
		}
		h.ServeHTTP(w, r)
	})
}

const (
	requestIDKey       = "request_id"
	clientRequestIDKey = "client_request_id"
)

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:\-]{1,128}$`)

// withRequestID gives every request an id the server made (a UUID): it is the request_id of
// logs, problem documents and audit rows, and answered in X-Request-ID. A client's own
// X-Request-ID is never taken for it, since two clients could then share one id in the audit
// trail; a well-formed one is kept only as client_request_id in the access log, which ties the
// two together.
func withRequestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := uuid.NewString()
		c.Set(requestIDKey, id)
		if client := c.GetHeader("X-Request-ID"); validRequestID.MatchString(client) {
			c.Set(clientRequestIDKey, client)
		}
		c.Header("X-Request-ID", id)
		c.Next()
	}
}

func requestID(c *gin.Context) string { return c.GetString(requestIDKey) }

// accessLog writes one JSON line per request. The client address is logged as a keyed token.
func accessLog(log *slog.Logger, tokens logx.Tokenizer) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		attrs := [8]slog.Attr{
			slog.String("request_id", requestID(c)),
			slog.String("method", methodLabel(c.Request.Method)),
			slog.String("route", route),
			slog.Int("status", c.Writer.Status()),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.Int("bytes", max(c.Writer.Size(), 0)),
			slog.String("client", tokens.Token(c.ClientIP())),
		}
		n := 7
		if id := c.GetString(clientRequestIDKey); id != "" {
			attrs[n] = slog.String("client_request_id", id)
			n++
		}
		log.LogAttrs(c.Request.Context(), slog.LevelInfo, "request", attrs[:n]...)
	}
}

func recovery(log *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, v any) {
		if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
			panic(v)
		}
		log.Error("panic", "request_id", requestID(c), "type", fmt.Sprintf("%T", v), "stack", string(debug.Stack()))
		writeProblem(c, log, errors.New("panic in handler"))
	})
}

// dbGate admits at most slots requests at once and turns the rest away after timeout.
func dbGate(slots int, timeout time.Duration, m *metrics.Metrics, log *slog.Logger) gin.HandlerFunc {
	sem := make(chan struct{}, slots)
	return func(c *gin.Context) {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case sem <- struct{}{}:
		case <-t.C:
			m.DBGateRejections.Inc()
			writeProblem(c, log, &httpError{status: http.StatusServiceUnavailable, code: "overloaded",
				detail: "the service is at capacity (all database connections are busy); retry shortly",
				header: map[string]string{"Retry-After": "1"}})
			return
		case <-c.Request.Context().Done():
			writeProblem(c, log, c.Request.Context().Err())
			return
		}
		defer func() { <-sem }()
		c.Next()
	}
}

// methodLabel maps a request method to a closed set: any token is a valid method in HTTP, and a
// label or log field taken from the client would let anyone grow the metrics without bound.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// instrument counts and times requests by route pattern (never the raw path) and by method from
// a closed set (methodLabel): the label values of every series come from closed sets.
func instrument(m *metrics.Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		m.InFlight.Inc()
		defer m.InFlight.Dec()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		method := methodLabel(c.Request.Method)
		m.Requests.WithLabelValues(route, method, strconv.Itoa(c.Writer.Status())).Inc()
		m.Duration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	}
}

// securityHeaders: no MIME sniffing anywhere; no caching of anything under /api, since almost
// every answer there carries personal data (RFC 9111 no-store).
func securityHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if strings.HasPrefix(c.Request.URL.Path, "/api/") {
			h.Set("Cache-Control", "no-store")
		}
		c.Next()
	}
}

// cors answers allowed origins. Credentials (cookies) are never allowed: clients send bearer
// tokens explicitly, so "*" is safe to configure and is answered literally.
func cors(allowed []string) gin.HandlerFunc {
	allow := set(allowed...)
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if origin == "" {
			c.Next()
			return
		}
		c.Writer.Header().Add("Vary", "Origin")
		if !allow["*"] && !allow[origin] {
			c.Next()
			return
		}
		if allow["*"] {
			c.Header("Access-Control-Allow-Origin", "*")
		} else {
			c.Header("Access-Control-Allow-Origin", origin)
		}
		c.Header("Access-Control-Expose-Headers", "ETag, Location, X-Request-ID, Retry-After")
		if c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != "" {
			c.Header("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
			c.Header("Access-Control-Allow-Headers", "Content-Type, If-Match, Idempotency-Key, X-Request-ID, Authorization")
			c.Header("Access-Control-Max-Age", "600")
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		c.Next()
	}
}

func withTimeout(d time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		if d <= 0 || c.FullPath() == ImportPath { // an import streams for as long as its body lasts
			c.Next()
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), d)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}
