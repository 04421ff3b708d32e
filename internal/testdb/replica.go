package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ReplicaPair starts a MariaDB primary and a replica from the installed mariadbd on loopback
// ports, each with its own data directory, with binlog (GTID) replication from the first to the
// second. Both stop when the test ends. It returns server configurations (no database selected)
// for root over TCP, and a function that pauses or resumes replication.
func ReplicaPair(t testing.TB) (primary, replica *mysql.Config, replicate func(on bool)) {
	t.Helper()
	for _, bin := range []string{"mariadb-install-db", "mariadbd"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err2 := os.Stat("/usr/sbin/" + bin); err2 != nil {
				t.Fatalf("%s is not installed (Debian: mariadb-server)", bin)
			}
		}
	}
	dir := t.TempDir()
	start := func(name string, id int, extra ...string) (*mysql.Config, *sql.DB) {
		data := filepath.Join(dir, name)
		install := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=root",
			"--auth-root-authentication-method=normal", "--skip-test-db")
		if out, err := install.CombinedOutput(); err != nil {
			t.Fatalf("mariadb-install-db %s: %v\n%s", name, err, out)
		}
		port := FreePort(t)
		sock := filepath.Join(data, "mysqld.sock")
		args := append([]string{"--no-defaults", "--datadir=" + data, fmt.Sprintf("--port=%d", port), "--bind-address=127.0.0.1",
			"--socket=" + sock, "--pid-file=" + filepath.Join(data, "mysqld.pid"), "--user=root", "--skip-name-resolve",
			fmt.Sprintf("--server-id=%d", id), "--log-bin=" + filepath.Join(data, "binlog"), "--binlog-format=ROW",
			"--innodb-buffer-pool-size=64M", "--log-error=" + filepath.Join(data, "error.log")}, extra...)
		mariadbd := "mariadbd"
		if _, err := exec.LookPath(mariadbd); err != nil {
			mariadbd = "/usr/sbin/mariadbd"
		}
		Process(t, "mariadbd "+name, exec.Command(mariadbd, args...), 20*time.Second)
		local := mysql.NewConfig()
		local.Net, local.Addr, local.User = "unix", sock, "root"
		var db *sql.DB
		for i := 0; ; i++ {
			c, err := mysql.NewConnector(local)
			if err == nil {
				db = sql.OpenDB(c)
				if err = db.Ping(); err == nil {
					break
				}
				db.Close()
			}
			if i > 200 {
				log, _ := os.ReadFile(filepath.Join(data, "error.log"))
				t.Fatalf("mariadbd %s did not start: %v\n%s", name, err, log)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Cleanup(func() { db.Close() })
		// Accounts for TCP; not written to the binlog, so the replica does not replay them.
		for _, stmt := range []string{
			"SET sql_log_bin = 0",
			"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''",
			"GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
			"CREATE USER IF NOT EXISTS 'repl'@'127.0.0.1' IDENTIFIED BY 'repl'",
			"GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'",
			"SET sql_log_bin = 1",
		} {
			if _, err := db.Exec(stmt); err != nil {
				t.Fatalf("%s: %s: %v", name, stmt, err)
			}
		}
		cfg, err := ParseServerURL(fmt.Sprintf("mysql://root@127.0.0.1:%d/", port))
		if err != nil {
			t.Fatal(err)
		}
		return cfg, db
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
