package mysqldb

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// Errors that Translate produces; business code tests them with errors.Is / errors.As.
var (
	// ErrRetryable means the server aborted the statement or transaction because of a deadlock
	// or lock-wait timeout; rerunning the whole transaction may succeed.
	ErrRetryable = errors.New("transaction aborted by a deadlock or lock-wait timeout")
	// ErrUnavailable means the server could not be reached or the connection broke.
	ErrUnavailable = errors.New("the database is unavailable")
)

// DuplicateKeyError is a violated unique key. Key is the index name from the schema. The server's
// own message is dropped because it quotes the duplicate value, which may be personal data.
type DuplicateKeyError struct{ Key string }

func (e *DuplicateKeyError) Error() string { return "duplicate value for unique key " + e.Key }

// MySQL server error numbers handled here.
const (
	erDupEntry        = 1062
	erLockWaitTimeout = 1205
	erLockDeadlock    = 1213
)

// Translate maps driver errors to the errors above. Other errors, sql.ErrNoRows included (each use
// case says what a missing row means: users.ErrNotFound), are returned unchanged.
func Translate(err error) error {
	if err == nil {
		return nil
	}
	var ne *net.OpError
	if errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return err
	}
	switch me.Number {
	case erDupEntry:
		return &DuplicateKeyError{Key: duplicateKeyName(me.Message)}
	case erLockWaitTimeout, erLockDeadlock:
		return fmt.Errorf("%w: mysql error %d", ErrRetryable, me.Number)
	}
	return err
}

// duplicateKeyName extracts the index from "Duplicate entry '...' for key 'users.uq_users_email'"
// (MySQL 8 prefixes the table, MariaDB does not).
func duplicateKeyName(msg string) string {
	i := strings.LastIndex(msg, "for key '")
	if i < 0 {
		return ""
	}
	name := strings.TrimSuffix(msg[i+len("for key '"):], "'")
	if j := strings.LastIndexByte(name, '.'); j >= 0 {
		name = name[j+1:]
	}
	return name
}
