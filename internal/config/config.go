// Package config reads the service's configuration from the environment into one validated
// Config. Every problem names its variable; secrets are never printed.
package config

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/vault"
)

// Config is the whole configuration of the service.
type Config struct {
	// AppEnv is "development" (default) or "production". Production refuses generated secrets.
	AppEnv string
	// DatabaseURL is DATABASE_URL as given (it holds a password: print Redacted only).
	DatabaseURL string
	// DB is DATABASE_URL parsed for the driver.
	DB       *mysql.Config
	RedisURL string
	Port     int
	Debug    bool
	// LogHashSecret keys the HMAC tokens that stand in for personal data in logs.
	LogHashSecret []byte
	// LogHashSecretGenerated is true when LOG_HASH_SECRET was unset and a random one was made.
	LogHashSecretGenerated bool
	DefaultPageSize        int
	MaxPageSize            int
	AllowedOrigins         []string

	DBMaxOpenConns    int
	DBMaxIdleConns    int
	DBConnMaxLifetime time.Duration
	DBConnMaxIdleTime time.Duration
	DBAcquireTimeout  time.Duration

	// Redis deployment: single node (RedisURL), or cluster / sentinel when their addresses are set.
	RedisClusterAddrs   []string
	RedisSentinelAddrs  []string
	RedisSentinelMaster string
	RedisKeyPrefix      string
	RedisTimeout        time.Duration

	RateLimitPerMinute       int
	RateLimitWritesPerMinute int
	RateLimitLeaseMax        int
	// RateLimitOnRedisError is "allow" or "deny".
	RateLimitOnRedisError string
	// TrustedProxies are CIDRs of load balancers whose X-Forwarded-For is believed.
	TrustedProxies []string

	IdempotencyTTL         time.Duration
	IdempotencyInFlightTTL time.Duration
	IdempotencyWait        time.Duration

	// ReadDB, when set (DATABASE_READ_URL), serves the reads that tolerate replication lag.
	ReadDB          *mysql.Config
	DatabaseReadURL string

	// Keys is the vault keyring (PII_ENCRYPTION_KEYS, BLIND_INDEX_KEY); nil when not configured.
	// serve refuses to start without it; migrate and apikey do not need it.
	Keys *vault.Keyring
	// VaultDB, when set (VAULT_DATABASE_URL), keeps the vault in its own database.
	VaultDB          *mysql.Config
	VaultDatabaseURL string

	// JWT bearer verification (optional).
	JWTHS256Secret []byte
	JWTJWKSURL     string
	JWTIssuer      string
	JWTAudience    string
	JWTScopesClaim string

	// TLSCertFile and TLSKeyFile, when both set, make the server speak HTTPS.
	TLSCertFile, TLSKeyFile string

	// PprofAddr, when set, serves net/http/pprof there (keep it on loopback).
	PprofAddr string
	// AdminAddr, when set, serves /metrics and net/http/pprof there, apart from the API, and
	// /metrics leaves the API port.
	AdminAddr string

	// LogFile, when set, receives the JSON log instead of stdout, rotated at 10 MB, 5 backups.
	LogFile string

	RequestTimeout time.Duration
	ShutdownDelay  time.Duration
	// SearchCompactInterval is how often this replica indexes the users flagged search_dirty.
	SearchCompactInterval time.Duration
	ShutdownTimeout       time.Duration
	// Change events: the stream's key, its approximate length, the relay's poll interval.
	EventsStream       string
	EventsMaxLen       int
	EventsPollInterval time.Duration
	ReadHeaderTimeout  time.Duration
	ReadTimeout        time.Duration
	WriteTimeout       time.Duration
	IdleTimeout        time.Duration
}

