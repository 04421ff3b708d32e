package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/migrate"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/internal/vault"
	"github.com/usersvc/usersvc/schema"
)

// TestReadReplica runs the binary against a real MariaDB primary/replica pair started here from
// mariadbd. With replication paused, a new user is visible by id (the primary) but not in the
// list (the replica): lists go to DATABASE_READ_URL, reads of one user stay on the primary.
func TestReadReplica(t *testing.T) {
	primarySrv, replicaSrv, replicate := testdb.ReplicaPair(t)
	ctx := context.Background()
	primary, replica := primarySrv.Clone(), replicaSrv.Clone()
	primary.DBName, replica.DBName = "usersvc_rr", "usersvc_rr"
	if _, err := migrate.Run(ctx, primary, schema.Files, migrate.Options{}); err != nil {
		t.Fatal(err)
	}
	pdb, err := mysqldb.Open(ctx, primary, mysqldb.PoolConfig{MaxOpen: 2, MaxIdle: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pdb.Close()
	key, _, err := auth.Create(ctx, pdb, "rr", auth.AllScopes, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The replica has the schema and the key once it caught up.
	for i := 0; ; i++ {
		rdb, err := mysqldb.Open(ctx, replica, mysqldb.PoolConfig{MaxOpen: 1, MaxIdle: 1})
		if err == nil {
			var n int
			err = rdb.QueryRow("SELECT COUNT(*) FROM api_keys").Scan(&n)
			rdb.Close()
			if err == nil && n == 1 {
				break
			}
		}
		if i > 100 {
			t.Fatalf("replica never caught up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	port := freePort(t)
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL(primary), "DATABASE_READ_URL="+dbURL(replica), fmt.Sprintf("PORT=%d", port),
		"REDIS_URL="+testdb.RedisURL(t), "REDIS_KEY_PREFIX=rr-"+strings.ToLower(testdb.Letters(6)),
		"PII_ENCRYPTION_KEYS=r1:"+vault.NewKeyMaterial(), "BLIND_INDEX_KEY="+vault.NewKeyMaterial(), "SHUTDOWN_DELAY=0s")
	process(t, "replica-reading service", cmd)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitHTTP(t, base+"/healthz")
	client := &http.Client{Timeout: 10 * time.Second}
	bearer = "Bearer " + key
	if r := do(t, client, "GET", base+"/readyz", ""); r.code != 200 || !strings.Contains(r.body, `"mysql_read":"ok"`) {
		t.Fatalf("readyz: %d %s", r.code, r.body)
	}
	total := func() int {
		var page struct{ Total int }
		_ = json.Unmarshal([]byte(do(t, client, "GET", base+"/api/v1/users/", "").body), &page)
		return page.Total
	}
	create := func() string {
		r := do(t, client, "POST", base+"/api/v1/users/", userJSON())
		if r.code != 201 {
			t.Fatalf("create: %d %s", r.code, r.body)
		}
		var u struct{ ID string }
		_ = json.Unmarshal([]byte(r.body), &u)
		return u.ID
	}
	eventually := func(want int) {
		t.Helper()
		for i := 0; i < 100; i++ {
			if total() == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("list total never reached %d (is %d)", want, total())
	}
	create()
	eventually(1)

	replicate(false)
	id := create()
	if r := do(t, client, "GET", base+"/api/v1/users/"+id, ""); r.code != 200 {
		t.Fatalf("read-your-write by id: %d", r.code)
	}
	time.Sleep(300 * time.Millisecond)
	if got := total(); got != 1 {
		t.Fatalf("with replication paused the list shows %d users: it did not read the replica", got)
	}
	replicate(true)
	eventually(2)
}
