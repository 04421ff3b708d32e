package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// ReplicaPair starts a MariaDB primary and a replica from the installed mariadbd on loopback
// ports, each with its own data directory, with binlog (GTID) replication from the first to the
// second. Both stop when the test ends. It returns server configurations (no database selected)
// for root over TCP, and a function that pauses or resumes replication.
func ReplicaPair(t testing.TB) (primary, replica *mysql.Config, replicate func(on bool)) {
	t.Helper()
	start := func(name string, id int) (*mysql.Config, *sql.DB) {
		srv := StartPrivate(t, name, fmt.Sprintf("--server-id=%d", id), "--binlog-format=ROW",
			"--log-bin="+filepath.Join(t.TempDir(), "binlog"))
		db := srv.open()
		t.Cleanup(func() { db.Close() })
		for _, stmt := range []string{ // not written to the binlog: the replica makes its own
			"SET sql_log_bin = 0",
			"CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY 'repl'",
			"GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'",
			"SET sql_log_bin = 1",
		} {
			if _, err := db.Exec(stmt); err != nil {
				t.Fatalf("%s: %s: %v", name, stmt, err)
			}
		}
		return srv.TCP, db
	}
	primary, _ = start("primary", 1)
	replica, rdb := start("replica", 2)
	host, port, _ := strings.Cut(primary.Addr, ":")
	for _, stmt := range []string{
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='%s', MASTER_PORT=%s, MASTER_USER='repl', MASTER_PASSWORD='repl', MASTER_USE_GTID=slave_pos", host, port),
		"START SLAVE",
	} {
		if _, err := rdb.Exec(stmt); err != nil {
			t.Fatalf("replica: %s: %v", stmt, err)
		}
	}
	replicate = func(on bool) {
		stmt := "STOP SLAVE"
		if on {
			stmt = "START SLAVE"
		}
		if _, err := rdb.ExecContext(context.Background(), stmt); err != nil {
			t.Fatalf("replica: %s: %v", stmt, err)
		}
	}
	return primary, replica, replicate
}
