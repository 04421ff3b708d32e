package mysqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"

	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// MaxAttempts bounds how often InTx runs a unit of work that hit a deadlock or lock-wait timeout.
const MaxAttempts = 3

// InTx runs fn inside one transaction and commits it. The transaction is rolled back when fn
// fails, when ctx is cancelled, or when commit fails, and the commit error is returned. A
// deadlock (1213) or lock-wait timeout (1205) reruns the whole unit, at most MaxAttempts times.
// fn must not have side effects outside the transaction, since it may run more than once.
//
// fn gets the transaction's context: its statements and spans are children of the transaction's
// span when the request is traced (internal/tracing).
func InTx(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(ctx context.Context, q *sqlcgen.Queries) error) error {
	return InRawTx(ctx, db, opts, func(ctx context.Context, tx *sql.Tx) error { return fn(ctx, sqlcgen.New(tx)) })
}

// tracer names the transaction spans (a no-op until tracing is set up, internal/tracing).
var tracer = otel.Tracer("github.com/usersvc/usersvc/internal/mysqldb")

// InRawTx is InTx for the few callers that run statements sqlc cannot express (bulk loading):
// the same transaction handling and retry, with the *sql.Tx itself.
func InRawTx(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(ctx context.Context, tx *sql.Tx) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = runOnce(ctx, db, opts, fn)
		if err == nil || !errors.Is(err, ErrRetryable) || attempt == MaxAttempts {
			return err
		}
		backoff := time.Duration(attempt*attempt) * 10 * time.Millisecond
		backoff += time.Duration(rand.Int64N(int64(backoff)))
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (after %d attempts: %w)", ctx.Err(), attempt, err)
		case <-time.After(backoff):
		}
	}
}

func runOnce(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(ctx context.Context, tx *sql.Tx) error) (err error) {
	ctx, span := tracer.Start(ctx, "tx")
	defer func() {
		if err != nil {
			span.SetAttributes(attribute.Bool("usersvc.tx.rolled_back", true))
		}
		span.End()
	}()
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return Translate(fmt.Errorf("begin transaction: %w", err))
	}
	defer func() {
		if err != nil {
			// The transaction may already be gone (context cancelled, connection lost): the
			// error of interest is the one that brought us here.
			_ = tx.Rollback()
		}
	}()
	if err = fn(ctx, tx); err != nil {
		return Translate(err)
	}
	if err = tx.Commit(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			// database/sql may have rolled back already and report only ErrTxDone: say why.
			return fmt.Errorf("commit: %w (%w)", ctxErr, err)
		}
		return Translate(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// ReadCommitted is the isolation used for writes: no gap locks, so concurrent inserts of
// different users never deadlock on index gaps; row locks and unique keys still decide races.
var ReadCommitted = &sql.TxOptions{Isolation: sql.LevelReadCommitted}

// ReadSnapshot is used for reads that must be consistent across statements (a deep page's counts
// and walk, a search's segments and not-yet-indexed users); a page near the top needs none.
// It is REPEATABLE READ through the session (see Open), which saves a round trip per read.
var ReadSnapshot = &sql.TxOptions{ReadOnly: true}
