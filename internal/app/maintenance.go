package app

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/usersvc/usersvc/internal/config"
	"github.com/usersvc/usersvc/internal/mysqldb"
	"github.com/usersvc/usersvc/internal/search"
	"github.com/usersvc/usersvc/internal/users"
	"github.com/usersvc/usersvc/internal/vault"
)

// OpenForTools loads the configuration with the vault keys and opens the main database and the
// vault, for the command-line tools (the maintenance commands here, and usersvc-bench). The
// returned function closes both.
func OpenForTools(ctx context.Context, getenv func(string) string) (config.Config, *sql.DB, *vault.Vault, func(), error) {
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
	v, vdb, err := openVault(ctx, cfg, nil)
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
	cfg, db, _, closeAll, err := OpenForTools(ctx, getenv)
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
	cfg, db, v, closeAll, err := OpenForTools(ctx, getenv)
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