// Load reads the configuration. getenv is os.Getenv in production and a map in tests.
func Load(getenv func(string) string) (Config, error) {
	l := loader{getenv: getenv}
	c := Config{}
	c.AppEnv = l.str("APP_ENV")
	switch c.AppEnv {
	case "development", "production":
	default:
		l.fail("APP_ENV", "must be development or production")
	}
	c.DatabaseURL = l.str("DATABASE_URL")
	if cfg, err := mysqldb.ParseURL(c.DatabaseURL); err != nil {
		l.fail("DATABASE_URL", err.Error())
	} else if cfg.DBName == "" {
		l.fail("DATABASE_URL", "must name a database, like mysql://root@127.0.0.1:3306/usersvc")
	} else {
		c.DB = cfg
	}
	if raw := strings.TrimSpace(getenv("DATABASE_READ_URL")); raw != "" {
		if cfg, err := mysqldb.ParseURL(raw); err != nil || cfg.DBName == "" {
			l.fail("DATABASE_READ_URL", "must be a mysql:// URL naming a database")
		} else {
			c.ReadDB, c.DatabaseReadURL = cfg, raw
		}
	}
	c.RedisURL = l.str("REDIS_URL")
	if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		l.fail("REDIS_URL", "must look like redis://host:6379/0 or rediss://...")
	}
	c.RedisClusterAddrs = l.addrs("REDIS_CLUSTER_ADDRS")
	c.RedisSentinelAddrs = l.addrs("REDIS_SENTINEL_ADDRS")
	c.RedisSentinelMaster = l.str("REDIS_SENTINEL_MASTER")
	if len(c.RedisSentinelAddrs) > 0 && c.RedisSentinelMaster == "" {
		l.fail("REDIS_SENTINEL_MASTER", "is required with REDIS_SENTINEL_ADDRS")
	}
	if len(c.RedisSentinelAddrs) > 0 && len(c.RedisClusterAddrs) > 0 {
		l.fail("REDIS_CLUSTER_ADDRS", "and REDIS_SENTINEL_ADDRS cannot both be set")
	}
	c.RedisKeyPrefix = l.str("REDIS_KEY_PREFIX")
	if strings.ContainsAny(c.RedisKeyPrefix, "{} \t\n") {
		l.fail("REDIS_KEY_PREFIX", "must not contain braces or spaces")
	}
	c.RedisTimeout = l.duration("REDIS_TIMEOUT")
	c.RateLimitPerMinute = l.intRange("RATE_LIMIT_PER_MINUTE", 1, 1_000_000)
	c.RateLimitWritesPerMinute = l.intRange("RATE_LIMIT_WRITES_PER_MINUTE", 0, 1_000_000)
	c.RateLimitLeaseMax = l.intRange("RATE_LIMIT_LEASE_MAX", 1, 1_000)
	c.RateLimitOnRedisError = l.str("RATE_LIMIT_ON_REDIS_ERROR")
	if c.RateLimitOnRedisError != "allow" && c.RateLimitOnRedisError != "deny" {
		l.fail("RATE_LIMIT_ON_REDIS_ERROR", "must be allow or deny")
	}
	c.TrustedProxies = l.cidrs("TRUSTED_PROXIES")
	c.IdempotencyTTL = l.duration("IDEMPOTENCY_TTL")
	c.IdempotencyInFlightTTL = l.duration("IDEMPOTENCY_IN_FLIGHT_TTL")
	c.IdempotencyWait = l.duration("IDEMPOTENCY_IN_FLIGHT_WAIT")
	c.Port = l.intRange("PORT", 1, 65535)
	c.Debug = l.boolean("DEBUG")
	if s := getenv("LOG_HASH_SECRET"); s != "" {
		if len(s) < 32 {
			l.fail("LOG_HASH_SECRET", "must be at least 32 characters")
		}
		c.LogHashSecret = []byte(s)
	} else {
		if c.AppEnv == "production" {
			l.fail("LOG_HASH_SECRET", "is required when APP_ENV=production")
		}
		c.LogHashSecret = make([]byte, 32)
		_, _ = rand.Read(c.LogHashSecret)
		c.LogHashSecretGenerated = true
	}
	if enc, bidx := getenv("PII_ENCRYPTION_KEYS"), getenv("BLIND_INDEX_KEY"); enc != "" || bidx != "" {
		if k, err := vault.ParseKeyring(enc, bidx); err != nil {
			l.fail("PII_ENCRYPTION_KEYS/BLIND_INDEX_KEY:", err.Error())
		} else {
			c.Keys = k
		}
	} else if c.AppEnv == "production" {
		l.fail("PII_ENCRYPTION_KEYS", "and BLIND_INDEX_KEY are required when APP_ENV=production")
	}
	if raw := strings.TrimSpace(getenv("VAULT_DATABASE_URL")); raw != "" {
		if cfg, err := mysqldb.ParseURL(raw); err != nil || cfg.DBName == "" {
			l.fail("VAULT_DATABASE_URL", "must be a mysql:// URL naming a database")
		} else {
			c.VaultDB, c.VaultDatabaseURL = cfg, raw
		}
	}
	if s := getenv("JWT_HS256_SECRET"); s != "" {
		if len(s) < 32 {
			l.fail("JWT_HS256_SECRET", "must be at least 32 characters")
		}
		c.JWTHS256Secret = []byte(s)
	}
	c.JWTJWKSURL = l.str("JWT_JWKS_URL")
	if c.JWTJWKSURL != "" {
		if u, err := url.Parse(c.JWTJWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			l.fail("JWT_JWKS_URL", "must be an http(s) URL")
		}
	}
	c.JWTIssuer, c.JWTAudience, c.JWTScopesClaim = l.str("JWT_ISSUER"), l.str("JWT_AUDIENCE"), l.str("JWT_SCOPES_CLAIM")
	if (len(c.JWTHS256Secret) > 0 || c.JWTJWKSURL != "") && (c.JWTIssuer == "" || c.JWTAudience == "") {
		l.fail("JWT_ISSUER", "and JWT_AUDIENCE are required when JWT_HS256_SECRET or JWT_JWKS_URL is set")
	}
	c.TLSCertFile, c.TLSKeyFile = l.str("TLS_CERT_FILE"), l.str("TLS_KEY_FILE")
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		l.fail("TLS_CERT_FILE", "and TLS_KEY_FILE must be set together")
	} else if c.TLSCertFile != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile); err != nil {
			l.fail("TLS_CERT_FILE", "and TLS_KEY_FILE do not load as a certificate and key")
		}
	}
	c.MaxPageSize = l.intRange("MAX_PAGE_SIZE", 1, 1000)
	c.DefaultPageSize = l.intRange("DEFAULT_PAGE_SIZE", 1, 1000)
	if c.DefaultPageSize > c.MaxPageSize && c.MaxPageSize > 0 {
		l.fail("DEFAULT_PAGE_SIZE", "must not exceed MAX_PAGE_SIZE")
	}
	c.AllowedOrigins = l.origins("ALLOWED_ORIGINS")
	c.DBMaxOpenConns = l.intRange("DB_MAX_OPEN_CONNS", 1, 10000)
	c.DBMaxIdleConns = l.intRange("DB_MAX_IDLE_CONNS", 0, 10000)
	c.DBConnMaxLifetime = l.duration("DB_CONN_MAX_LIFETIME")
	c.DBConnMaxIdleTime = l.duration("DB_CONN_MAX_IDLE_TIME")
	c.DBAcquireTimeout = l.duration("DB_ACQUIRE_TIMEOUT")
	c.RequestTimeout = l.duration("REQUEST_TIMEOUT")
	c.ShutdownTimeout = l.duration("SHUTDOWN_TIMEOUT")
	c.ShutdownDelay = l.duration("SHUTDOWN_DELAY")
	c.SearchCompactInterval = l.duration("SEARCH_COMPACT_INTERVAL")
	if c.SearchCompactInterval <= 0 {
		l.fail("SEARCH_COMPACT_INTERVAL", "must be positive")
	}
	if c.EventsStream = l.str("EVENTS_STREAM"); c.EventsStream == "REDIS_KEY_PREFIX:events" {
		c.EventsStream = c.RedisKeyPrefix + ":events"
	}
	c.EventsMaxLen = l.intRange("EVENTS_MAXLEN", 0, 1_000_000_000)
	if c.EventsPollInterval = l.duration("EVENTS_POLL_INTERVAL"); c.EventsPollInterval <= 0 {
		l.fail("EVENTS_POLL_INTERVAL", "must be positive")
	}
	c.LogFile = l.str("LOG_FILE")
	c.PprofAddr = l.str("PPROF_ADDR")
	c.AdminAddr = l.str("ADMIN_ADDR")
	c.ReadHeaderTimeout = l.duration("HTTP_READ_HEADER_TIMEOUT")
	c.ReadTimeout = l.duration("HTTP_READ_TIMEOUT")
	c.WriteTimeout = l.duration("HTTP_WRITE_TIMEOUT")
	c.IdleTimeout = l.duration("HTTP_IDLE_TIMEOUT")
	if c.IdempotencyInFlightTTL <= c.RequestTimeout {
		l.fail("IDEMPOTENCY_IN_FLIGHT_TTL", "must be longer than REQUEST_TIMEOUT")
	}
	if c.IdempotencyTTL < time.Minute {
		l.fail("IDEMPOTENCY_TTL", "must be at least 1m")
	}
	if len(l.errs) > 0 {
		return Config{}, errors.Join(l.errs...)
	}
	return c, nil
}

