package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usersvc/usersvc/internal/bench"
	"github.com/usersvc/usersvc/internal/config"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/search"
	"github.com/usersvc/usersvc/internal/seed"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
)

// openForMaintenance loads the configuration with the vault keys and opens the databases.
func openForMaintenance(ctx context.Context, getenv func(string) string) (config.Config, *sql.DB, *vault.Vault, func(), error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return cfg, nil, nil, nil, err
	}
	if cfg.Keys == nil {
		return cfg, nil, nil, nil, errors.New("PII_ENCRYPTION_KEYS and BLIND_INDEX_KEY are required")
	}
	db, err := mysqldb.Open(ctx, cfg.DB, mysqldb.PoolConfig{MaxOpen: 4, MaxIdle: 4})
	if err != nil {
		return cfg, nil, nil, nil, err
	}
	v, vdb, err := openVault(ctx, cfg)
	if err != nil {
		db.Close()
		return cfg, nil, nil, nil, err
	}
	return cfg, db, v, func() {
		if vdb != nil {
			vdb.Close()
		}
		db.Close()
	}, nil
}

// runKeys: `usersvc keys rotate` re-encrypts the vault under the active (last) key.
func runKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New("usage: usersvc keys rotate [--batch 500]")
	}
	fs := newFlagSet("keys rotate", stderr)
	batch := fs.Int("batch", 500, "entries re-encrypted per transaction")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, db, _, closeAll, err := openForMaintenance(ctx, getenv)
	if err != nil {
		return err
	}
	defer closeAll()
	vdb := db
	if cfg.VaultDB != nil {
		if vdb, err = mysqldb.Open(ctx, cfg.VaultDB, mysqldb.PoolConfig{MaxOpen: 4, MaxIdle: 4}); err != nil {
			return err
		}
		defer vdb.Close()
	}
	start := time.Now()
	done, err := vault.Rotate(ctx, vdb, cfg.Keys, *batch, func(p vault.RotateProgress) {
		fmt.Fprintf(stdout, "re-encrypted %d, %d left\n", p.Done, p.Remaining)
	})
	fmt.Fprintf(stdout, "rotation to key %q: %d entries re-encrypted in %s\n", cfg.Keys.ActiveKeyID(), done, time.Since(start).Round(time.Millisecond))
	if err == nil {
		fmt.Fprintln(stdout, "every entry is under the active key: older keys can be removed from PII_ENCRYPTION_KEYS")
	}
	return err
}

// runPurge: `usersvc purge --deleted-before 30d` erases users past the retention period.
func runPurge(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("purge", stderr)
	before := fs.String("deleted-before", "30d", "erase users soft-deleted longer ago than this (e.g. 30d, 12h)")
	batch := fs.Int("batch", 100, "users per batch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	age, err := parseAge(*before)
	if err != nil {
		return fmt.Errorf("--deleted-before: %w", err)
	}
	cfg, db, v, closeAll, err := openForMaintenance(ctx, getenv)
	if err != nil {
		return err
	}
	defer closeAll()
	// Erasure also deletes the stored Idempotency-Key responses about the person, in Redis.
	rdb, err := openRedis(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	cutoff := time.Now().UTC().Add(-age)
	svc := users.NewService(db, v, nil).WithErasureOf(forgetStored(newIdempotencyStore(cfg, rdb)))
	res, err := svc.PurgeDeletedBefore(ctx, users.Caller{Actor: "system:purge"}, cutoff, *batch, func(p users.PurgeProgress) {
		fmt.Fprintf(stdout, "erased %d (failed %d)\n", p.Erased, p.Failed)
	})
	fmt.Fprintf(stdout, "purge of users soft-deleted before %s: %d erased, %d failed\n", cutoff.Format(time.RFC3339), res.Erased, res.Failed)
	if err == nil && res.Failed > 0 {
		err = fmt.Errorf("%d users could not be erased; see above and run again", res.Failed)
	}
	return err
}

// runReindex: `usersvc reindex` rebuilds the search index (search.Rebuild).
func runReindex(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if err := newFlagSet("reindex", stderr).Parse(args); err != nil {
		return err
	}
	_, db, err := openMain(ctx, getenv, 2)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := search.Rebuild(ctx, db, nil)
	if err == nil {
		fmt.Fprintf(stdout, "search index rebuilt: %d users indexed\n", n)
	}
	return err
}

// parseAge accepts Go durations and a days suffix (30d).
func parseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, errors.New("must look like 30d or 72h")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, errors.New("must look like 30d or 72h")
	}
	return d, nil
}

// runSeed: `usersvc seed --count N` bulk-loads valid users for benchmarks.
func runSeed(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("seed", stderr)
	count := fs.Int("count", 1000, "users to load")
	workers := fs.Int("workers", runtime.NumCPU(), "parallel transactions (more than the cores only adds contention)")
	batch := fs.Int("batch", 16384, "users per transaction and per search segment")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *count < 1 {
		return errors.New("--count must be at least 1")
	}
	if *batch < 1 || *batch > 65536 {
		return errors.New("--batch must be 1 to 65536")
	}
	_, db, v, closeAll, err := openForMaintenance(ctx, getenv)
	if err != nil {
		return err
	}
	defer closeAll()
	db.SetMaxOpenConns(*workers + 1)
	_, err = seed.Run(ctx, db, v, seed.Options{Count: *count, Workers: *workers, Batch: *batch, Out: stderr})
	return err
}

// runBench: `usersvc bench` drives a running service and the database, and prints the table.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	url := fs.String("url", "http://127.0.0.1:8000", "the running service")
	key := fs.String("key", getenv("USERSVC_API_KEY"), "API key with users:read, users:write, users:delete (default $USERSVC_API_KEY)")
	conc := fs.String("concurrency", "16", "concurrent clients; a comma-separated list runs the whole suite at each")
	dur := fs.Duration("duration", 10*time.Second, "time per endpoint")
	readme := fs.String("readme", "", "rewrite the table between the bench markers of this file")
	only := fs.String("only", "", "measure only the endpoints whose name contains this")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		return errors.New("--key (or USERSVC_API_KEY) is required")
	}
	var levels []int
	for _, f := range strings.Split(*conc, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			return fmt.Errorf("--concurrency: %q is not a positive number", f)
		}
		levels = append(levels, c)
	}
	// The vault keys too: the bench also runs the service's create in-process (no HTTP).
	_, db, v, closeAll, err := openForMaintenance(ctx, getenv)
	if err != nil {
		return err
	}
	defer closeAll()
	db.SetMaxOpenConns(slices.Max(levels) + 2)
	svc := users.NewService(db, v, nil)
	var tables []string
	for _, c := range levels {
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM users WHERE is_deleted = FALSE").Scan(&n); err != nil {
			return err
		}
		o := bench.Options{URL: strings.TrimRight(*url, "/"), Key: *key, DB: db, Service: svc, Concurrency: c, Duration: *dur, Out: stderr, Only: *only}
		rows, rss, err := bench.Run(ctx, o)
		if err != nil {
			return err
		}
		tables = append(tables, bench.Table(rows, rss, o, n))
	}
	table := strings.Join(tables, "\n")
	fmt.Fprint(stdout, table)
	if *readme != "" {
		return replaceBetween(*readme, "<!-- bench:start -->", "<!-- bench:end -->", table)
	}
	return nil
}

func replaceBetween(path, start, end, content string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, start), strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s ... %s markers", path, start, end)
	}
	return os.WriteFile(path, []byte(s[:i+len(start)]+"\n"+content+s[j:]), 0o644)
}
