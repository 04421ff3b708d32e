package app

import (
	"compress/gzip"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/usersvc/usersvc/internal/mysqldb"
)

// dumpTool finds mariadb-dump or mysqldump, and the matching client.
func dumpTool(names ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of %s is installed (Debian: apt-get install mariadb-client)", strings.Join(names, ", "))
}

// clientArgs turns a driver config into client flags; the password travels in MYSQL_PWD, never
// on the command line (where ps would show it).
func clientArgs(cfg *mysql.Config) (args, env []string) {
	host, port, _ := strings.Cut(cfg.Addr, ":")
	args = []string{"--host=" + host, "--port=" + port, "--user=" + cfg.User, "--protocol=tcp"}
	env = os.Environ()
	if cfg.Passwd != "" {
		env = append(env, "MYSQL_PWD="+cfg.Passwd)
	}
	return args, env
}

// runBackup: `usersvc backup --out FILE[.gz]` takes a consistent dump of the database (and of the
// vault's, when it is separate) with --single-transaction: InnoDB tables are read in one
// snapshot without locking writers.
func runBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", stderr)
	out := fs.String("out", "", "file to write (gzip-compressed when it ends in .gz)")
	vaultOut := fs.String("vault-out", "", "file for the vault database's dump, required when VAULT_DATABASE_URL is set")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	if cfg.VaultDB != nil && *vaultOut == "" {
		return errors.New("the vault is in its own database (VAULT_DATABASE_URL): give --vault-out too")
	}
	start := time.Now()
	if err := dump(ctx, cfg.DB, *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup of %s written to %s in %s\n", cfg.DB.DBName, *out, time.Since(start).Round(time.Millisecond))
	if cfg.VaultDB != nil {
		if err := dump(ctx, cfg.VaultDB, *vaultOut); err != nil {
			return fmt.Errorf("vault: %w", err)
		}
		fmt.Fprintf(stdout, "backup of the vault %s written to %s\n", cfg.VaultDB.DBName, *vaultOut)
	}
	fmt.Fprintln(stdout, "the Aadhaar/PAN entries in it are encrypted: keep PII_ENCRYPTION_KEYS and BLIND_INDEX_KEY (not in the dump) to restore a usable service")
	return nil
}

func dump(ctx context.Context, cfg *mysql.Config, path string) (err error) {
	tool, err := dumpTool("mariadb-dump", "mysqldump")
	if err != nil {
		return err
	}
	args, env := clientArgs(cfg)
	args = append(args, "--single-transaction", "--quick", "--routines", "--triggers", "--hex-blob",
		"--no-tablespaces", "--default-character-set=utf8mb4", cfg.DBName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	var w io.Writer = f
	var gz *gzip.Writer
	if strings.HasSuffix(path, ".gz") {
		gz = gzip.NewWriter(f)
		w = gz
	}
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env, cmd.Stdout = env, w
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, strings.TrimSpace(stderr.String()))
	}
	if gz != nil {
		return gz.Close()
	}
	return nil
}

// runRestore: `usersvc restore --in FILE[.gz]` loads a dump into the database DATABASE_URL
// names, creating it if missing; it refuses a database that already has tables.
func runRestore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", stderr)
	in := fs.String("in", "", "dump to load (gzip-compressed when it ends in .gz)")
	vault := fs.Bool("vault", false, "restore into VAULT_DATABASE_URL instead of DATABASE_URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" {
		return errors.New("--in is required")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	target := cfg.DB
	if *vault {
		if cfg.VaultDB == nil {
			return errors.New("--vault needs VAULT_DATABASE_URL")
		}
		target = cfg.VaultDB
	}
	server := target.Clone()
	server.DBName = ""
	db, err := mysqldb.Open(ctx, server, mysqldb.PoolConfig{MaxOpen: 1, MaxIdle: 1})
	if err != nil {
		return err
	}
	defer db.Close()
	if n, err := tableCount(ctx, db, target.DBName); err != nil {
		return err
	} else if n > 0 {
		return fmt.Errorf("database %s already has %d tables: restore into a new, empty database", target.DBName, n)
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+strings.ReplaceAll(target.DBName, "`", "``")+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(*in, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return err
		}
		r = gz
	}
	tool, err := dumpTool("mariadb", "mysql")
	if err != nil {
		return err
	}
	cargs, env := clientArgs(target)
	cmd := exec.CommandContext(ctx, tool, append(cargs, "--default-character-set=utf8mb4", target.DBName)...)
	cmd.Env, cmd.Stdin = env, r
	var serr strings.Builder
	cmd.Stderr = &serr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, strings.TrimSpace(serr.String()))
	}
	fmt.Fprintf(stdout, "restored %s into %s in %s\n", *in, target.DBName, time.Since(start).Round(time.Millisecond))
	return nil
}

func tableCount(ctx context.Context, db *sql.DB, name string) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", name).Scan(&n)
	return n, err
}
