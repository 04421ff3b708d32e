package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/usersvc/usersvc/internal/httpapi"
	"github.com/usersvc/usersvc/internal/importer"
	"github.com/usersvc/usersvc/internal/users"
)

// runImport: `usersvc import FILE` creates the users of an NDJSON or CSV file, with a progress
// bar on stderr and a result per line (docs/api.md, "Bulk import").
func runImport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import", stderr)
	format := fs.String("format", "", "ndjson or csv (default: from the file's extension, .csv or else ndjson)")
	resultsPath := fs.String("results", "", "write every line's result to this NDJSON file (default: only the lines not created, on stdout)")
	workers := fs.Int("workers", 4, "chunks worked on at once")
	chunk := fs.Int("chunk", 2000, "lines per chunk (one transaction)")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: usersvc import [--format ndjson|csv] [--results FILE] FILE")
	}
	path := fs.Arg(0)
	if *format == "" {
		*format = "ndjson"
		if strings.EqualFold(filepath.Ext(path), ".csv") {
			*format = "csv"
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	_, db, v, closeAll, err := OpenForTools(ctx, getenv)
	if err != nil {
		return err
	}
	defer closeAll()
	svc := users.NewService(db, v, nil)

	out := bufio.NewWriter(stdout)
	defer out.Flush()
	all := false
	if *resultsPath != "" {
		rf, err := os.Create(*resultsPath)
		if err != nil {
			return err
		}
		defer rf.Close()
		out = bufio.NewWriter(rf)
		defer out.Flush()
		all = true
	}
	enc := json.NewEncoder(out)
	counted := &countingReader{r: f}
	start := time.Now()
	bar := func(s importer.Summary, end string) {
		if *quiet {
			return
		}
		frac := float64(counted.n.Load()) / float64(max(st.Size(), 1))
		n := int(min(frac, 1) * 30)
		fmt.Fprintf(stderr, "\r[%s%s] %3.0f%% %d lines, %d created, %.0f/s%s", strings.Repeat("#", n), strings.Repeat(".", 30-n),
			min(frac, 1)*100, s.Lines, s.Created, float64(s.Lines)/max(time.Since(start).Seconds(), 0.001), end)
	}
	sum, err := importer.Run(ctx, svc, bufio.NewReaderSize(counted, 1<<20), importer.Options{
		Format: importer.Format(*format), DecodeJSON: httpapi.DecodeImportLine, Actor: "system:import", RequestID: "import-" + filepath.Base(path),
		Workers: *workers, Chunk: *chunk,
		Result: func(r importer.Result) error {
			if all || r.Status != importer.Created {
				return enc.Encode(r)
			}
			return nil
		},
		ChunkDone: func(s importer.Summary) { bar(s, " ") },
	})
	bar(sum, "\n")
	fmt.Fprintf(stderr, "imported %s in %s: %d lines, %d created, %d exist already, %d conflicts, %d invalid (%.0f lines/s)\n",
		path, time.Since(start).Round(time.Millisecond), sum.Lines, sum.Created, sum.Exists, sum.Conflict, sum.Invalid,
		float64(sum.Lines)/max(time.Since(start).Seconds(), 0.001))
	return err
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
