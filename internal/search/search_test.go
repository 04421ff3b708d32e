package search

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/RoaringBitmap/roaring/v2"
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

func TestCacheVersionsAndBudget(t *testing.T) {
	c := NewCache(256 << 10)
	a := roaring.BitmapOf(1, 2, 3)
	v1 := gramVersion{size: 3, segments: 1, newest: 1}
	c.put("abc", v1, a)
	if c.get("abc", v1) != a {
		t.Fatal("a fresh entry is not returned")
	}
	if c.get("abc", gramVersion{size: 4, segments: 1, newest: 1}) != nil {
		t.Fatal("an entry of another version is returned")
	}
	if c.get("abc", v1) != nil {
		t.Fatal("a stale entry was kept")
	}
	big := roaring.New()
	big.AddRange(0, 1<<20) // 128 KB of bitmap containers once it is not a run: over a quarter
	for i := uint32(0); i < 1<<20; i += 2 {
		big.Remove(i)
	}
	c.put("big", v1, big)
	if c.get("big", v1) != nil {
		t.Fatal("an entry over a quarter of the budget was cached")
	}
	for i := 0; i < 200; i++ {
		b := roaring.New()
		b.AddRange(uint64(i)<<16, uint64(i)<<16+4096)
		for j := uint32(0); j < 4096; j += 2 {
			b.Remove(uint32(i)<<16 + j)
		}
		c.put(string(rune('a'+i%26))+strconv.Itoa(i), v1, b)
	}
	if c.used > c.budget || c.lru.Len() >= 200 || c.lru.Len() != len(c.entries) {
		t.Fatalf("%d bytes used in %d entries, budget %d", c.used, c.lru.Len(), c.budget)
	}
}
