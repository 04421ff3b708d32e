// Package migrate brings a live MySQL/MariaDB database to the state described by schema/*.sql,
// declaratively, with the Atlas engine: the desired schema is loaded into a scratch "dev"
// database on the same server (so the server itself normalises types, defaults and charsets),
// both schemas are inspected, diffed, and the difference is planned as SQL and applied.
package migrate

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"time"

	atlasmigrate "ariga.io/atlas/sql/migrate"
	atlasmysql "ariga.io/atlas/sql/mysql"
	"ariga.io/atlas/sql/schema"
	"github.com/go-sql-driver/mysql"
)

// Options controls a run.
type Options struct {
	// DryRun prints the plan and changes nothing.
	DryRun bool
	// AllowDestructive permits dropping tables, columns or indexes of tables that hold rows.
	AllowDestructive bool
	// Out receives the human-readable plan. May be nil.
	Out io.Writer
}

// Result describes what a run planned.
type Result struct {
	// Statements is the planned SQL, in order. Empty when the schema is up to date.
	Statements []string
	// Applied is true when the statements were executed.
	Applied bool
	// CreatedDatabase is true when the target database did not exist and was created.
	CreatedDatabase bool
}

// ErrDestructive is returned when the plan drops something that holds data and
// Options.AllowDestructive is false.
var ErrDestructive = errors.New("refusing destructive changes")

// UpToDate is the message printed when nothing needs to change.
const UpToDate = "schema is up to date"

const (
	charsetClause = "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
	lockName      = "usersvc_migrate"
)

// Run migrates the database named by target.DBName to the schema in files (*.sql, applied in
// lexical order). It creates the target database if it is missing. Concurrent runs against one
// database (several replicas starting at once) are serialised by a server-side named lock.
func Run(ctx context.Context, target *mysql.Config, files fs.FS, opts Options) (Result, error) {
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	if target.DBName == "" {
		return Result{}, errors.New("the database URL names no database")
	}
	server, err := openDB(ctx, target, "", false)
	if err != nil {
		return Result{}, err
	}
	defer server.Close()

	var res Result
	exists, err := databaseExists(ctx, server, target.DBName)
	if err != nil {
		return res, err
	}
	if !exists {
		stmt := "CREATE DATABASE " + quoteIdent(target.DBName) + " " + charsetClause
		if opts.DryRun {
			res.Statements = append(res.Statements, stmt)
			fmt.Fprintf(out, "-- create database %q\n%s;\n", target.DBName, stmt)
		} else {
			if _, err := server.ExecContext(ctx, stmt); err != nil {
				return res, fmt.Errorf("create database %s: %w", target.DBName, err)
			}
			res.CreatedDatabase = true
			fmt.Fprintf(out, "-- created database %s\n", target.DBName)
		}
	}

	desired, err := loadDesired(ctx, server, target, files)
	if err != nil {
		return res, err
	}

	var (
		current *schema.Schema
		drv     atlasmigrate.Driver
		db      *sql.DB
	)
	if exists || !opts.DryRun {
		db, err = openDB(ctx, target, target.DBName, false)
		if err != nil {
			return res, err
		}
		defer db.Close()
		// The named lock lives on a connection of its own (Atlas holds it until unlock).
		db.SetMaxOpenConns(4)
		if drv, err = atlasmysql.Open(db); err != nil {
			return res, fmt.Errorf("atlas: %w", err)
		}
		unlock, err := drv.Lock(ctx, lockName, 60*time.Second)
		if err != nil {
			return res, fmt.Errorf("acquire migration lock: %w", err)
		}
		defer func() { _ = unlock() }()
		if current, err = drv.InspectSchema(ctx, target.DBName, nil); err != nil {
			return res, fmt.Errorf("inspect %s: %w", target.DBName, err)
		}
	} else {
		// Dry run against a database that does not exist yet: plan from empty.
		current = schema.New(target.DBName)
		if drv, err = atlasmysql.Open(server); err != nil {
			return res, fmt.Errorf("atlas: %w", err)
		}
	}
	desired.Name = current.Name

	changes, err := drv.SchemaDiff(current, desired, schema.DiffSkipChanges(&schema.ModifySchema{}))
	if err != nil {
		return res, fmt.Errorf("diff schema: %w", err)
	}
	if len(changes) == 0 {
		if len(res.Statements) == 0 {
			fmt.Fprintln(out, UpToDate)
		}
		return res, nil
	}
	if !opts.AllowDestructive && db != nil {
		if drops, err := destructive(ctx, db, changes); err != nil {
			return res, err
		} else if len(drops) > 0 {
			return res, fmt.Errorf("%w: %s; rerun with --allow-destructive to apply them", ErrDestructive, strings.Join(drops, "; "))
		}
	}
	noQualifier := ""
	plan, err := drv.PlanChanges(ctx, "usersvc", changes, func(o *atlasmigrate.PlanOptions) {
		o.SchemaQualifier = &noQualifier
		o.Indent = "  "
	})
	if err != nil {
		return res, fmt.Errorf("plan changes: %w", err)
	}
	for _, c := range plan.Changes {
		res.Statements = append(res.Statements, c.Cmd)
		if c.Comment != "" {
			fmt.Fprintf(out, "-- %s\n", c.Comment)
		}
		fmt.Fprintf(out, "%s;\n", c.Cmd)
	}
	if opts.DryRun {
		fmt.Fprintln(out, "-- dry run: nothing was applied")
		return res, nil
	}
	for _, c := range plan.Changes {
		if _, err := db.ExecContext(ctx, c.Cmd, c.Args...); err != nil {
			return res, fmt.Errorf("apply %q: %w", firstLine(c.Cmd), err)
		}
	}
	res.Applied = true
	fmt.Fprintf(out, "-- applied %d statement(s)\n", len(plan.Changes))
	return res, nil
}

