// Package app wires the service together: configuration, MySQL, the HTTP server, and the
// command-line subcommands of the usersvc binary.
package app

import (
	"context"
	"crypto/tls"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/usersvc/usersvc/internal/config"
	"github.com/usersvc/usersvc/internal/livecounts"
	"github.com/usersvc/usersvc/internal/migrate"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/search"
	"github.com/usersvc/usersvc/internal/sqlcgen"
	"github.com/usersvc/usersvc/schema"
)

// Version and Revision are set at build time with -ldflags "-X
// github.com/usersvc/usersvc/internal/app.Version=... -X ...Revision=<commit>" (make build does).
// Without Revision, the commit comes from the Go build info, which builds with -buildvcs=false
// (as GOFLAGS sets on some machines) do not carry.
var (
	Version  = "dev"
	Revision = ""
)

const usage = `usersvc: user-management REST service

Usage:
  usersvc [serve]                      serve the API (the default command)
  usersvc migrate [--dry-run] [--allow-destructive]
                                       bring the database to schema/*.sql (embedded) with Atlas
  usersvc apikey create --name NAME --scopes a,b
                                       create an API key; prints the key alone on stdout
  usersvc apikey list                  list keys (never their secrets)
  usersvc apikey revoke NAME-or-ID     revoke a key
  usersvc dev-init [--env-file .env.local]
                                       local development: generate secrets and a local key into the
                                       env file (git-ignored) unless present; used by make run
  usersvc import [--format ndjson|csv] [--results FILE] FILE
                                       create the users of a file, a result per line (re-runs are safe)
  usersvc events tail [--from $|0] [--count N]
                                       print the change events of the Redis Stream as JSON lines
  usersvc events replay --from-id N    publish the changes from event_id N on again
  usersvc keys rotate [--batch 500]    re-encrypt every vault entry under the active key (resumable)
  usersvc reindex                      rebuild the search index from the users table in one
                                       transaction (once after upgrading: drops old postings)
  usersvc purge --deleted-before 30d [--batch 100]
                                       erase users soft-deleted longer ago than that (retention)
  usersvc backup --out FILE[.gz] [--vault-out FILE]
                                       consistent dump (--single-transaction) with mariadb-dump/mysqldump
  usersvc restore --in FILE[.gz] [--vault]
                                       load a dump into the (new, empty) database DATABASE_URL names
  usersvc healthcheck [--url URL]      exit 0 when /healthz answers 200 (Docker HEALTHCHECK)
  usersvc version                      print the version
  usersvc help | --help                this text

Configuration comes from the environment:
`

