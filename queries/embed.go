// Package queries embeds the SQL statements (queries/*.sql) that sqlc compiles, so that tests
// can EXPLAIN each of them as written.
package queries

import "embed"

// Files holds every *.sql file of this folder.
//
//go:embed *.sql
var Files embed.FS
