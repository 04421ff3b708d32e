// Package testdb gives tests a fresh, migrated database on a real MySQL-family server.
//
// The server comes from TEST_DATABASE_URL (mysql://user:pass@host:port/; `make test` sets it to
// the local MariaDB). Without it, and with a container engine reachable (Docker, or podman's
// Docker-compatible socket through DOCKER_HOST), a database container is started with
// testcontainers-go: TEST_MYSQL_IMAGE, by default the official mysql:8.0 (`make containers-test`
// sets the local MariaDB stand-in). Without either, tests fail with a message saying how to
// provide a server: they never skip.
package testdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/usersvc/usersvc/internal/migrate"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/schema"
)

// EnvVar names the variable that points the tests at a server.
const EnvVar = "TEST_DATABASE_URL"

// ImageEnvVar names the database image started when EnvVar is empty (default mysql:8.0).
const ImageEnvVar = "TEST_MYSQL_IMAGE"

var (
	serverOnce sync.Once
	serverCfg  *mysql.Config
	serverErr  error
)

// Server returns the configuration of the server the tests use, with no database selected.
func Server(ctx context.Context) (*mysql.Config, error) {
	serverOnce.Do(func() { serverCfg, serverErr = findServer(ctx) })
	if serverErr != nil {
		return nil, serverErr
	}
	return serverCfg.Clone(), nil
}

func findServer(ctx context.Context) (*mysql.Config, error) {
	if raw := strings.TrimSpace(os.Getenv(EnvVar)); raw != "" {
		cfg, err := mysqldb.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvVar, err)
		}
		cfg.DBName = ""
		return cfg, nil
	}
	if err := dockerHealthy(ctx); err != nil {
		return nil, fmt.Errorf("no test database: set %s=mysql://root@127.0.0.1:3306/ (what `make test` does) "+
			"or make a container engine reachable (Docker, or podman through DOCKER_HOST) so that a database container can be started (%v)", EnvVar, err)
	}
	image := strings.TrimSpace(os.Getenv(ImageEnvVar))
	if image == "" {
		image = "mysql:8.0"
	}
	// The official image's variables (the stand-in honours them too); ready once it accepts a
	// query, which works for MySQL and MariaDB alike (their "ready" log lines differ).
	c, err := testcontainers.Run(ctx, image,
		testcontainers.WithEnv(map[string]string{"MYSQL_ROOT_PASSWORD": "test"}),
		testcontainers.WithExposedPorts("3306/tcp"),
		testcontainers.WithLabels(map[string]string{"usersvc.test": "database"}),
		testcontainers.WithWaitStrategyAndDeadline(3*time.Minute, wait.ForSQL("3306/tcp", "mysql", func(host string, port network.Port) string {
			return fmt.Sprintf("root:test@tcp(%s)/", net.JoinHostPort(host, port.Port()))
		})))
	if err != nil {
		return nil, fmt.Errorf("start %s container: %w", image, err)
	}
	// The container lives as long as the test process; testcontainers' reaper (Ryuk) removes it,
	// or, where Ryuk cannot run (podman without a registry), make containers-test removes the
	// containers labelled usersvc.test.
	host, err := c.Host(ctx)
	if err != nil {
		return nil, err
	}
	port, err := c.MappedPort(ctx, "3306/tcp")
	if err != nil {
		return nil, err
	}
	return mysqldb.ParseURL(fmt.Sprintf("mysql://root:test@%s:%s/", host, port.Port()))
}

func dockerHealthy(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("docker provider: %v", r)
		}
	}()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return err
	}
	defer p.Close()
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return p.Health(hctx)
}

// FreshVault is Fresh for a vault-only database (schema/vault.sql), as VAULT_DATABASE_URL uses.
func FreshVault(ctx context.Context, prefix string) (*mysql.Config, func(), error) {
	return fresh(ctx, prefix, schema.VaultFiles)
}

// Fresh creates a database with a unique name, migrates it with the same code the binary's
// `migrate` command uses, and returns its configuration and a function that drops it.
func Fresh(ctx context.Context, prefix string) (*mysql.Config, func(), error) {
	return fresh(ctx, prefix, schema.Files)
}

func fresh(ctx context.Context, prefix string, files fs.FS) (*mysql.Config, func(), error) {
	srv, err := Server(ctx)
	if err != nil {
		return nil, nil, err
	}
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	cfg := srv.Clone()
	cfg.DBName = "usersvc_test_" + prefix + "_" + hex.EncodeToString(b)
	if _, err := migrate.Run(ctx, cfg, files, migrate.Options{}); err != nil {
		Drop(cfg)
		return nil, nil, fmt.Errorf("migrate %s: %w", cfg.DBName, err)
	}
	return cfg, func() { Drop(cfg) }, nil
}

// Drop removes the database cfg names.
func Drop(cfg *mysql.Config) {
	srv := cfg.Clone()
	name := srv.DBName
	srv.DBName = ""
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := mysqldb.Open(ctx, srv, mysqldb.PoolConfig{MaxOpen: 1, MaxIdle: 1})
	if err != nil {
		return
	}
	defer db.Close()
	_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+strings.ReplaceAll(name, "`", "``")+"`")
}

// New is Fresh for one test: the database is dropped when the test ends.
func New(t testing.TB, prefix string) *mysql.Config {
	t.Helper()
	cfg, drop, err := Fresh(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(drop)
	return cfg
}

// RedisEnvVar names the variable that points the tests at a Redis server.
const RedisEnvVar = "TEST_REDIS_URL"

// RedisURL returns the Redis the tests use (`make test` sets TEST_REDIS_URL to the local one).
// Tests isolate themselves with a random key prefix, never by flushing.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := strings.TrimSpace(os.Getenv(RedisEnvVar))
	if u == "" {
		t.Fatalf("no test Redis: set %s=redis://127.0.0.1:6379/0 (what `make test` does)", RedisEnvVar)
	}
	return u
}

// ParseServerURL parses a server URL (no database) the way the service parses DATABASE_URL.
func ParseServerURL(raw string) (*mysql.Config, error) {
	cfg, err := mysqldb.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	cfg.DBName = ""
	return cfg, nil
}

// URL renders cfg as a DATABASE_URL, for starting the binary or app.Run in tests.
func URL(cfg *mysql.Config) string {
	auth := cfg.User
	if cfg.Passwd != "" {
		auth += ":" + cfg.Passwd
	}
	return fmt.Sprintf("mysql://%s@%s/%s", auth, cfg.Addr, cfg.DBName)
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