// Run is the whole program; main only calls it. ctx is cancelled on SIGINT/SIGTERM.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", args[1:]
	if len(rest) > 0 && (!strings.HasPrefix(rest[0], "-") || rest[0] == "-h" || rest[0] == "--help" || rest[0] == "-help") {
		cmd, rest = rest[0], rest[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "apikey":
		return runAPIKey(ctx, rest, getenv, stdout, stderr)
	case "import":
		return runImport(ctx, rest, getenv, stdout, stderr)
	case "events":
		return runEvents(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return runKeys(ctx, rest, getenv, stdout, stderr)
	case "reindex":
		return runReindex(ctx, rest, getenv, stdout, stderr)
	case "purge":
		return runPurge(ctx, rest, getenv, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, rest, getenv, stderr)
	case "backup":
		return runBackup(ctx, rest, getenv, stdout, stderr)
	case "restore":
		return runRestore(ctx, rest, getenv, stdout, stderr)
	case "dev-init":
		return runDevInit(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		printUsage(stdout)
		return nil
	default:
		printUsage(stderr)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	for _, v := range config.Variables {
		fmt.Fprintf(w, "  %-26s %s (default: %s)\n", v.Name, v.Description, v.Default)
	}
}

func versionString() string { return "usersvc " + Version + " (" + revision() + ")" }

func revision() string {
	if Revision != "" {
		return Revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("usersvc "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	dry := fs.Bool("dry-run", false, "print the planned SQL and change nothing")
	destructive := fs.Bool("allow-destructive", false, "allow dropping tables, columns or indexes of tables that hold rows")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	opts := migrate.Options{DryRun: *dry, AllowDestructive: *destructive, Out: stdout}
	fmt.Fprintf(stderr, "migrating %s\n", mysqldb.Redacted(cfg.DatabaseURL))
	if _, err := migrate.Run(ctx, cfg.DB, schema.Files, opts); err != nil {
		return err
	}
	if !*dry {
		if err := initLiveCount(ctx, cfg, stdout); err != nil {
			return err
		}
		if err := initSearchIndex(ctx, cfg, stdout); err != nil {
			return err
		}
	}
	if cfg.VaultDB != nil {
		fmt.Fprintf(stderr, "migrating the vault %s\n", mysqldb.Redacted(cfg.VaultDatabaseURL))
		if _, err := migrate.Run(ctx, cfg.VaultDB, schema.VaultFiles, opts); err != nil {
			return fmt.Errorf("vault: %w", err)
		}
	}
	return nil
}

// initLiveCount fills the maintained live-user counts (user_time_counts) when they are
// empty (the table is new, or the database was restored from a dump without it).
func initLiveCount(ctx context.Context, cfg config.Config, out io.Writer) error {
	db, err := mysqldb.Open(ctx, cfg.DB, mysqldb.PoolConfig{MaxOpen: 2, MaxIdle: 1})
	if err != nil {
		return err
	}
	defer db.Close()
	totals, err := sqlcgen.New(db).CountTotalRows(ctx)
	if err != nil {
		return err
	}
	days, err := sqlcgen.New(db).CountUserTimeCountRows(ctx)
	if err != nil {
		return err
	}
	live, err := sqlcgen.New(db).CountLiveUsersMaintained(ctx)
	if err != nil {
		return err
	}
	// The total and the time counts are filled together: when either is missing (a new table, or
	// a dump without it).
	if totals > 0 && (days > 0 || live == 0) {
		return nil
	}
	n, err := livecounts.Recount(ctx, db)
	if err == nil {
		fmt.Fprintf(out, "-- counted %d live users into user_time_counts\n", n)
	}
	return err
}

// initSearchIndex builds the search index when users exist but the index is empty (the tables are
// new, or the database was restored without them).
func initSearchIndex(ctx context.Context, cfg config.Config, out io.Writer) error {
	db, err := mysqldb.Open(ctx, cfg.DB, mysqldb.PoolConfig{MaxOpen: 2, MaxIdle: 1})
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = search.Reindex(ctx, db, out)
	return err
}

// runHealthcheck probes the local /healthz, for images without a shell or curl.
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := newFlagSet("healthcheck", stderr)
	port := getenv("PORT")
	if port == "" {
		port = "8000"
	}
	scheme := "http"
	if getenv("TLS_CERT_FILE") != "" {
		scheme = "https"
	}
	url := fs.String("url", scheme+"://127.0.0.1:"+port+"/healthz", "URL to probe")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	// The certificate names the public host, not 127.0.0.1: liveness only needs an answer.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // local liveness probe
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", *url, resp.StatusCode)
	}
	return nil
}

// loadConfig reads the configuration; the error names every bad variable.
func loadConfig(getenv func(string) string) (config.Config, error) {
	cfg, err := config.Load(getenv)
	if err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

// openMain loads the configuration and opens a small pool on the main database, for the
// command-line tools.
func openMain(ctx context.Context, getenv func(string) string, conns int) (config.Config, *sql.DB, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return cfg, nil, err
	}
	db, err := mysqldb.Open(ctx, cfg.DB, mysqldb.PoolConfig{MaxOpen: conns, MaxIdle: conns})
	return cfg, db, err
}
