// Package benchtool is the command line of usersvc-bench: seed and bench, the tools that measure
// the service, kept out of the service's own binary.
package benchtool

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/usersvc/usersvc/internal/app"
	"github.com/usersvc/usersvc/internal/bench"
	"github.com/usersvc/usersvc/internal/seed"
	"github.com/usersvc/usersvc/internal/users"
)

const usage = `usersvc-bench: the tools that measure usersvc

Usage:
  usersvc-bench seed --count N [--workers <cores>] [--batch 16384]
                                       bulk-load N valid users (DATABASE_URL, the vault keys)
  usersvc-bench import-file --count N --out FILE
                                       write N valid users as an NDJSON import file (make bench-import)
  usersvc-bench bench [--url URL] [--key KEY] [--concurrency 16] [--duration 10s] [--out FILE]
                                       load-test a running service against the database's own limit
`

// Run is the whole program; main only calls it.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errors.New("a command is required")
	}
	switch cmd, rest := args[1], args[2:]; cmd {
	case "seed":
		return runSeed(ctx, rest, getenv, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, getenv, stdout, stderr)
	case "import-file":
		return runImportFile(rest, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("usersvc-bench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// runSeed: `usersvc-bench seed --count N` bulk-loads valid users for benchmarks.
func runSeed(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("seed", stderr)
	count := fs.Int("count", 1000, "users to load")
	workers := fs.Int("workers", runtime.NumCPU(), "parallel transactions (more than the cores only adds contention)")
	batch := fs.Int("batch", 16384, "users per transaction and per search segment")
	cpuProfile := fs.String("cpuprofile", "", "write the seed's CPU profile to this file (go tool pprof)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *count < 1 {
		return errors.New("--count must be at least 1")
	}
	if *batch < 1 || *batch > 65536 {
		return errors.New("--batch must be 1 to 65536")
	}
	_, db, v, closeAll, err := app.OpenForTools(ctx, getenv)
	if err != nil {
		return err
	}
	defer closeAll()
	db.SetMaxOpenConns(*workers + 1)
	// The seed allocates a batch's rows and statement text and drops them at commit: collecting
	// less often (GOGC 400) saves most of the garbage collector's fifth of the seed's CPU.
	debug.SetGCPercent(400)
	_, err = seed.Run(ctx, db, v, seed.Options{Count: *count, Workers: *workers, Batch: *batch, Out: stderr})
	return err
}

// runBench: `usersvc-bench bench` drives a running service and the database, and prints the table.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stderr)
	url := fs.String("url", "http://127.0.0.1:8000", "the running service")
	key := fs.String("key", getenv("USERSVC_API_KEY"), "API key with users:read, users:write, users:delete (default $USERSVC_API_KEY)")
	conc := fs.String("concurrency", "16", "concurrent clients; a comma-separated list runs the whole suite at each")
	dur := fs.Duration("duration", 10*time.Second, "time per endpoint")
	out := fs.String("out", "", "rewrite the table between the bench markers of this file (make bench: docs/performance.md)")
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
	_, db, v, closeAll, err := app.OpenForTools(ctx, getenv)
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
	if *out != "" {
		return replaceBetween(*out, "<!-- bench:start -->", "<!-- bench:end -->", table)
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

// runImportFile: `usersvc-bench import-file` writes an NDJSON file of valid, distinct users (the
// seed's people) for measuring `usersvc import`.
func runImportFile(args []string, stderr io.Writer) error {
	fs := newFlagSet("import-file", stderr)
	count := fs.Int("count", 1_000_000, "lines")
	out := fs.String("out", "", "the file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *count < 1 {
		return errors.New("usage: usersvc-bench import-file --count N --out FILE")
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	now := time.Now()
	tag := "i" + strconv.FormatInt(now.Unix()%100000, 36)
	enc := json.NewEncoder(w)
	for k, n := uint64(1), 0; n < *count; k++ {
		p, ok := seed.Person(k, tag, now)
		if !ok {
			continue
		}
		if err := enc.Encode(map[string]string{
			"name": p.Name, "email": p.Email.Display(), "primary_mobile": p.PrimaryMobile,
			"date_of_birth": p.DateOfBirth.Format(time.DateOnly), "place_of_birth": p.PlaceOfBirth,
			"aadhaar": p.Aadhaar.Digits(), "pan": p.PAN.Value(), "current_address": p.CurrentAddress,
			"permanent_address": p.PermanentAddress,
		}); err != nil {
			return err
		}
		n++
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %d users to %s\n", *count, *out)
	return f.Close()
}