type loader struct {
	getenv func(string) string
	errs   []error
}

func (l *loader) fail(name, msg string) { l.errs = append(l.errs, fmt.Errorf("%s %s", name, msg)) }

// str returns the variable, or its documented default when unset or empty.
func (l *loader) str(name string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	for _, v := range Variables {
		if v.Name == name {
			return v.Default
		}
	}
	return ""
}

func (l *loader) intRange(name string, lo, hi int) int {
	n, err := strconv.Atoi(l.str(name))
	if err != nil || n < lo || n > hi {
		l.fail(name, fmt.Sprintf("must be a whole number from %d to %d", lo, hi))
	}
	return n
}

func (l *loader) boolean(name string) bool {
	b, err := strconv.ParseBool(l.str(name))
	if err != nil {
		l.fail(name, "must be true or false")
	}
	return b
}

func (l *loader) duration(name string) time.Duration {
	d, err := time.ParseDuration(l.str(name))
	if err != nil || d < 0 {
		l.fail(name, "must be a duration like 30s or 5m")
	}
	return d
}

func (l *loader) addrs(name string) []string {
	var out []string
	for _, a := range strings.Split(l.str(name), ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			l.fail(name, fmt.Sprintf("entry %q is not host:port", a))
			continue
		}
		out = append(out, a)
	}
	return out
}

func (l *loader) cidrs(name string) []string {
	var out []string
	for _, c := range strings.Split(l.str(name), ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		if !strings.Contains(c, "/") {
			if ip := net.ParseIP(c); ip != nil && ip.To4() != nil {
				c += "/32"
			} else if ip != nil {
				c += "/128"
			}
		}
		if _, _, err := net.ParseCIDR(c); err != nil {
			l.fail(name, fmt.Sprintf("entry %q is not a CIDR like 10.0.0.0/8", c))
			continue
		}
		out = append(out, c)
	}
	return out
}

func (l *loader) origins(name string) []string {
	raw := l.str(name)
	var list []string
	if strings.HasPrefix(raw, "[") {
		if err := json.Unmarshal([]byte(raw), &list); err != nil {
			l.fail(name, "must be a JSON list of strings or a comma-separated list")
			return nil
		}
	} else {
		list = strings.Split(raw, ",")
	}
	out := list[:0]
	for _, o := range list {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "" {
			continue
		}
		if u, err := url.Parse(o); o != "*" && (err != nil || u.Scheme == "" || u.Host == "") {
			l.fail(name, fmt.Sprintf("entry %q is not an origin like https://app.example.com", o))
			continue
		}
		out = append(out, o)
	}
	return out
}
