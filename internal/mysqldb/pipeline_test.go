package mysqldb

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A question mark that is not a placeholder would shift every later argument of the batch: Run
// refuses such a pipeline before it reaches a connection (db is nil here).
func TestPipelineRefusesStrayQuestionMarks(t *testing.T) {
	ctx := context.Background()
	p := NewPipeline()
	if _, err := p.ExecContext(ctx, "INSERT INTO t (a) VALUES (?)", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ExecContext(ctx, "-- why?\nINSERT INTO t (a) VALUES (?)", 2); err != nil {
		t.Fatal(err)
	}
	err := p.Run(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "statement 2 has 2 question marks for 1 arguments") {
		t.Fatalf("Run = %v, want the stray question mark of statement 2 reported", err)
	}
}

// Reads cannot be pipelined: their results would be needed before the pipeline runs.
func TestPipelineRefusesReads(t *testing.T) {
	p := NewPipeline()
	if _, err := p.Queries().ListSearchPending(context.Background()); !errors.Is(err, errNotPipelined) {
		t.Fatalf("a :many accessor on a pipeline = %v", err)
	}
	res, _ := p.ExecContext(context.Background(), "DELETE FROM t")
	if _, err := res.LastInsertId(); !errors.Is(err, errNotPipelined) {
		t.Fatalf("LastInsertId before Run = %v", err)
	}
	if n, err := res.RowsAffected(); n != -1 || err != nil {
		t.Fatalf("RowsAffected before Run = %d, %v; want -1 (unknown), so that :execrows accessors record", n, err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("QueryRowContext did not panic")
		}
	}()
	p.QueryRowContext(context.Background(), "SELECT 1")
}
