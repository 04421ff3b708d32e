package app

import (
	"context"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/config"
	"github.com/usersvc/usersvc/internal/events"
	"github.com/usersvc/usersvc/internal/httpapi"
	"github.com/usersvc/usersvc/internal/idempotency"
	"github.com/usersvc/usersvc/internal/logx"
	"github.com/usersvc/usersvc/internal/metrics"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/redisx"
	"github.com/usersvc/usersvc/internal/search"
	"github.com/usersvc/usersvc/internal/sqlcgen"
	"github.com/usersvc/usersvc/internal/tracing"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
)

// serve is `usersvc serve`: it wires configuration, MySQL, the vault, Redis and the HTTP server,
// runs the background jobs (idempotency purge, search compaction) and the admin listener, and
// drains on SIGTERM (readiness first, then in-flight requests, then the pools).
func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	logOut := stdout
	if cfg.LogFile != "" {
		// Rotated at 10 MB with 5 backups, as the product description has it.
		lj := &lumberjack.Logger{Filename: cfg.LogFile, MaxSize: 10, MaxBackups: 5, Compress: true}
		defer lj.Close()
		logOut = lj
	}
	log := logx.New(logOut, cfg.Debug)
	if cfg.Keys == nil {
		return errors.New("PII_ENCRYPTION_KEYS and BLIND_INDEX_KEY are required to serve (`make run` generates local ones into .env.local)")
	}
	if cfg.LogHashSecretGenerated {
		log.Warn("LOG_HASH_SECRET is not set: using a random key, so log tokens will not match across restarts or replicas")
	}
	tokens := logx.NewTokenizer(cfg.LogHashSecret)
	tr, err := tracing.FromEnv(ctx, getenv, versionString(), tokens.Token)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tr.Shutdown(flushCtx)
	}()
	pool := mysqldb.PoolConfig{
		MaxOpen: cfg.DBMaxOpenConns, MaxIdle: cfg.DBMaxIdleConns,
		MaxLifetime: cfg.DBConnMaxLifetime, MaxIdleTime: cfg.DBConnMaxIdleTime, OpenDB: tr.OpenDB,
	}
	db, err := mysqldb.Open(ctx, cfg.DB, pool)
	if err != nil {
		return err
	}
	defer db.Close()

	var readDB *sql.DB
	if cfg.ReadDB != nil {
		if readDB, err = mysqldb.Open(ctx, cfg.ReadDB, pool); err != nil {
			return fmt.Errorf("read replica: %w", err)
		}
		defer readDB.Close()
	}

	redisx.SetLogger(log)
	v, vdb, err := openVault(ctx, cfg, tr.OpenDB)
	if err != nil {
		return err
	}
	if vdb != nil {
		defer vdb.Close()
	}

	rdb, err := openRedis(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := tr.InstrumentRedis(rdb); err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	if err := redisx.Ping(ctx, rdb); err != nil {
		// Not fatal: requests without an Idempotency-Key keep working, and Redis may come back.
		log.Warn("redis is not answering; idempotency keys get 503 and rate limiting follows RATE_LIMIT_ON_REDIS_ERROR until it does", "error", err.Error())
	}

	idem := newIdempotencyStore(cfg, rdb)
	svc := users.NewService(db, v, nil).WithReadReplica(readDB).WithErasureOf(forgetStored(idem))
	authn := auth.NewAuthenticator(auth.NewKeyStore(db), jwtVerifier(cfg))
	var draining atomic.Bool
	m := metrics.New(Version, revision(), map[string]*sql.DB{"main": db, "vault": vdb, "read": readDB})
	handler := httpapi.NewServer(httpapi.Options{
		Auth: authn, Metrics: m, MetricsElsewhere: cfg.AdminAddr != "", Draining: &draining,
		DBSlots: cfg.DBMaxOpenConns, AcquireTimeout: cfg.DBAcquireTimeout,
		Ready: func(ctx context.Context) map[string]error {
			checks := map[string]error{"mysql": db.PingContext(ctx), "redis": rdb.Ping(ctx).Err()}
			if vdb != nil {
				checks["vault"] = vdb.PingContext(ctx)
			}
			if readDB != nil {
				checks["mysql_read"] = readDB.PingContext(ctx)
			}
			return checks
		},
		Logger: log, Tokens: tokens, Tracing: tr.Middleware(),
		DefaultPageSize: cfg.DefaultPageSize, MaxPageSize: cfg.MaxPageSize,
		AllowedOrigins: cfg.AllowedOrigins, RequestTimeout: cfg.RequestTimeout,
		TrustedProxies: cfg.TrustedProxies, CursorKey: cfg.Keys.DerivedKey("list cursors"),
		RateLimit: httpapi.RateLimit{
			Limiter: redis_rate.NewLimiter(rdb), KeyPrefix: cfg.RedisKeyPrefix,
			PerMinute: cfg.RateLimitPerMinute, WritesPerMinute: cfg.RateLimitWritesPerMinute, MaxLease: cfg.RateLimitLeaseMax,
			DenyOnRedisError: cfg.RateLimitOnRedisError == "deny",
		},
		Idempotency: idem,
	}, svc)
	// Rows written before users.aadhaar_last4 and pan_last5 existed get them from the vault, once
	// (every replica tries; the work is shared and idempotent).
	go func() {
		if n, err := svc.BackfillMasks(ctx, 500); err != nil && ctx.Err() == nil {
			log.Warn("backfill of masked Aadhaar and PAN failed; the next start resumes it", "filled", n, "error", err.Error())
		} else if n > 0 {
			log.Info("backfilled masked Aadhaar and PAN", "rows", n)
		}
	}()
	go every(ctx, 10*time.Minute, log, "purge of expired idempotency keys", func(ctx context.Context) error {
		return purgeIdempotencyKeys(ctx, db, log)
	})
	// Publish change events (internal/events); every replica runs a relay, the lease holder publishes.
	go events.NewRelay(db, rdb, events.Options{
		Stream: cfg.EventsStream, MaxLen: int64(cfg.EventsMaxLen), Poll: cfg.EventsPollInterval, Log: log,
		Published: m.EventsPublished, Backlog: m.EventsBacklog, Lag: m.EventsLag,
	}).Run(ctx)
	// Move queued users into the search index (see internal/search); replicas take turns.
	go every(ctx, cfg.SearchCompactInterval, log, "search index compaction", func(ctx context.Context) error {
		_, err := search.Compact(ctx, db)
		return err
	})

	srv := &http.Server{
		Addr:              net.JoinHostPort("", strconv.Itoa(cfg.Port)),
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.PprofAddr != "" {
		go serveDebug(cfg.PprofAddr, nil, log)
	}
	if cfg.AdminAddr != "" {
		go serveDebug(cfg.AdminAddr, m.Handler(), log)
	}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return err
	}
	log.Info("serving", "addr", ln.Addr().String(), "tls", cfg.TLSCertFile != "", "version", versionString(), "database", mysqldb.Redacted(cfg.DatabaseURL))

	errc := make(chan error, 1)
	go func() {
		if cfg.TLSCertFile != "" {
			srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			errc <- srv.ServeTLS(ln, cfg.TLSCertFile, cfg.TLSKeyFile)
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Drain: readiness turns 503 first, so that load balancers stop sending new requests while
	// this replica still serves them; then stop accepting, let in-flight requests finish, and
	// close the pools.
	draining.Store(true)
	log.Info("draining", "delay", cfg.ShutdownDelay.String(), "timeout", cfg.ShutdownTimeout.String())
	time.Sleep(cfg.ShutdownDelay)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

func openRedis(cfg config.Config) (redis.UniversalClient, error) {
	return redisx.Open(redisx.Options{
		URL: cfg.RedisURL, ClusterAddrs: cfg.RedisClusterAddrs,
		SentinelAddrs: cfg.RedisSentinelAddrs, SentinelMaster: cfg.RedisSentinelMaster, Timeout: cfg.RedisTimeout,
	})
}

func newIdempotencyStore(cfg config.Config, rdb redis.UniversalClient) *idempotency.Store {
	return idempotency.NewStore(rdb, cfg.RedisKeyPrefix, cfg.IdempotencyTTL, cfg.IdempotencyInFlightTTL, cfg.IdempotencyWait)
}

// forgetStored is the erasure hook (users.Service.WithErasureOf) that deletes the stored
// Idempotency-Key responses about the erased user from Redis.
func forgetStored(idem *idempotency.Store) func(context.Context, string) error {
	return func(ctx context.Context, userID string) error {
		_, err := idem.ForgetUser(ctx, userID)
		return err
	}
}

// openVault returns the vault, and its own database pool when VAULT_DATABASE_URL is set (nil
// when the vault shares the main database).
func openVault(ctx context.Context, cfg config.Config, open func(driver.Connector) *sql.DB) (*vault.Vault, *sql.DB, error) {
	if cfg.VaultDB == nil {
		return vault.New(cfg.Keys, nil), nil, nil
	}
	vdb, err := mysqldb.Open(ctx, cfg.VaultDB, mysqldb.PoolConfig{
		MaxOpen: cfg.DBMaxOpenConns, MaxIdle: cfg.DBMaxIdleConns, MaxLifetime: cfg.DBConnMaxLifetime, MaxIdleTime: cfg.DBConnMaxIdleTime,
		OpenDB: open,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("vault database: %w", err)
	}
	return vault.New(cfg.Keys, vdb), vdb, nil
}

func jwtVerifier(cfg config.Config) auth.Verifier {
	v := auth.NewJWTVerifier(auth.JWTConfig{
		HS256Secret: cfg.JWTHS256Secret, JWKSURL: cfg.JWTJWKSURL,
		Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, ScopesClaim: cfg.JWTScopesClaim,
	})
	if v == nil {
		return nil // a typed nil would not be skipped by NewAuthenticator
	}
	return v
}

// every runs job every interval until ctx ends, logging its failures (what names it).
func every(ctx context.Context, interval time.Duration, log *slog.Logger, what string, job func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := job(ctx); err != nil && ctx.Err() == nil {
			log.Warn(what+" failed", "error", err.Error())
		}
	}
}

// purgeIdempotencyKeys deletes expired durable idempotency rows, a bounded batch at a time.
func purgeIdempotencyKeys(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	n, err := sqlcgen.New(db).PurgeExpiredIdempotencyKeys(ctx, time.Now().UTC())
	if err == nil && n > 0 {
		log.Info("purged expired idempotency keys", "rows", n)
	}
	return err
}

// serveDebug serves the Go profiler, and metrics when given, on a listener of their own, apart
// from the API (PPROF_ADDR, ADMIN_ADDR).
func serveDebug(addr string, metrics http.Handler, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	if metrics != nil {
		mux.Handle("/metrics", metrics)
	}
	log.Info("admin listener", "addr", addr, "metrics", metrics != nil)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Warn("admin listener stopped", "addr", addr, "error", err.Error())
	}
}
