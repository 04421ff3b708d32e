package mysqldb

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/go-sql-driver/mysql"
)

func TestTranslate(t *testing.T) {
	maria := &mysql.MySQLError{Number: 1062, Message: "Duplicate entry 'a@x.com' for key 'uq_users_email'"}
	mysql8 := &mysql.MySQLError{Number: 1062, Message: "Duplicate entry '9876543210' for key 'users.uq_users_primary_mobile'"}
	for err, want := range map[error]string{maria: "uq_users_email", mysql8: "uq_users_primary_mobile"} {
		var dup *DuplicateKeyError
		got := Translate(fmt.Errorf("insert: %w", err))
		if !errors.As(got, &dup) || dup.Key != want {
			t.Errorf("Translate(%v) = %v, want key %s", err, got, want)
		}
		if s := got.Error(); s != "duplicate value for unique key "+want {
			t.Errorf("message leaks the value: %q", s)
		}
	}
	for _, n := range []uint16{1205, 1213} {
		if got := Translate(&mysql.MySQLError{Number: n}); !errors.Is(got, ErrRetryable) {
			t.Errorf("%d: got %v", n, got)
		}
	}
	if got := Translate(fmt.Errorf("get: %w", sql.ErrNoRows)); !errors.Is(got, sql.ErrNoRows) {
		t.Errorf("no rows: got %v", got)
	}
	for _, err := range []error{driver.ErrBadConn, mysql.ErrInvalidConn, &net.OpError{Op: "dial", Err: errors.New("refused")}} {
		if got := Translate(fmt.Errorf("query: %w", err)); !errors.Is(got, ErrUnavailable) {
			t.Errorf("%v: got %v, want ErrUnavailable", err, got)
		}
	}
	other := errors.New("boom")
	if got := Translate(other); !errors.Is(got, other) {
		t.Errorf("other: got %v", got)
	}
}

func TestParseURL(t *testing.T) {
	cfg, err := ParseURL("mysql+pymysql://app:s3cret@db.example:3307/user_management?tls=preferred")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "app" || cfg.Passwd != "s3cret" || cfg.Addr != "db.example:3307" || cfg.DBName != "user_management" || cfg.TLSConfig != "preferred" {
		t.Errorf("got %+v", cfg)
	}
	cfg, err = ParseURL("mysql://root@127.0.0.1/usersvc")
	if err != nil || cfg.Addr != "127.0.0.1:3306" || cfg.Passwd != "" {
		t.Errorf("defaults: %+v %v", cfg, err)
	}
	for _, bad := range []string{"postgres://x@y/z", "::::", "mysql://root@h/a/b"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		}
	}
	if r := Redacted("mysql://app:s3cret@h/db"); r != "mysql://app:xxxxx@h/db" {
		t.Errorf("Redacted = %q", r)
	}
}
