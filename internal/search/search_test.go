package search

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"Rajesh KUMAR":          "rajesh kumar",
		"José Álvarez":          "jose alvarez",
		"ZOË Ñandú":             "zoe nandu",
		"Straße":                "strasse", // full case folding
		"ﬁle":                   "file",    // compatibility decomposition
		"priya_50%@Example.ORG": "priya_50%@example.org",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseQuery(t *testing.T) {
	if _, ok := ParseQuery("a"); ok {
		t.Error("one character accepted")
	}
	q, ok := ParseQuery("Sh")
	if !ok || q.Grams != nil || string(q.Lo) != "sh" || string(q.Hi) != "si" {
		t.Errorf("two characters: %+v", q)
	}
	q, _ = ParseQuery("KUMAR")
	if !slices.Equal(q.Grams, []string{"kum", "uma", "mar"}) {
		t.Errorf("grams of kumar: %q", q.Grams)
	}
	q, _ = ParseQuery("aaaa") // repeated grams are read once
	if !slices.Equal(q.Grams, []string{"aaa"}) {
		t.Errorf("grams of aaaa: %q", q.Grams)
	}
	q, _ = ParseQuery("abcdefghijklmnopqrstuvwxyz0123456789")
	if len(q.Grams) != MaxQueryGrams || q.Grams[0] != "abc" || q.Grams[MaxQueryGrams-1] != "789" { // the first and the last, evenly between
		t.Errorf("long query: %q", q.Grams)
	}
}

// TestEverySubstringIsCovered is the property the index rests on: for any text and any substring
// q of its folded form, every gram a query for q reads is among the text's grams (three or more
// characters), or some gram of the text starts with q (two characters). Then the index never
// misses a match, and verification removes the rest.
func TestEverySubstringIsCovered(t *testing.T) {
	alphabet := []rune("abcAB .@_%-éÉñßﬁ0१")
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 3000; i++ {
		var name, email []rune
		for n := 1 + r.IntN(12); n > 0; n-- {
			name = append(name, alphabet[r.IntN(len(alphabet))])
		}
		for n := 3 + r.IntN(12); n > 0; n-- {
			email = append(email, alphabet[r.IntN(len(alphabet))])
		}
		grams := DocGrams(string(name), string(email))
		for _, field := range []string{Fold(string(name)), Fold(string(email))} {
			runes := []rune(field)
			for a := 0; a < len(runes); a++ {
				for b := a + 2; b <= len(runes); b++ {
					q, ok := ParseQuery(string(runes[a:b]))
					if !ok {
						continue // folding a substring can shorten it below two characters
					}
					if !Matches(q.Folded, string(name), string(email)) {
						continue // folding a piece is not always a piece of the folded whole
					}
					if !covered(q, grams) {
						t.Fatalf("name %q email %q: query %q (grams %q) not covered by %q", string(name), string(email), q.Folded, q.Grams, grams)
					}
				}
			}
		}
	}
}

func covered(q Query, grams []string) bool {
	if q.Grams == nil {
		for _, g := range grams {
			if g >= string(q.Lo) && g < string(q.Hi) {
				return true
			}
		}
		return false
	}
	for _, want := range q.Grams {
		if !slices.Contains(grams, want) {
			return false
		}
	}
	return true
}

func TestDocGramsPadShortFields(t *testing.T) {
	grams := DocGrams("Al", "x@y.in")
	if !slices.Contains(grams, "al"+pad) {
		t.Errorf("a two-character name has no pad gram: %q", grams)
	}
	for _, g := range grams {
		if n := utf8.RuneCountInString(strings.TrimSuffix(g, pad)); n < 2 || n > 3 {
			t.Errorf("gram %q has %d characters", g, n)
		}
	}
}
