package testdb

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// PrivateServer is a mariadbd of the test's own, from the installed MariaDB, on a loopback port
// with its own data directory. It can be killed (SIGKILL, a crash) and started again on the same
// data directory and port. It stops when the test ends.
type PrivateServer struct {
	Name  string
	Local *mysql.Config // root over the server's unix socket
	TCP   *mysql.Config // root over TCP on 127.0.0.1 (no database selected)
	data  string
	args  []string
	cmd   *exec.Cmd
	t     testing.TB
}

// StartPrivate installs a data directory and starts mariadbd on it with extra server options.
func StartPrivate(t testing.TB, name string, extra ...string) *PrivateServer {
	t.Helper()
	for _, bin := range []string{"mariadb-install-db", "mariadbd"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err2 := os.Stat("/usr/sbin/" + bin); err2 != nil {
				t.Fatalf("%s is not installed (Debian: mariadb-server)", bin)
			}
		}
	}
	data := filepath.Join(t.TempDir(), name)
	install := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db %s: %v\n%s", name, err, out)
	}
	port := FreePort(t)
	sock := filepath.Join(data, "mysqld.sock")
	s := &PrivateServer{Name: name, data: data, t: t,
		args: append([]string{"--no-defaults", "--datadir=" + data, fmt.Sprintf("--port=%d", port), "--bind-address=127.0.0.1",
			"--socket=" + sock, "--pid-file=" + filepath.Join(data, "mysqld.pid"), "--user=root", "--skip-name-resolve",
			"--innodb-buffer-pool-size=64M", "--log-error=" + filepath.Join(data, "error.log")}, extra...)}
	s.Local = mysql.NewConfig()
	s.Local.Net, s.Local.Addr, s.Local.User = "unix", sock, "root"
	s.Start()
	db := s.open()
	defer db.Close()
	for _, stmt := range []string{
		"SET sql_log_bin = 0", // not replicated: a replica makes its own accounts
		"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''",
		"GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION",
		"SET sql_log_bin = 1",
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %s: %v", name, stmt, err)
		}
	}
	var err error
	if s.TCP, err = ParseServerURL(fmt.Sprintf("mysql://root@127.0.0.1:%d/", port)); err != nil {
		t.Fatal(err)
	}
	return s
}

// Start starts mariadbd on the data directory (again, after Kill) and waits until it answers.
func (s *PrivateServer) Start() {
	s.t.Helper()
	mariadbd := "mariadbd"
	if _, err := exec.LookPath(mariadbd); err != nil {
		mariadbd = "/usr/sbin/mariadbd"
	}
	s.cmd = exec.Command(mariadbd, s.args...)
	Process(s.t, "mariadbd "+s.Name, s.cmd, 20*time.Second)
	s.open().Close()
}

// Kill crashes the server: SIGKILL, no shutdown, whatever it had in memory is lost.
func (s *PrivateServer) Kill() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatalf("kill mariadbd %s: %v", s.Name, err)
	}
	for i := 0; i < 200; i++ {
		if s.cmd.Process.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	s.t.Fatalf("mariadbd %s outlived SIGKILL", s.Name)
}

// open connects over the socket, waiting up to a minute for the server (crash recovery included).
func (s *PrivateServer) open() *sql.DB {
	s.t.Helper()
	var err error
	for i := 0; i < 1200; i++ {
		var c driver.Connector
		if c, err = mysql.NewConnector(s.Local); err == nil {
			db := sql.OpenDB(c)
			if err = db.Ping(); err == nil {
				return db
			}
			db.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(s.data, "error.log"))
	s.t.Fatalf("mariadbd %s did not start: %v\n%s", s.Name, err, log)
	return nil
}
