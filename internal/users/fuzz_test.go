package users

import (
	"strings"
	"testing"
)

// FuzzParseMobile: never panics; an accepted number is 10 digits starting 6-9 and re-parses to itself.
func FuzzParseMobile(f *testing.F) {
	for _, s := range []string{"9876543210", "+91 98765 43210", "0091 9876543210", "098765 43210", "919876543210", "8023456789", "+1 415 555 0100", "", "+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMobile(s)
		if err != nil {
			return
		}
		if len(m) != 10 || m[0] < '6' || strings.Trim(m, "0123456789") != "" {
			t.Fatalf("accepted %q as %q", s, m)
		}
		if again, err := ParseMobile(m); err != nil || again != m {
			t.Fatalf("not idempotent: %q -> %q", s, m)
		}
	})
}

// FuzzParseEmail: never panics; an accepted address has a key that is lower-case ASCII in its
// domain, within the length limits, and the key of the key is itself.
func FuzzParseEmail(f *testing.F) {
	for _, s := range []string{"a@x.com", "A@X.com", "user@bücher.de", "Alice <a@x.com>", `"q"@x.com`, "a@[1.2.3.4]", "a@localhost", "", "@", "a@b@c.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEmail(s)
		if err != nil {
			return
		}
		k := e.Key()
		at := strings.LastIndexByte(k, '@')
		if at <= 0 || len(k) > EmailMax || strings.ToLower(k[at:]) != k[at:] {
			t.Fatalf("accepted %q with key %q", s, k)
		}
		if e2, err := ParseEmail(e.Display()); err != nil || e2.Key() != k {
			t.Fatalf("display %q does not re-parse to the same key", e.Display())
		}
	})
}
