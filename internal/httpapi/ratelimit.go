package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-redis/redis_rate/v10"

	"github.com/usersvc/usersvc/internal/metrics"
	"github.com/usersvc/usersvc/internal/ratelimit"
)

// RateLimit configures the per-client GCRA limits (github.com/go-redis/redis_rate), spent in
// leases (internal/ratelimit).
type RateLimit struct {
	Limiter   *redis_rate.Limiter
	KeyPrefix string
	// MaxLease caps the tokens one Redis call buys for a client (see internal/ratelimit);
	// 0 or 1: one Redis call per request.
	MaxLease int
	// PerMinute applies to every /api request; the burst equals PerMinute.
	PerMinute int
	// WritesPerMinute, when > 0, also applies to POST, PUT, PATCH and DELETE.
	WritesPerMinute int
	// DenyOnRedisError rejects requests (503) when Redis cannot be asked; otherwise they pass.
	DenyOnRedisError bool
}

type policy struct {
	name  string
	key   string
	limit redis_rate.Limit
}

// rateLimit answers 429 past the limit, and adds RateLimit-Policy and RateLimit headers
// (draft-ietf-httpapi-ratelimit-headers) to every limited response.
func rateLimit(rl RateLimit, m *metrics.Metrics, log *slog.Logger) gin.HandlerFunc {
	leases := ratelimit.New(rl.Limiter, rl.MaxLease)
	return func(c *gin.Context) {
		ip := c.ClientIP()
		policies := []policy{{"default", rl.KeyPrefix + ":rl:{" + ip + "}", redis_rate.PerMinute(rl.PerMinute)}}
		switch c.Request.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			if rl.WritesPerMinute > 0 {
				policies = append(policies, policy{"writes", rl.KeyPrefix + ":rlw:{" + ip + "}", redis_rate.PerMinute(rl.WritesPerMinute)})
			}
		}
		var policyHdr, stateHdr string
		for i, p := range policies {
			res, err := leases.Take(c.Request.Context(), p.key, p.limit)
			if err != nil && clientGone(c) {
				// The client's own disconnect cancelled the call: that says nothing about Redis,
				// and a request nobody waits for must not pass unlimited.
				writeProblem(c, log, context.Canceled)
				return
			}
			if err != nil {
				decision := "allow"
				if rl.DenyOnRedisError {
					decision = "deny"
				}
				m.RedisErrors.WithLabelValues("ratelimit").Inc()
				m.RateLimitDecisions.WithLabelValues(decision).Inc()
				log.WarnContext(c.Request.Context(), "rate limiter unavailable", "request_id", requestID(c), "decision", decision, "error", err.Error())
				if rl.DenyOnRedisError {
					writeProblem(c, log, &httpError{status: http.StatusServiceUnavailable, code: "rate_limiter_unavailable",
						detail: "the rate limiter is unavailable and this service is configured to refuse requests then; retry later",
						header: map[string]string{"Retry-After": "1"}})
					return
				}
				c.Next()
				return
			}
			if i > 0 {
				policyHdr += ", "
				stateHdr += ", "
			}
			policyHdr += fmt.Sprintf("%q;q=%d;w=%d", p.name, p.limit.Burst, int(p.limit.Period/time.Second))
			stateHdr += fmt.Sprintf("%q;r=%d;t=%d", p.name, res.Remaining, ceilSeconds(res.ResetAfter))
			c.Header("RateLimit-Policy", policyHdr)
			c.Header("RateLimit", stateHdr)
			if !res.Allowed {
				m.RateLimitRejections.WithLabelValues(p.name).Inc()
				writeProblem(c, log, &httpError{status: http.StatusTooManyRequests, code: "rate_limited",
					detail: fmt.Sprintf("rate limit %q exceeded: %d requests per minute per client", p.name, p.limit.Rate),
					header: map[string]string{"Retry-After": strconv.Itoa(max(1, ceilSeconds(res.RetryAfter)))}})
				return
			}
		}
		c.Next()
	}
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}