// loadDesired executes the schema files in a scratch database and inspects the result.
func loadDesired(ctx context.Context, server *sql.DB, target *mysql.Config, files fs.FS) (*schema.Schema, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list schema files: %w", err)
	}
	if len(names) == 0 {
		return nil, errors.New("no schema files (*.sql) found")
	}
	sort.Strings(names)
	devName := devDatabaseName(target.DBName)
	if _, err := server.ExecContext(ctx, "CREATE DATABASE "+quoteIdent(devName)+" "+charsetClause); err != nil {
		return nil, fmt.Errorf("create scratch database %s (the migrating user needs CREATE and DROP on the server): %w", devName, err)
	}
	defer func() {
		// Drop even when ctx was cancelled.
		dropCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = server.ExecContext(dropCtx, "DROP DATABASE IF EXISTS "+quoteIdent(devName))
	}()
	dev, err := openDB(ctx, target, devName, true)
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	for _, name := range names {
		body, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, err
		}
		if _, err := dev.ExecContext(ctx, string(body)); err != nil {
			return nil, fmt.Errorf("schema file %s: %w", name, err)
		}
	}
	drv, err := atlasmysql.Open(dev)
	if err != nil {
		return nil, fmt.Errorf("atlas: %w", err)
	}
	desired, err := drv.InspectSchema(ctx, devName, nil)
	if err != nil {
		return nil, fmt.Errorf("inspect scratch database: %w", err)
	}
	return desired, nil
}

// destructive lists drops of tables, columns and indexes whose table holds rows.
func destructive(ctx context.Context, db *sql.DB, changes []schema.Change) ([]string, error) {
	var drops []string
	hasRows := func(table string) (bool, error) {
		var one int
		err := db.QueryRowContext(ctx, "SELECT 1 FROM "+quoteIdent(table)+" LIMIT 1").Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	}
	for _, c := range changes {
		var table string
		var what []string
		switch c := c.(type) {
		case *schema.DropTable:
			table, what = c.T.Name, []string{"drop table " + c.T.Name}
		case *schema.ModifyTable:
			table = c.T.Name
			for _, sc := range c.Changes {
				switch sc := sc.(type) {
				case *schema.DropColumn:
					what = append(what, "drop column "+c.T.Name+"."+sc.C.Name)
				case *schema.DropIndex:
					what = append(what, "drop index "+c.T.Name+"."+sc.I.Name)
				}
			}
		}
		if len(what) == 0 {
			continue
		}
		full, err := hasRows(table)
		if err != nil {
			return nil, fmt.Errorf("check rows of %s: %w", table, err)
		}
		if full {
			for _, w := range what {
				drops = append(drops, w+" (table has rows)")
			}
		}
	}
	return drops, nil
}

func openDB(ctx context.Context, base *mysql.Config, dbName string, multi bool) (*sql.DB, error) {
	cfg := base.Clone()
	cfg.DBName = dbName
	cfg.MultiStatements = multi
	cfg.InterpolateParams = false
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(connector)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to mysql at %s: %w", cfg.Addr, err)
	}
	return db, nil
}

func databaseExists(ctx context.Context, db *sql.DB, name string) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up database %s: %w", name, err)
	}
	return n > 0, nil
}

func devDatabaseName(target string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := target
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	return prefix + "_atlas_dev_" + hex.EncodeToString(b)
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}
