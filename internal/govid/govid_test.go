package govid

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseAadhaar(t *testing.T) {
	valid := []string{
		"234123412346", "2341 2341 2346", "2341-2341-2346", " 234123412346 ",
		"999999990019", "999999990026", "999999990042", "999999990057", "999941057058", "999971658847",
	}
	for _, s := range valid {
		a, err := ParseAadhaar(s)
		if err != nil {
			t.Errorf("ParseAadhaar(%q) = %v, want valid", s, err)
			continue
		}
		if len(a.Digits()) != 12 || strings.ContainsAny(a.Digits(), " -") {
			t.Errorf("ParseAadhaar(%q).Digits() = %q, want 12 bare digits", s, a.Digits())
		}
	}
	invalid := map[string]error{
		"234123412347":  ErrAadhaarChecksum,
		"123412341234":  ErrAadhaarFirstDigit,
		"123456789012":  ErrAadhaarFirstDigit,
		"333333333333":  ErrAadhaarNeverIssued,
		"643343121":     ErrAadhaarLength,
		"":              ErrAadhaarLength,
		"23412341234a":  ErrAadhaarLength,
		"2341234123466": ErrAadhaarLength,
		"２３４１２３４１２３４６":  ErrAadhaarLength, // full-width digits are not ASCII digits
	}
	for s, want := range invalid {
		if _, err := ParseAadhaar(s); !errors.Is(err, want) {
			t.Errorf("ParseAadhaar(%q) = %v, want %v", s, err, want)
		}
	}
}

func TestAadhaarPalindromeRejected(t *testing.T) {
	// Build a palindrome that passes Verhoeff: search the 6-digit halves.
	for i := 200000; i < 999999; i++ {
		half := fmt.Sprint(i)
		s := half + reverse(half)
		if VerhoeffValid(s) {
			if _, err := ParseAadhaar(s); !errors.Is(err, ErrAadhaarNeverIssued) {
				t.Fatalf("palindrome %s: got %v", s, err)
			}
			return
		}
	}
	t.Fatal("no Verhoeff-valid palindrome found")
}

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

func TestVerhoeffCheckDigit(t *testing.T) {
	if got := VerhoeffCheckDigit("23412341234"); got != '6' {
		t.Fatalf("check digit = %c, want 6", got)
	}
	for _, s := range []string{"99999999001", "99999999002", "99994105705"} {
		full := s + string(VerhoeffCheckDigit(s))
		if !VerhoeffValid(full) {
			t.Errorf("generated %s is not valid", full)
		}
	}
}

func TestAadhaarNeverPrintsDigits(t *testing.T) {
	a, err := ParseAadhaar("234123412346")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "aadhaar", a)
	outs := []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", a, a, a, a), buf.String()}
	for _, out := range outs {
		if strings.Contains(out, "23412341") {
			t.Errorf("output leaks the number: %s", out)
		}
	}
	if a.Masked() != "XXXX XXXX 2346" {
		t.Errorf("Masked = %q", a.Masked())
	}
}

func TestParsePAN(t *testing.T) {
	for _, s := range []string{"ACUPA7085R", "AAPPV8261K", "ABMPA3211G", "AFZPK7190K", "aapPv8261k", "AAPPV 8261 K", "AAPPV-8261-K"} {
		p, err := ParsePAN(s)
		if err != nil {
			t.Errorf("ParsePAN(%q) = %v, want valid", s, err)
			continue
		}
		if len(p.Value()) != 10 || strings.ToUpper(p.Value()) != p.Value() {
			t.Errorf("ParsePAN(%q).Value() = %q", s, p.Value())
		}
	}
	invalid := map[string]error{
		"ABMXA3211G": ErrPANNotPerson,
		"AAKFD7113K": ErrPANNotPerson,
		"ABCDE1234F": ErrPANNotPerson,
		"ACUPA0000R": ErrPANSequence,
		"ABMPA32111": ErrPANFormat,
		"ABMPA3211":  ErrPANFormat,
		"1BMPA3211G": ErrPANFormat,
		"":           ErrPANFormat,
	}
	for s, want := range invalid {
		if _, err := ParsePAN(s); !errors.Is(err, want) {
			t.Errorf("ParsePAN(%q) = %v, want %v", s, err, want)
		}
	}
}

func TestPANNeverPrintsValue(t *testing.T) {
	p, _ := ParsePAN("AAPPV8261K")
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "pan", p)
	for _, out := range []string{fmt.Sprintf("%v %+v %#v %s", p, p, p, p), buf.String()} {
		if strings.Contains(out, "AAPPV") {
			t.Errorf("output leaks the PAN: %s", out)
		}
	}
	if p.Masked() != "XXXXX8261K" {
		t.Errorf("Masked = %q", p.Masked())
	}
}
