// Package app wires the service together: configuration, MySQL, the HTTP server, and the
// command-line subcommands of the usersvc binary.
package app

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/config"
	"github.com/usersvc/usersvc/internal/httpapi"
	"github.com/usersvc/usersvc/internal/idempotency"
	"github.com/usersvc/usersvc/internal/logx"
	"github.com/usersvc/usersvc/internal/metrics"
	"github.com/usersvc/usersvc/internal/migrate"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/redisx"
	"github.com/usersvc/usersvc/internal/search"
	"github.com/usersvc/usersvc/internal/sqlcgen"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
	"github.com/usersvc/usersvc/schema"
)

// Version and Revision are set at build time with -ldflags "-X
// github.com/usersvc/usersvc/internal/app.Version=... -X ...Revision=<commit>" (make build does).
// Without Revision, the commit comes from the Go build info, which builds with -buildvcs=false
// (as GOFLAGS sets on some machines) do not carry.
var (
	Version  = "dev"
	Revision = ""
)

const usage = `usersvc: user-management REST service

Usage:
  usersvc [serve]                      serve the API (the default command)
  usersvc migrate [--dry-run] [--allow-destructive]
                                       bring the database to schema/*.sql (embedded) with Atlas
  usersvc apikey create --name NAME --scopes a,b
                                       create an API key; prints the key alone on stdout
  usersvc apikey list                  list keys (never their secrets)
  usersvc apikey revoke NAME-or-ID     revoke a key
  usersvc dev-init [--env-file .env.local]
                                       local development: generate secrets and a local key into the
                                       env file (git-ignored) unless present; used by make run
  usersvc keys rotate [--batch 500]    re-encrypt every vault entry under the active key (resumable)
  usersvc reindex                      rebuild the search index from the users table in one
                                       transaction (once after upgrading: drops old postings)
  usersvc purge --deleted-before 30d [--batch 100]
                                       erase users soft-deleted longer ago than that (retention)
  usersvc backup --out FILE[.gz] [--vault-out FILE]
                                       consistent dump (--single-transaction) with mariadb-dump/mysqldump
  usersvc restore --in FILE[.gz] [--vault]
                                       load a dump into the (new, empty) database DATABASE_URL names
  usersvc healthcheck [--url URL]      exit 0 when /healthz answers 200 (Docker HEALTHCHECK)
  usersvc version                      print the version
  usersvc help | --help                this text

Configuration comes from the environment:
`

