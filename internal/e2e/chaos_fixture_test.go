package e2e

// The chaos tests' fixture: an in-process Toxiproxy in front of MariaDB and Redis, a replica
// behind it, and the record of acknowledged writes that must all be found afterwards.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	toxiclient "github.com/Shopify/toxiproxy/v2/client"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/vault"
)

// faults is a real TCP fault proxy (Toxiproxy, in process) in front of MariaDB and Redis.
type faults struct {
	mysql, redis *toxiclient.Proxy
}

func startFaults(t *testing.T) *faults {
	t.Helper()
	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	port := freePort(t)
	go server.Listen("127.0.0.1", fmt.Sprint(port))
	client := toxiclient.NewClient(fmt.Sprintf("127.0.0.1:%d", port))
	var err error
	for i := 0; i < 100; i++ {
		if _, err = client.Proxies(); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("toxiproxy: %v", err)
	}
	srv, err := testdb.Server(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	redisAddr := strings.TrimPrefix(strings.TrimSuffix(testdb.RedisURL(t), "/0"), "redis://")
	f := &faults{}
	if f.mysql, err = client.CreateProxy("mysql-"+testdb.Letters(4), fmt.Sprintf("127.0.0.1:%d", freePort(t)), srv.Addr); err != nil {
		t.Fatal(err)
	}
	if f.redis, err = client.CreateProxy("redis-"+testdb.Letters(4), fmt.Sprintf("127.0.0.1:%d", freePort(t)), redisAddr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.mysql.Delete(); _ = f.redis.Delete() })
	return f
}

// chaosReplica starts the binary on a fresh database, reaching MariaDB and Redis through the
// fault proxy, and returns its URL, a key with every scope, and a direct (unproxied) pool for
// checking what was really written.
func chaosReplica(t *testing.T, f *faults, env map[string]string) (string, string, *sql.DB) {
	t.Helper()
	cfg := testdb.New(t, "chaos")
	direct, err := mysqldb.Open(context.Background(), cfg, mysqldb.PoolConfig{MaxOpen: 4, MaxIdle: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { direct.Close() })
	key, _, err := auth.Create(context.Background(), direct, "chaos", auth.AllScopes, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	proxied := cfg.Clone()
	proxied.Addr = f.mysql.Listen
	port := freePort(t)
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL(proxied), fmt.Sprintf("PORT=%d", port),
		"REDIS_URL=redis://"+f.redis.Listen+"/0", "REDIS_KEY_PREFIX=chaos-"+strings.ToLower(testdb.Letters(6)),
		"PII_ENCRYPTION_KEYS=c1:"+vault.NewKeyMaterial(), "BLIND_INDEX_KEY="+vault.NewKeyMaterial(),
		"RATE_LIMIT_PER_MINUTE=1000000", "SHUTDOWN_DELAY=0s")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	process(t, "chaos replica", cmd)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHTTP(t, base+"/healthz")
	return base, "Bearer " + key, direct
}

func withKey(key string, headers ...string) []string {
	return append([]string{"Authorization", key}, headers...)
}

// acks records acknowledged creates; verify reads the database directly (the lost-write checker).
type acks struct {
	mu  sync.Mutex
	ids []string
}

func (a *acks) note(r result) {
	if r.code != 201 {
		return
	}
	var u struct{ ID string }
	_ = json.Unmarshal([]byte(r.body), &u)
	a.mu.Lock()
	a.ids = append(a.ids, u.ID)
	a.mu.Unlock()
}

func (a *acks) verify(t *testing.T, db *sql.DB) {
	t.Helper()
	for _, id := range a.ids {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM users WHERE id = ?", id).Scan(&n); err != nil || n != 1 {
			t.Errorf("acknowledged create %s: %d rows (%v)", id, n, err)
		}
	}
}
