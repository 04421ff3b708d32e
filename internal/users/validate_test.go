package users

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseEmail(t *testing.T) {
	good := map[string]string{
		"a@x.com":                        "a@x.com",
		"A@X.com":                        "a@x.com",
		"Rajesh.Kumar+tag@Example.co.in": "rajesh.kumar+tag@example.co.in",
		"user@bücher.de":                 "user@xn--bcher-kva.de",
		"  padded@example.com  ":         "padded@example.com",
	}
	for in, key := range good {
		e, err := ParseEmail(in)
		if err != nil {
			t.Errorf("ParseEmail(%q) = %v", in, err)
			continue
		}
		if e.Key() != key {
			t.Errorf("ParseEmail(%q).Key() = %q, want %q", in, e.Key(), key)
		}
		if e.Display() != strings.TrimSpace(in) {
			t.Errorf("Display changed: %q", e.Display())
		}
	}
	bad := []string{
		"", "plain", "Alice <a@x.com>", "a@x.com (comment)", `"quoted"@x.com`, "a@[127.0.0.1]",
		"a@localhost", "a@exa_mple.com", "a@-x.com", "a@x.123", strings.Repeat("l", 65) + "@x.com",
		"a@" + strings.Repeat("d", 250) + ".com", "a@@x.com", "a@x..com",
	}
	for _, in := range bad {
		if _, err := ParseEmail(in); err == nil {
			t.Errorf("ParseEmail(%q) accepted", in)
		}
	}
}

func TestParseMobile(t *testing.T) {
	for _, in := range []string{"9876543210", "+91 98765 43210", "+91-98765-43210", "0091 9876543210", "098765 43210", "919876543210"} {
		got, err := ParseMobile(in)
		if err != nil || got != "9876543210" {
			t.Errorf("ParseMobile(%q) = %q, %v", in, got, err)
		}
	}
	if got, err := ParseMobile("8765432109"); err != nil || got != "8765432109" {
		t.Errorf("description's secondary mobile: %q %v", got, err)
	}
	for _, in := range []string{
		"", "12345", "5876543210", "98765432101", "+1 415 555 0100", "98765abcde", "8023456789", // Bengaluru landline
		"+91 1600 123 456",
	} {
		if got, err := ParseMobile(in); err == nil {
			t.Errorf("ParseMobile(%q) accepted as %q", in, got)
		}
	}
}

