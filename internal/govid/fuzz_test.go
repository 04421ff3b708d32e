package govid

import (
	"strings"
	"testing"
)

// FuzzParseAadhaar: never panics; whatever it accepts re-parses to itself, is 12 digits starting
// 2-9 with a valid check digit, and never prints its digits.
func FuzzParseAadhaar(f *testing.F) {
	for _, s := range []string{"234123412346", "2341 2341 2346", "2341-2341-2346", "123456789012", "333333333333", "", "९९९९", "99999999001９"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAadhaar(s)
		if err != nil {
			return
		}
		d := a.Digits()
		if len(d) != 12 || d[0] < '2' || !VerhoeffValid(d) || strings.Trim(d, "0123456789") != "" {
			t.Fatalf("accepted %q as %q", s, d)
		}
		if b, err := ParseAadhaar(d); err != nil || b != a {
			t.Fatalf("not idempotent: %q", s)
		}
		if strings.Contains(a.String(), d[:8]) {
			t.Fatal("String leaks digits")
		}
	})
}

// FuzzParsePAN: never panics; accepted values are 10 upper-case characters of a person's PAN.
func FuzzParsePAN(f *testing.F) {
	for _, s := range []string{"AAPPV8261K", "aappv8261k", "AAPPV 8261 K", "ABCDE1234F", "ACUPA0000R", "", "ÄAPPV8261K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePAN(s)
		if err != nil {
			return
		}
		v := p.Value()
		if len(v) != 10 || v[3] != 'P' || v[5:9] == "0000" || strings.ToUpper(v) != v {
			t.Fatalf("accepted %q as %q", s, v)
		}
		if q, err := ParsePAN(v); err != nil || q != p {
			t.Fatalf("not idempotent: %q", s)
		}
	})
}
