package config

// Defaults that work on a developer machine with MariaDB and Redis on localhost.
const (
	DefaultDatabaseURL = "mysql://root@127.0.0.1:3306/usersvc"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
)

// Variable describes one environment variable, for --help and docs/operations.md.
type Variable struct{ Name, Default, Description string }

// Variables lists every variable Load reads.
var Variables = []Variable{
	{"APP_ENV", "development", "development or production; production refuses to start without LOG_HASH_SECRET"},
	{"DATABASE_URL", DefaultDatabaseURL, "MySQL/MariaDB URL mysql://user:pass@host:port/db (mysql+pymysql:// accepted); query parameters become session variables, tls=true|skip-verify|preferred"},
	{"DATABASE_READ_URL", "", "a read replica for lists, search and audit (reads of one user stay on the primary)"},
	{"REDIS_URL", DefaultRedisURL, "Redis URL redis://[user:pass@]host:port/db (rediss:// for TLS); its credentials also apply to cluster and sentinel"},
	{"REDIS_CLUSTER_ADDRS", "", "host:port,host:port of a Redis Cluster (replaces REDIS_URL's host)"},
	{"REDIS_SENTINEL_ADDRS", "", "host:port,... of Redis Sentinels; needs REDIS_SENTINEL_MASTER"},
	{"REDIS_SENTINEL_MASTER", "", "Sentinel master name"},
	{"REDIS_KEY_PREFIX", "usersvc", "prefix of every Redis key, so that services can share a Redis"},
	{"REDIS_TIMEOUT", "500ms", "Redis dial/read/write timeout (a slow Redis fails fast)"},
	{"RATE_LIMIT_PER_MINUTE", "100", "requests per minute per client IP on /api (GCRA, burst = the same number)"},
	{"RATE_LIMIT_WRITES_PER_MINUTE", "0", "a stricter limit for POST/PUT/PATCH/DELETE per client IP; 0 = none"},
	{"RATE_LIMIT_LEASE_MAX", "64", "most tokens a replica takes from a client's Redis budget in one call (also at most the limit / 32); 1 = one Redis call per request"},
	{"RATE_LIMIT_ON_REDIS_ERROR", "allow", "allow or deny requests when Redis cannot be asked"},
	{"TRUSTED_PROXIES", "", "CIDRs of load balancers; only their X-Forwarded-For is read (right to left)"},
	{"IDEMPOTENCY_TTL", "24h", "how long a completed Idempotency-Key replays its response"},
	{"IDEMPOTENCY_IN_FLIGHT_TTL", "30s", "how long a running request holds its key (must exceed REQUEST_TIMEOUT)"},
	{"IDEMPOTENCY_IN_FLIGHT_WAIT", "2s", "how long a repeat of a running request waits to replay its answer before 409"},
	{"PORT", "8000", "HTTP port"},
	{"DEBUG", "false", "true lowers the log level to debug (personal data is never logged)"},
	{"LOG_HASH_SECRET", "random per process", "key of the HMAC tokens that replace personal data in logs; at least 32 bytes"},
	{"PII_ENCRYPTION_KEYS", "", "vault keys id:base64(32 bytes),...; the last is active (make run generates local ones)"},
	{"BLIND_INDEX_KEY", "", "base64(32 bytes) key of the Aadhaar/PAN blind indexes (never rotate without reindexing)"},
	{"VAULT_DATABASE_URL", "", "keep the vault in its own database (default: the main one)"},
	{"JWT_HS256_SECRET", "", "accept HS256 JWTs signed with this secret (>= 32 characters)"},
	{"JWT_JWKS_URL", "", "accept RS256/ES256 JWTs whose keys this JWKS URL publishes"},
	{"JWT_ISSUER", "", "required iss of JWTs (required when JWTs are enabled)"},
	{"JWT_AUDIENCE", "", "required aud of JWTs (required when JWTs are enabled)"},
	{"JWT_SCOPES_CLAIM", "scope", "JWT claim holding scopes (space-separated string or list)"},
	{"TLS_CERT_FILE", "", "serve HTTPS with this certificate (PEM) and TLS_KEY_FILE"},
	{"TLS_KEY_FILE", "", "private key (PEM) for TLS_CERT_FILE"},
	{"DEFAULT_PAGE_SIZE", "10", "page size when page_size is not given"},
	{"MAX_PAGE_SIZE", "100", "largest page_size accepted"},
	{"ALLOWED_ORIGINS", "http://localhost:3000,http://localhost:8080", "CORS origins, comma-separated or a JSON list; * allows any"},
	{"DB_MAX_OPEN_CONNS", "50", "connection pool size"},
	{"DB_MAX_IDLE_CONNS", "50", "idle connections kept"},
	{"DB_CONN_MAX_LIFETIME", "1h", "recycle connections after this long"},
	{"DB_CONN_MAX_IDLE_TIME", "5m", "close idle connections after this long"},
	{"DB_ACQUIRE_TIMEOUT", "2s", "when all DB_MAX_OPEN_CONNS are busy, how long a request waits before 503"},
	{"REQUEST_TIMEOUT", "10s", "deadline of one request's work, database included"},
	{"SHUTDOWN_DELAY", "5s", "after SIGTERM, how long /readyz answers 503 while requests are still served"},
	{"SEARCH_COMPACT_INTERVAL", "1s", "how often each replica moves newly created or changed users into the search index (users.search_dirty; until then search verifies them one by one)"},
	{"EVENTS_STREAM", "REDIS_KEY_PREFIX:events", "the Redis Stream that change events are published to (docs/api.md, \"Change events\")"},
	{"EVENTS_MAXLEN", "1000000", "approximate number of events the stream keeps (XADD MAXLEN ~); 0 = no trimming"},
	{"EVENTS_POLL_INTERVAL", "200ms", "how often the replica holding the relay lease looks for new events when none were waiting"},
	{"SHUTDOWN_TIMEOUT", "20s", "then, how long in-flight requests may take to finish"},
	{"ADMIN_ADDR", "", "the admin listener: /metrics and Go profiles (/debug/pprof/) on this address, e.g. 127.0.0.1:9090, and /metrics no longer on PORT; keep it private (make run: 127.0.0.1:9090)"},
	{"PPROF_ADDR", "", "serve Go profiles (net/http/pprof) alone on this address, e.g. 127.0.0.1:6060; never expose it"},
	{"LOG_FILE", "", "write the JSON log to this file (rotated at 10 MB, 5 compressed backups) instead of stdout"},
	{"HTTP_READ_HEADER_TIMEOUT", "5s", "server read-header timeout"},
	{"HTTP_READ_TIMEOUT", "15s", "server read timeout"},
	{"HTTP_WRITE_TIMEOUT", "30s", "server write timeout"},
	{"HTTP_IDLE_TIMEOUT", "120s", "keep-alive idle timeout"},
}
