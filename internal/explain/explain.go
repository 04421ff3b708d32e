// Package explain runs EXPLAIN on the statements of queries/*.sql, for the DBA test and for
// `make explain`.
package explain

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"

	"github.com/usersvc/usersvc/queries"
)

// Statement is one named statement of queries/*.sql, with sqlc's macros replaced by '?'.
type Statement struct {
	Name, File, SQL string
	Params          int
}

var (
	nameLine = regexp.MustCompile(`(?m)^-- name: (\w+) :\w+\s*$`)
	macro    = regexp.MustCompile(`sqlc\.(arg|narg|slice)\([^)]*\)`)
	embed    = regexp.MustCompile(`sqlc\.embed\((\w+)\)`)
)

// Statements parses every queries/*.sql file.
func Statements() ([]Statement, error) {
	names, err := fs.Glob(queries.Files, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []Statement
	for _, file := range names {
		b, err := fs.ReadFile(queries.Files, file)
		if err != nil {
			return nil, err
		}
		text := string(b)
		locs := nameLine.FindAllStringSubmatchIndex(text, -1)
		for i, loc := range locs {
			end := len(text)
			if i+1 < len(locs) {
				end = locs[i+1][0]
			}
			var lines []string
			for _, l := range strings.Split(text[loc[1]:end], "\n") {
				if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
					lines = append(lines, l)
				}
			}
			q := strings.TrimSuffix(strings.TrimSpace(strings.Join(lines, "\n")), ";")
			q = macro.ReplaceAllString(q, "?")
			q = embed.ReplaceAllString(q, "$1.*")
			out = append(out, Statement{Name: text[loc[2]:loc[3]], File: file, SQL: q, Params: strings.Count(q, "?")})
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}

// Row is one line of an EXPLAIN.
type Row struct {
	Table, Type, Key, Extra string
	Rows                    int64
}

// Plan runs EXPLAIN for st with args.
func Plan(ctx context.Context, db *sql.DB, st Statement, args []any) ([]Row, error) {
	if len(args) != st.Params {
		return nil, fmt.Errorf("%s takes %d parameters, %d given", st.Name, st.Params, len(args))
	}
	rows, err := db.QueryContext(ctx, "EXPLAIN "+st.SQL, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []Row
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		var r Row
		for i, c := range cols {
			switch strings.ToLower(c) {
			case "table":
				r.Table = vals[i].String
			case "type":
				r.Type = vals[i].String
			case "key":
				r.Key = vals[i].String
			case "extra":
				r.Extra = vals[i].String
			case "rows":
				_, _ = fmt.Sscan(vals[i].String, &r.Rows)
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
