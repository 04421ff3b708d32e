// Package search answers "name or email contains q" (case- and accent-insensitive) from a
// trigram index kept in MySQL, without scanning users. See schema/users.sql (search_segments,
// users.search_dirty) for the tables and docs/database.md "Search index" for the behaviour.
//
// Every user has a small dense number, users.seq. For each trigram of a user's folded name and
// email, search_segments holds the user's seq in a Roaring bitmap. A query of three or more
// characters intersects the bitmaps of its trigrams; a two-character query unites every trigram
// that starts with it. Users changed since the last compaction are flagged users.search_dirty and
// added as candidates. Every candidate is then verified against its current users row, newest
// (highest seq) first, so results are exact: stale postings, deleted users and grams that occur
// in the text but not next to each other never reach the client.
package search

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Fold returns the form in which text is indexed and compared: Unicode compatibility
// decomposition, combining marks removed, case folded. "José ÁLVAREZ" folds to "jose alvarez".
func Fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToLower(s)
	}
	t := transform.Chain(norm.NFKD, runes.Remove(runes.In(unicode.Mn)), cases.Fold(), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		return strings.ToLower(s)
	}
	return out
}

// Matches reports whether a user's name or email contains the folded query.
func Matches(folded, name, email string) bool {
	return strings.Contains(Fold(name), folded) || strings.Contains(Fold(email), folded)
}

// pad ends the last two characters of a field, so that a two-character query that ends a field
// is still the prefix of one of its grams.
const pad = "\x00"

// DocGrams returns the distinct grams of a user's name and email: every three consecutive
// characters of each folded field, and its last two characters followed by pad.
func DocGrams(name, email string) []string {
	seen := make(map[string]struct{}, 48)
	var out []string
	for _, f := range []string{name, email} {
		for _, g := range fieldGrams(Fold(f)) {
			if _, ok := seen[g]; !ok {
				seen[g] = struct{}{}
				out = append(out, g)
			}
		}
	}
	return out
}

// fieldGrams returns the grams of one folded field, with repeats.
func fieldGrams(f string) []string {
	starts := make([]int, 0, len(f)+1)
	for i := range f {
		starts = append(starts, i)
	}
	n := len(starts)
	starts = append(starts, len(f))
	var out []string
	for i := 0; i+3 <= n; i++ {
		out = append(out, f[starts[i]:starts[i+3]])
	}
	if n >= 2 {
		out = append(out, f[starts[n-2]:]+pad)
	}
	return out
}

// MaxQueryGrams bounds the grams whose sizes a long query looks up (it then reads the rarest
// first). Fewer grams only widen the candidate set (verification keeps the result exact), so the
// grams are taken evenly across the query.
const MaxQueryGrams = 24

// Query is a folded search text and how the index is read for it.
type Query struct {
	Folded string
	// Grams are intersected (three or more characters), or, when empty, every gram in
	// [Lo, Hi) is united (two characters).
	Grams  []string
	Lo, Hi []byte
}

// ParseQuery folds text and picks the grams to read. It needs at least two folded characters.
func ParseQuery(text string) (Query, bool) {
	q := Query{Folded: Fold(text)}
	n := utf8.RuneCountInString(q.Folded)
	switch {
	case n < 2:
		return q, false
	case n == 2:
		q.Lo = []byte(q.Folded)
		q.Hi = bytes.Clone(q.Lo)
		q.Hi[len(q.Hi)-1]++ // the last byte of UTF-8 text is never 0xFF
		return q, true
	}
	all := fieldGrams(q.Folded)
	all = all[:len(all)-1] // the pad gram of the query itself is not in any field's middle
	seen := map[string]bool{}
	var distinct []string
	for _, g := range all {
		if !seen[g] {
			seen[g] = true
			distinct = append(distinct, g)
		}
	}
	if len(distinct) <= MaxQueryGrams {
		q.Grams = distinct
		return q, true
	}
	for i := 0; i < MaxQueryGrams; i++ {
		q.Grams = append(q.Grams, distinct[i*(len(distinct)-1)/(MaxQueryGrams-1)])
	}
	return q, true
}