// Run is the whole program; main only calls it. ctx is cancelled on SIGINT/SIGTERM.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args[1:]
	if len(rest) > 0 && (!strings.HasPrefix(rest[0], "-") || rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help") {
		cmd, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "apikey":
		return runAPIKey(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return runKeys(ctx, rest, getenv, stdout, stderr)
	case "reindex":
		return runReindex(ctx, rest, getenv, stdout, stderr)
	case "purge":
		return runPurge(ctx, rest, getenv, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, rest, getenv, stderr)
	case "backup":
		return runBackup(ctx, rest, getenv, stdout, stderr)
	case "restore":
		return runRestore(ctx, rest, getenv, stdout, stderr)
	case "dev-init":
		return runDevInit(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		printUsage(stdout)
		return nil
	default:
		printUsage(stderr)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	for _, v := range config.Variables {
		fmt.Fprintf(w, "  %-26s %s (default: %s)\n", v.Name, v.Description, v.Default)
	}
}

func versionString() string { return "usersvc " + Version + " (" + revision() + ")" }

func revision() string {
	if Revision != "" {
		return Revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("usersvc "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	dry := fs.Bool("dry-run", false, "print the planned SQL and change nothing")
	destructive := fs.Bool("allow-destructive", false, "allow dropping tables, columns or indexes of tables that hold rows")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	opts := migrate.Options{DryRun: *dry, AllowDestructive: *destructive, Out: stdout}
	fmt.Fprintf(stderr, "migrating %s\n", mysqldb.Redacted(cfg.DatabaseURL))
	if _, err := migrate.Run(ctx, cfg.DB, schema.Files, opts); err != nil {
		return err
	}
	if !*dry {
		if err := initLiveCount(ctx, cfg, stdout); err != nil {
			return err
		}
		if err := initSearchIndex(ctx, cfg, stdout); err != nil {
			return err
		}
	}
	if cfg.VaultDB != nil {
		fmt.Fprintf(stderr, "migrating the vault %s\n", mysqldb.Redacted(cfg.VaultDatabaseURL))
		if _, err := migrate.Run(ctx, cfg.VaultDB, schema.VaultFiles, opts); err != nil {
			return fmt.Errorf("vault: %w", err)
		}
	}
	return nil
}

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
	db, err := mysqldb.Open(ctx, cfg.DB, mysqldb.PoolConfig{
		MaxOpen: cfg.DBMaxOpenConns, MaxIdle: cfg.DBMaxIdleConns,
		MaxLifetime: cfg.DBConnMaxLifetime, MaxIdleTime: cfg.DBConnMaxIdleTime,
	})
	if err != nil {
		return err
	}
	defer db.Close()

	var readDB *sql.DB
	if cfg.ReadDB != nil {
		if readDB, err = mysqldb.Open(ctx, cfg.ReadDB, mysqldb.PoolConfig{
			MaxOpen: cfg.DBMaxOpenConns, MaxIdle: cfg.DBMaxIdleConns,
			MaxLifetime: cfg.DBConnMaxLifetime, MaxIdleTime: cfg.DBConnMaxIdleTime,
		}); err != nil {
			return fmt.Errorf("read replica: %w", err)
		}
		defer readDB.Close()
	}

	redisx.SetLogger(log)
	v, vdb, err := openVault(ctx, cfg)
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
	if err := redisx.Ping(ctx, rdb); err != nil {
		// Not fatal: requests without an Idempotency-Key keep working, and Redis may come back.
		log.Warn("redis is not answering; idempotency keys get 503 and rate limiting follows RATE_LIMIT_ON_REDIS_ERROR until it does", "error", err.Error())
	}

	idem := newIdempotencyStore(cfg, rdb)
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
		Logger: log, Tokens: logx.NewTokenizer(cfg.LogHashSecret),
		DefaultPageSize: cfg.DefaultPageSize, MaxPageSize: cfg.MaxPageSize,
		AllowedOrigins: cfg.AllowedOrigins, RequestTimeout: cfg.RequestTimeout,
		TrustedProxies: cfg.TrustedProxies, CursorKey: cfg.Keys.DerivedKey("list cursors"),
		RateLimit: httpapi.RateLimit{
			Limiter: redis_rate.NewLimiter(rdb), KeyPrefix: cfg.RedisKeyPrefix,
			PerMinute: cfg.RateLimitPerMinute, WritesPerMinute: cfg.RateLimitWritesPerMinute,
			DenyOnRedisError: cfg.RateLimitOnRedisError == "deny",
		},
		Idempotency: idem,
	}, users.NewService(db, v, nil).WithReadReplica(readDB).WithErasureOf(forgetStored(idem)))
	go every(ctx, 10*time.Minute, log, "purge of expired idempotency keys", func(ctx context.Context) error {
		return purgeIdempotencyKeys(ctx, db, log)
	})
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

// initLiveCount fills the maintained live-user counts (user_counts, user_time_counts) when one is
// empty (the table is new, or the database was restored from a dump without it).
func initLiveCount(ctx context.Context, cfg config.Config, out io.Writer) error {
	db, err := mysqldb.Open(ctx, cfg.DB, mysqldb.PoolConfig{MaxOpen: 2, MaxIdle: 1})
	if err != nil {
		return err
	}
	defer db.Close()
	slots, err := sqlcgen.New(db).CountUserCountSlots(ctx)
	if err != nil {
		return err
	}
	days, err := sqlcgen.New(db).CountUserTimeCountRows(ctx)
	if err != nil {
		return err
	}
	live, err := sqlcgen.New(db).CountLiveUsersMaintained(ctx)
	if err != nil {
		return err
	}
	// Both counts are filled together: when either is missing (a new table, or a dump without it).
	if slots > 0 && (days > 0 || live == 0) {
		return nil
	}
	n, err := users.RecountLiveUsers(ctx, db)
	if err == nil {
		fmt.Fprintf(out, "-- counted %d live users into user_counts\n", n)
	}
	return err
}

// initSearchIndex builds the search index when users exist but the index is empty (the tables are
// new, or the database was restored without them).
func initSearchIndex(ctx context.Context, cfg config.Config, out io.Writer) error {
	db, err := mysqldb.Open(ctx, cfg.DB, mysqldb.PoolConfig{MaxOpen: 2, MaxIdle: 1})
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = search.Reindex(ctx, db, out)
	return err
}

// openVault returns the vault, and its own database pool when VAULT_DATABASE_URL is set (nil
// when the vault shares the main database).
func openVault(ctx context.Context, cfg config.Config) (*vault.Vault, *sql.DB, error) {
	if cfg.VaultDB == nil {
		return vault.New(cfg.Keys, nil), nil, nil
	}
	vdb, err := mysqldb.Open(ctx, cfg.VaultDB, mysqldb.PoolConfig{
		MaxOpen: cfg.DBMaxOpenConns, MaxIdle: cfg.DBMaxIdleConns, MaxLifetime: cfg.DBConnMaxLifetime, MaxIdleTime: cfg.DBConnMaxIdleTime,
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

// runHealthcheck probes the local /healthz, for images without a shell or curl.
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("healthcheck", stderr)
	port := getenv("PORT")
	if port == "" {
		port = "8000"
	}
	scheme := "http"
	if getenv("TLS_CERT_FILE") != "" {
		scheme = "https"
	}
	url := fs.String("url", scheme+"://127.0.0.1:"+port+"/healthz", "URL to probe")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	// The certificate names the public host, not 127.0.0.1: liveness only needs an answer.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // local liveness probe
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", *url, resp.StatusCode)
	}
	return nil
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

// loadConfig reads the configuration; the error names every bad variable.
func loadConfig(getenv func(string) string) (config.Config, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

// openMain loads the configuration and opens a small pool on the main database, for the
// command-line tools.
func openMain(ctx context.Context, getenv func(string) string, conns int) (config.Config, *sql.DB, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return cfg, nil, err
	}
	db, err := mysqldb.Open(ctx, cfg.DB, mysqldb.PoolConfig{MaxOpen: conns, MaxIdle: conns})
	return cfg, db, err
}
