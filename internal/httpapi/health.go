package httpapi

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/gin-gonic/gin"
)

// handleReady answers 200 when every dependency answers within a second, 503 naming the ones
// that do not, and 503 "draining" once shutdown has begun.
func handleReady(opts Options) gin.HandlerFunc {
	return func(c *gin.Context) {
		if opts.Draining.Load() {
			c.Header("Retry-After", "1")
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "draining"})
			return
		}
		checks := gin.H{}
		var failing []string
		if opts.Ready != nil {
			ctx, cancel := context.WithTimeout(c.Request.Context(), time.Second)
			defer cancel()
			for name, err := range opts.Ready(ctx) {
				if err != nil {
					checks[name] = "unavailable"
					failing = append(failing, name)
				} else {
					checks[name] = "ok"
				}
			}
		}
		sort.Strings(failing)
		if len(failing) > 0 {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "failing": failing, "checks": checks})
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ok", "checks": checks})
	}
}
