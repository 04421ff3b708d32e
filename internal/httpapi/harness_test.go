package httpapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/httpapi"
	"github.com/usersvc/usersvc/internal/idempotency"
	"github.com/usersvc/usersvc/internal/logx"
	"github.com/usersvc/usersvc/internal/metrics"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/redisx"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
)

// shared is the package's database; tests that count rows get one of their own (newEnv(t, true)).
var shared struct {
	once sync.Once
	env  *env
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.env != nil {
		shared.env.close()
		for _, f := range shared.env.failures {
			fmt.Fprintln(os.Stderr, "FAIL (shared environment):", f)
			code = 1
		}
	}
	os.Exit(code)
}

// env is one service on one fresh, migrated database, driven through NewServer.
type env struct {
	h          http.Handler
	svc        *users.Service
	db         *sql.DB
	vaultDB    *sql.DB // set when the vault has a database of its own
	rdb        redis.UniversalClient
	idem       *idempotency.Store
	prefix     string
	logs       *syncBuffer
	metrics    *metrics.Metrics
	draining   atomic.Bool
	keys       *auth.KeyStore
	key, keyID string // an API key with every scope, sent by do unless a test sends its own
	close      func()
	failures   []string // plaintext findings made by close
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// envOptions adjust the server of a private environment.
type envOptions struct {
	perMinute      int
	writesPerMin   int
	redisURL       string // default: TEST_REDIS_URL
	denyOnRedisErr bool
	trusted        []string
	jwt            *auth.JWTConfig
	separateVault  bool
	dbSlots        int
}

func openEnv(t *testing.T, prefix string, o envOptions) (*env, error) {
	cfg, drop, err := testdb.Fresh(context.Background(), prefix)
	if err != nil {
		return nil, err
	}
	db, err := mysqldb.Open(context.Background(), cfg, mysqldb.PoolConfig{MaxOpen: 40, MaxIdle: 40, MaxLifetime: time.Hour})
	if err != nil {
		drop()
		return nil, err
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	keys, err := vault.ParseKeyring("test1:"+vault.NewKeyMaterial(), vault.NewKeyMaterial())
	if err != nil {
		drop()
		return nil, err
	}
	var vdb *sql.DB
	if o.separateVault {
		vcfg, vdrop, err := testdb.FreshVault(context.Background(), prefix+"_vault")
		if err != nil {
			drop()
			return nil, err
		}
		if vdb, err = mysqldb.Open(context.Background(), vcfg, mysqldb.PoolConfig{MaxOpen: 10, MaxIdle: 10}); err != nil {
			vdrop()
			drop()
			return nil, err
		}
		inner := drop
		drop = func() { vdb.Close(); vdrop(); inner() }
	}
	svc := users.NewService(db, vault.New(keys, vdb), nil)
	if o.redisURL == "" {
		o.redisURL = testdb.RedisURL(t)
	}
	if o.perMinute == 0 {
		o.perMinute = 1_000_000
	}
	rdb, err := redisx.Open(redisx.Options{URL: o.redisURL, Timeout: 300 * time.Millisecond})
	if err != nil {
		drop()
		return nil, err
	}
	keyPrefix := "usersvc-test-" + strings.ToLower(randLetters(8))
	e := &env{db: db, vaultDB: vdb, logs: logs, svc: svc, rdb: rdb, prefix: keyPrefix,
		metrics: metrics.New("test", "test-rev", map[string]*sql.DB{"main": db})}
	e.keys = auth.NewKeyStore(db)
	e.keys.CacheTTL = 0 // revocations take effect at once in tests
	if e.key, e.keyID, err = auth.Create(context.Background(), db, "test-all", auth.AllScopes, time.Now()); err != nil {
		drop()
		return nil, err
	}
	var jwtV auth.Verifier
	if o.jwt != nil {
		jwtV = auth.NewJWTVerifier(*o.jwt)
	}
	e.idem = idempotency.NewStore(rdb, keyPrefix, time.Hour, 30*time.Second, 500*time.Millisecond)
	svc.WithErasureOf(func(ctx context.Context, id string) error { _, err := e.idem.ForgetUser(ctx, id); return err })
	e.h = httpapi.NewServer(httpapi.Options{
		Auth:   auth.NewAuthenticator(e.keys, jwtV),
		Logger: log, Tokens: logx.NewTokenizer([]byte("test-secret-test-secret-test-secret")),
		DefaultPageSize: 10, MaxPageSize: 100, AllowedOrigins: []string{"http://localhost:3000"},
		RequestTimeout: 10 * time.Second, TrustedProxies: o.trusted,
		RateLimit: httpapi.RateLimit{Limiter: redis_rate.NewLimiter(rdb), KeyPrefix: keyPrefix,
			PerMinute: o.perMinute, WritesPerMinute: o.writesPerMin, DenyOnRedisError: o.denyOnRedisErr},
		Metrics:  e.metrics,
		Draining: &e.draining,
		DBSlots:  o.dbSlots, AcquireTimeout: 100 * time.Millisecond,
		Ready: func(ctx context.Context) map[string]error {
			return map[string]error{"mysql": db.PingContext(ctx), "redis": rdb.Ping(ctx).Err()}
		},
		Idempotency: e.idem,
	}, svc)
	e.close = func() {
		e.failures = append(e.failures, e.findPlaintext()...)
		rdb.Close()
		db.Close()
		drop()
	}
	return e, nil
}

// newEnv returns the shared environment, or a private one when own is true.
func newEnv(t *testing.T, own bool) *env {
	t.Helper()
	if own {
		return newEnvWith(t, envOptions{})
	}
	shared.once.Do(func() { shared.env, shared.err = openEnv(t, "http", envOptions{}) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.env
}

// newEnvWith returns a private environment with adjusted options.
func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	e, err := openEnv(t, "http", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.close()
		for _, f := range e.failures {
			t.Error(f)
		}
	})
	return e
}

type response struct {
	Code   int
	Header http.Header
	Body   []byte
}

func (r response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object (%d): %s", r.Code, r.Body)
	}
	return m
}

// do sends a request. body may be nil, a string (sent as is) or any value (sent as JSON).
// headers are name/value pairs; Content-Type defaults to application/json when there is a body.
func (e *env) do(t *testing.T, method, path string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			t.Fatal(err)
		}
	}
	if body != nil {
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+e.key)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	specReq := req.Clone(context.Background()) // the handler trims the path and drains the body
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	checkAgainstSpec(t, specReq, raw, rec)
	return response{Code: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

func jsonEncode(w http.ResponseWriter, v any) error { return json.NewEncoder(w).Encode(v) }

// keyWith creates an API key with the given scopes and returns its Authorization header value.
func (e *env) keyWith(t *testing.T, scopes ...string) string {
	t.Helper()
	key, _, err := auth.Create(context.Background(), e.db, "k-"+randLetters(10), scopes, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + key
}
func openTestDB(t *testing.T, cfg *mysql.Config) *sql.DB {
	t.Helper()
	db, err := mysqldb.Open(context.Background(), cfg, mysqldb.PoolConfig{MaxOpen: 10, MaxIdle: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// queryStrings returns the first column of every row.
func queryStrings(ctx context.Context, db *sql.DB, query string) ([]string, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v sql.NullString
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v.String)
	}
	return out, rows.Err()
}

// columnsOf lists a table's columns, quoted, for CONCAT_WS.
func columnsOf(ctx context.Context, db *sql.DB, table string) string {
	cols, _ := queryStrings(ctx, db, "SELECT CONCAT('`', COLUMN_NAME, '`') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '"+table+"' ORDER BY ORDINAL_POSITION")
	return strings.Join(cols, ", ")
}

// httptestServer serves the environment's handler on a real loopback port.
func httptestServer(t *testing.T, e *env) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	return srv
}