func TestParseDateOfBirth(t *testing.T) {
	// 2026-06-15 10:00 IST.
	now := time.Date(2026, 6, 15, 4, 30, 0, 0, time.UTC)
	ok := []string{"2008-06-15", "1995-06-15", "1900-01-01"}
	for _, s := range ok {
		if _, err := ParseDateOfBirth(s, now); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	bad := []string{"2008-06-16", "2026-06-16", "1895-06-15", "15-06-1995", "1995-02-30", "1995-6-15", "", "2030-01-01"}
	for _, s := range bad {
		if _, err := ParseDateOfBirth(s, now); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
}

func TestAdulthoodUsesIndianDate(t *testing.T) {
	// 2026-06-14 20:00 UTC is already 2026-06-15 01:30 in India: someone born 2008-06-15 is 18 there.
	now := time.Date(2026, 6, 14, 20, 0, 0, 0, time.UTC)
	if _, err := ParseDateOfBirth("2008-06-15", now); err != nil {
		t.Fatalf("18th birthday in IST refused: %v", err)
	}
	// 2026-06-14 18:00 UTC is 23:30 IST on the 14th: not yet 18.
	if _, err := ParseDateOfBirth("2008-06-15", time.Date(2026, 6, 14, 18, 0, 0, 0, time.UTC)); err == nil {
		t.Fatal("accepted the day before the 18th birthday")
	}
}

func TestLeapDayBirthday(t *testing.T) {
	// Born 29 Feb 2008: in 2026 (no 29 Feb) majority begins on 1 March.
	feb28 := time.Date(2026, 2, 28, 12, 0, 0, 0, IST)
	mar1 := time.Date(2026, 3, 1, 0, 0, 0, 0, IST)
	if _, err := ParseDateOfBirth("2008-02-29", feb28); err == nil {
		t.Error("adult on 28 Feb")
	}
	if _, err := ParseDateOfBirth("2008-02-29", mar1); err != nil {
		t.Errorf("not adult on 1 Mar: %v", err)
	}
}

func TestCleanText(t *testing.T) {
	if s, err := cleanText("  Rajesh  ", 2, 255, false); err != nil || s != "Rajesh" {
		t.Errorf("%q %v", s, err)
	}
	if _, err := cleanText("R", 2, 255, false); err == nil {
		t.Error("1 char accepted")
	}
	if _, err := cleanText("ab\x00c", 2, 255, false); err == nil {
		t.Error("NUL accepted")
	}
	if _, err := cleanText("line one\nline two", 2, 255, true); err != nil {
		t.Errorf("multiline address: %v", err)
	}
	if _, err := cleanText("नमस्ते", 2, 255, false); err != nil { // counted in characters, not bytes
		t.Errorf("Devanagari: %v", err)
	}
	if _, err := cleanText(strings.Repeat("é", 256), 2, 255, false); err == nil {
		t.Error("256 chars accepted")
	}
}

func TestUserNeverPrintsPII(t *testing.T) {
	u := User{ID: "id-1", Name: "Rajesh", Email: "r@x.com"}
	for _, s := range []string{fmt.Sprint(u), fmt.Sprintf("%v %+v %s", u, u, u), fmt.Sprint(&u)} {
		if strings.Contains(s, "Rajesh") || strings.Contains(s, "r@x.com") {
			t.Errorf("leak: %s", s)
		}
	}
}

// TestLookAlikeEmails: variants that read as the same address get the same key; look-alikes
// made with invisible characters or letters of another script are refused.
func TestLookAlikeEmails(t *testing.T) {
	same := map[string]string{
		"ｒａｊｅｓｈ@example.com":     "rajesh@example.com", // fullwidth
		"RAJESH@Example.COM":     "rajesh@example.com",
		"jose\u0301@example.com": "jos\u00e9@example.com", // decomposed é
		"jos\u00e9@example.com":  "jos\u00e9@example.com",
		"user@xn--bcher-kva.de":  "user@xn--bcher-kva.de",
		"user@bücher.de":         "user@xn--bcher-kva.de",
		"राजेश@example.com":      "राजेश@example.com", // one script (Devanagari) is fine
		"山田taro@example.jp":      "山田taro@example.jp",
	}
	for in, key := range same {
		e, err := ParseEmail(in)
		if err != nil || e.Key() != key {
			t.Errorf("ParseEmail(%q) = %q, %v; want key %q", in, e.Key(), err, key)
		}
	}
	refused := map[string]string{
		"raj\u200besh@example.com":  "invisible", // zero-width space
		"raj\u00adesh@example.com":  "invisible", // soft hyphen
		"raj\u202eesh@example.com":  "invisible", // right-to-left override
		"r\u0430jesh@example.com":   "scripts",   // Cyrillic а
		"rajesh@\u0435xample.com":   "scripts",   // Cyrillic е in the domain
		"rajesh@xn--xample-2of.com": "scripts",   // the same, as punycode
		"raj\uFFFDesh@example.com":  "UTF-8",
	}
	for in, want := range refused {
		_, err := ParseEmail(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseEmail(%q) = %v, want an error about %s", in, err, want)
		}
	}
}

func TestCleanTextRefusesInvisibleCharacters(t *testing.T) {
	for _, in := range []string{"Ra\u200bjesh", "Ra\u202ejesh", "Raj\u00adesh", "Ra\u2066jesh", "Ra\ufeffjesh", "Ra\x01jesh", "Ra\uFFFDjesh", "Ra\ue000jesh", "Ra\u2028jesh", "Ra\u0085jesh"} {
		if _, err := cleanText(in, 2, 255, false); err == nil {
			t.Errorf("cleanText(%q) accepted", in)
		}
	}
	// Joiners after a virama shape Indic conjuncts: accepted. NFC applies.
	for in, want := range map[string]string{
		"क्\u200dष":        "क्\u200dष",
		"ന്\u200dമ":        "ന്\u200dമ",
		"Jose\u0301 Kumar": "Jos\u00e9 Kumar",
	} {
		if got, err := cleanText(in, 2, 255, false); err != nil || got != want {
			t.Errorf("cleanText(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := cleanText("Ra\u200djesh", 2, 255, false); err == nil {
		t.Errorf("a joiner between Latin letters was accepted")
	}
}
