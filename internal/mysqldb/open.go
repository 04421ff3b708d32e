package mysqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"
)

// PoolConfig sizes the connection pool.
type PoolConfig struct {
	MaxOpen     int
	MaxIdle     int
	MaxLifetime time.Duration
	MaxIdleTime time.Duration
	// OpenDB, when set, opens the pool from the connector instead of sql.OpenDB (tracing wraps
	// the driver there).
	OpenDB func(driver.Connector) *sql.DB
}

// Open opens a pool for cfg and checks that the server answers.
func Open(ctx context.Context, cfg *mysql.Config, pool PoolConfig) (*sql.DB, error) {
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql config: %w", err)
	}
	open := pool.OpenDB
	if open == nil {
		open = sql.OpenDB
	}
	db := open(snapshotSessions{connector})
	db.SetMaxOpenConns(pool.MaxOpen)
	db.SetMaxIdleConns(pool.MaxIdle)
	db.SetConnMaxLifetime(pool.MaxLifetime)
	db.SetConnMaxIdleTime(pool.MaxIdleTime)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to mysql at %s: %w", cfg.Addr, err)
	}
	return db, nil
}

// snapshotSessions makes every new connection's session REPEATABLE READ, whatever the server's
// default, so that ReadSnapshot transactions need no SET TRANSACTION round trip of their own
// (writes still set READ COMMITTED for their transaction). The statement is standard SQL on
// MySQL 8.0 and MariaDB, whose session variables for it are named differently.
type snapshotSessions struct{ driver.Connector }

func (c snapshotSessions) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("mysql driver connection cannot execute statements")
	}
	if _, err := ex.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", nil); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}
