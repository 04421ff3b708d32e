// Package redisx opens the service's Redis client: a single node, a Redis Cluster or a
// Sentinel-managed primary, behind go-redis's UniversalClient, with short timeouts so that a
// slow or absent Redis fails fast instead of holding requests.
package redisx

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options selects the deployment. URL supplies credentials, TLS and (single node) the address.
type Options struct {
	URL            string
	ClusterAddrs   []string
	SentinelAddrs  []string
	SentinelMaster string
	Timeout        time.Duration
}

// Open returns a client; it does not require Redis to be up (requests that need it fail then).
func Open(o Options) (redis.UniversalClient, error) {
	base, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: not a redis:// URL")
	}
	u := &redis.UniversalOptions{
		Addrs:        []string{base.Addr},
		Username:     base.Username,
		Password:     base.Password,
		DB:           base.DB,
		TLSConfig:    base.TLSConfig,
		DialTimeout:  o.Timeout,
		ReadTimeout:  o.Timeout,
		WriteTimeout: o.Timeout,
		PoolTimeout:  o.Timeout,
		MaxRetries:   1,
		// Fail fast when Redis is down: one dial per command, not five with back-off.
		DialerRetries:      1,
		DialerRetryTimeout: 10 * time.Millisecond,
	}
	switch {
	case len(o.ClusterAddrs) > 0:
		u.Addrs = o.ClusterAddrs
		u.IsClusterMode = true
		u.DB = 0
	case len(o.SentinelAddrs) > 0:
		u.Addrs = o.SentinelAddrs
		u.MasterName = o.SentinelMaster
	}
	return redis.NewUniversalClient(u), nil
}

// SetLogger sends go-redis's own diagnostics (connection errors; no keys or values) to log.
func SetLogger(log *slog.Logger) { redis.SetLogger(slogPrintf{log}) }

type slogPrintf struct{ log *slog.Logger }

func (l slogPrintf) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

// Ping checks that Redis answers within the client's timeouts.
func Ping(ctx context.Context, c redis.UniversalClient) error { return c.Ping(ctx).Err() }
