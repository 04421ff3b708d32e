package mysqldb

import "strings"

// MultiRow returns prefix followed by n copies of row, comma-separated: the text of a multi-row
// INSERT. sqlc cannot express a variable number of VALUES rows, so the few bulk statements (the
// seed's loads, the search index's segments) are composed with this, always with placeholders.
// Keep n x placeholders-per-row under MySQL's 65,535.
func MultiRow(prefix, row string, n int) string {
	return prefix + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}
