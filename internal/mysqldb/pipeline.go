package mysqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// ErrRefused wraps the server's error when it refused a statement of a Pipeline. Nothing of the
// pipeline's transaction is kept, so the caller may run the ordinary transaction instead.
var ErrRefused = errors.New("pipelined transaction refused")

// Pipeline runs a unit of work that only writes as one transaction in a single round trip. Its
// statements are made through the usual sqlc accessors (Queries), which it records instead of
// running; Run sends them, between START TRANSACTION and COMMIT, as one multi-statement query
// (ParseURL enables multiple statements; arguments are interpolated and escaped by the driver, as
// for every other statement). A unit of work that reads cannot be pipelined: the read accessors
// fail. Like InTx, the transaction is READ COMMITTED.
//
// When the server refuses a statement (a duplicate, a deadlock), it runs none after it; Run rolls
// the transaction back and returns an error wrapping ErrRefused, and the caller can run the
// ordinary, interactive transaction, which knows how to handle that case. The pipeline is the
// fast path of the common case, never the only path.
type Pipeline struct {
	stmts []string
	args  []any
	err   error
}

// NewPipeline returns an empty pipeline.
func NewPipeline() *Pipeline { return &Pipeline{} }

// Queries returns the sqlc accessors that record into p.
func (p *Pipeline) Queries() *sqlcgen.Queries { return sqlcgen.New(p) }

// errNotPipelined is returned by the accessors that read: their results would be needed before
// the pipeline runs.
var errNotPipelined = errors.New("pipeline: a statement that returns rows cannot be pipelined")

// ExecContext records one statement. Its result is known only after the pipeline runs: the
// Result it returns has no insert id (an error) and -1 rows affected, which sqlc's :execrows
// accessors pass on without failing; a unit of work that needs either cannot be pipelined.
func (p *Pipeline) ExecContext(_ context.Context, query string, args ...any) (sql.Result, error) {
	// The driver interpolates the arguments at the query's question marks: a question mark that is
	// not a placeholder (in a comment or a literal) would shift every later argument.
	if n := strings.Count(query, "?"); n != len(args) && p.err == nil {
		p.err = fmt.Errorf("pipeline: statement %d has %d question marks for %d arguments", len(p.stmts)+1, n, len(args))
	}
	p.stmts = append(p.stmts, strings.TrimSuffix(strings.TrimSpace(query), ";"))
	p.args = append(p.args, args...)
	return pendingResult{}, nil
}

// PrepareContext fails: a pipeline has no statements to prepare.
func (p *Pipeline) PrepareContext(context.Context, string) (*sql.Stmt, error) {
	return nil, errNotPipelined
}

// QueryContext fails: see errNotPipelined.
func (p *Pipeline) QueryContext(context.Context, string, ...any) (*sql.Rows, error) {
	return nil, errNotPipelined
}

// QueryRowContext panics: a *sql.Row cannot carry an error from outside database/sql, and a
// unit of work that reads is a programming error here, caught by any test that runs it.
func (p *Pipeline) QueryRowContext(context.Context, string, ...any) *sql.Row {
	panic(errNotPipelined)
}

type pendingResult struct{}

func (pendingResult) LastInsertId() (int64, error) { return 0, errNotPipelined }
func (pendingResult) RowsAffected() (int64, error) { return -1, nil }

// Flush sends p's statements in one round trip inside tx, an open transaction, and empties p:
// for the writes at the end of an interactive unit of work (after its reads and locks) that need
// no answer. When the server refuses one, the statements after it are not run and its error is
// returned; the caller's transaction handling rolls the whole unit back as usual.
func (p *Pipeline) Flush(ctx context.Context, tx *sql.Tx) error {
	stmts, args, err := p.stmts, p.args, p.err
	p.stmts, p.args, p.err = nil, nil, nil
	if err != nil || len(stmts) == 0 {
		return err
	}
	_, err = tx.ExecContext(ctx, strings.Join(stmts, ";\n"), args...)
	return err
}

// Run sends p's statements as one READ COMMITTED transaction on a connection of db.
func (p *Pipeline) Run(ctx context.Context, db *sql.DB) error {
	if p.err != nil {
		return p.err
	}
	if len(p.stmts) == 0 {
		return nil
	}
	text := "SET TRANSACTION ISOLATION LEVEL READ COMMITTED;\nSTART TRANSACTION;\n" +
		strings.Join(p.stmts, ";\n") + ";\nCOMMIT"
	conn, err := db.Conn(ctx)
	if err != nil {
		return Translate(fmt.Errorf("pipeline: %w", err))
	}
	defer func() { _ = conn.Close() }()
	_, err = conn.ExecContext(ctx, text, p.args...)
	if err == nil {
		return nil
	}
	var refused *mysql.MySQLError
	if errors.As(err, &refused) {
		// The server stopped at the refused statement, inside the transaction. Undo what ran
		// before it, so that the connection goes back to the pool with no transaction open: the
		// next START TRANSACTION on it would otherwise commit this one.
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr == nil {
			return fmt.Errorf("%w: %w", ErrRefused, Translate(err))
		}
	}
	// The connection failed, or the rollback did: what the server did is unknown here, and the
	// connection must not be used again. Closing it makes the server roll back whatever is open.
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	return Translate(fmt.Errorf("pipeline: %w", err))
}
