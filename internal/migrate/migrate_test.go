package migrate_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/usersvc/usersvc/internal/migrate"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/testdb"
	"github.com/usersvc/usersvc/schema"
)

func TestFreshDatabaseThenUpToDate(t *testing.T) {
	ctx := context.Background()
	srv, err := testdb.Server(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := srv.Clone()
	cfg.DBName = "usersvc_test_migrate_fresh"
	testdb.Drop(cfg)
	t.Cleanup(func() { testdb.Drop(cfg) })

	// Dry run against a missing database plans the database and both tables, changes nothing.
	var out bytes.Buffer
	res, err := migrate.Run(ctx, cfg, schema.Files, migrate.Options{DryRun: true, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(res.Statements, "\n")
	for _, want := range []string{"CREATE DATABASE", "CREATE TABLE `users`", "CREATE TABLE `user_audit`"} {
		if !strings.Contains(plan, want) {
			t.Errorf("dry-run plan lacks %q:\n%s", want, plan)
		}
	}
	if res.Applied || res.CreatedDatabase {
		t.Fatalf("dry run applied something: %+v", res)
	}

	// The real run creates the database and applies the plan.
	res, err = migrate.Run(ctx, cfg, schema.Files, migrate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Applied || !res.CreatedDatabase {
		t.Fatalf("first run: %+v", res)
	}

	// Afterwards the plan is empty: the schema files and the live database agree.
	out.Reset()
	res, err = migrate.Run(ctx, cfg, schema.Files, migrate.Options{DryRun: true, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Statements) != 0 || !strings.Contains(out.String(), migrate.UpToDate) {
		t.Fatalf("second run planned %q, printed %q", res.Statements, out.String())
	}
}

func TestAddColumnAndRefuseDestructiveDrop(t *testing.T) {
	ctx := context.Background()
	cfg := testdb.New(t, "migrate")

	extra := fstest.MapFS{}
	names, _ := fs.Glob(schema.Files, "*.sql")
	for _, n := range names {
		b, err := schema.Files.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		extra[n] = &fstest.MapFile{Data: b}
	}
	extra["zz_notes.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE notes (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, body VARCHAR(100) NOT NULL, " +
		"KEY idx_notes_body (body)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;")}
	if _, err := migrate.Run(ctx, cfg, extra, migrate.Options{}); err != nil {
		t.Fatal(err)
	}
	// Dropping an empty table is not destructive.
	res, err := migrate.Run(ctx, cfg, schema.Files, migrate.Options{DryRun: true})
	if err != nil {
		t.Fatalf("drop of an empty table refused: %v", err)
	}
	if len(res.Statements) != 1 || !strings.Contains(res.Statements[0], "DROP TABLE `notes`") {
		t.Fatalf("plan = %q", res.Statements)
	}

	// With a row in it, dropping it is refused unless allowed.
	db, err := mysqldb.Open(ctx, cfg, mysqldb.PoolConfig{MaxOpen: 1, MaxIdle: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "INSERT INTO notes (body) VALUES ('keep me')"); err != nil {
		t.Fatal(err)
	}
	_, err = migrate.Run(ctx, cfg, schema.Files, migrate.Options{})
	if !errors.Is(err, migrate.ErrDestructive) || !strings.Contains(err.Error(), "drop table notes") {
		t.Fatalf("want ErrDestructive naming the table, got %v", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM notes").Scan(&n); err != nil || n != 1 {
		t.Fatalf("notes lost: %d %v", n, err)
	}
	if _, err := migrate.Run(ctx, cfg, schema.Files, migrate.Options{AllowDestructive: true}); err != nil {
		t.Fatal(err)
	}
	res, err = migrate.Run(ctx, cfg, schema.Files, migrate.Options{DryRun: true})
	if err != nil || len(res.Statements) != 0 {
		t.Fatalf("after allowed drop: %q %v", res.Statements, err)
	}
}
