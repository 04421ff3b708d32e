// Package govid holds value types for Indian government identifiers (Aadhaar, PAN). Each type is
// only constructed through Parse, so a value of the type is always valid, and each one masks
// itself when printed or logged: the full value is only reachable through an explicit method.
package govid

import (
	"errors"
	"log/slog"
	"strings"
)

// Aadhaar is a valid 12-digit Aadhaar number (first digit 2-9, Verhoeff check digit), or only its
// last four digits (AadhaarFromLast4: what a masked read has without the vault).
type Aadhaar struct{ digits, last4 string }

// Errors returned by ParseAadhaar. Their text is safe to show to the client: it never contains
// the number.
var (
	ErrAadhaarLength      = errors.New("must be exactly 12 digits (spaces and hyphens are allowed between them)")
	ErrAadhaarFirstDigit  = errors.New("must not start with 0 or 1 (the product description's example 123456789012 is not a valid Aadhaar)")
	ErrAadhaarChecksum    = errors.New("fails the Verhoeff check digit: please re-check the number")
	ErrAadhaarNeverIssued = errors.New("is a repeated-digit or palindromic number, which UIDAI never issues")
)

// ParseAadhaar strips spaces and hyphens and validates the result.
func ParseAadhaar(s string) (Aadhaar, error) {
	d := stripSeparators(s)
	if len(d) != 12 || !allDigits(d) {
		return Aadhaar{}, ErrAadhaarLength
	}
	if d[0] == '0' || d[0] == '1' {
		return Aadhaar{}, ErrAadhaarFirstDigit
	}
	if !VerhoeffValid(d) {
		return Aadhaar{}, ErrAadhaarChecksum
	}
	if strings.Count(d, d[:1]) == len(d) || isPalindrome(d) {
		return Aadhaar{}, ErrAadhaarNeverIssued
	}
	return Aadhaar{digits: d}, nil
}

// Digits returns the 12 bare digits. Callers that need the full number (storage, an
// authorised read) must ask for it by name.
func (a Aadhaar) Digits() string { return a.digits }

// IsZero reports whether a is the zero value (no number).
func (a Aadhaar) IsZero() bool { return a.digits == "" && a.last4 == "" }

// Last4 returns the last four digits, which UIDAI allows to be shown.
func (a Aadhaar) Last4() string {
	if a.digits != "" {
		return a.digits[8:]
	}
	return a.last4
}

// Masked returns the display form allowed by UIDAI: only the last four digits, "XXXX XXXX 2346".
func (a Aadhaar) Masked() string {
	if a.IsZero() {
		return ""
	}
	return "XXXX XXXX " + a.Last4()
}

// String returns the masked form, so that %v and %s never print the number.
func (a Aadhaar) String() string { return a.Masked() }

// GoString returns the masked form, so that %#v never prints the number.
func (a Aadhaar) GoString() string { return "govid.Aadhaar(" + a.Masked() + ")" }

// LogValue implements slog.LogValuer with the masked form.
func (a Aadhaar) LogValue() slog.Value { return slog.StringValue(a.Masked()) }

// Verhoeff tables (domain-rules.md).
var (
	verhoeffD = [10][10]byte{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
		{1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
		{2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
		{3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
		{4, 0, 1, 2, 3, 9, 5, 6, 7, 8},
		{5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
		{6, 5, 9, 8, 7, 1, 0, 4, 3, 2},
		{7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
		{8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
		{9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
	}
	verhoeffP = [8][10]byte{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9},
		{1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
		{5, 8, 0, 3, 7, 9, 6, 1, 4, 2},
		{8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
		{9, 4, 5, 3, 1, 2, 6, 8, 7, 0},
		{4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
		{2, 7, 9, 3, 8, 0, 6, 4, 1, 5},
		{7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
	}
	verhoeffInv = [10]byte{0, 4, 3, 2, 1, 5, 6, 7, 8, 9}
)

// VerhoeffValid reports whether the last digit of s is the Verhoeff check digit of the rest.
// s must consist of ASCII digits only.
func VerhoeffValid(s string) bool {
	var c byte
	for i := 0; i < len(s); i++ {
		c = verhoeffD[c][verhoeffP[i%8][s[len(s)-1-i]-'0']]
	}
	return c == 0
}

// VerhoeffCheckDigit returns the check digit for the digits in payload, for generating test data.
func VerhoeffCheckDigit(payload string) byte {
	var c byte
	for i := 0; i < len(payload); i++ {
		c = verhoeffD[c][verhoeffP[(i+1)%8][payload[len(payload)-1-i]-'0']]
	}
	return '0' + verhoeffInv[c]
}

func stripSeparators(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isPalindrome(s string) bool {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		if s[i] != s[j] {
			return false
		}
	}
	return true
}

// AadhaarFromStore wraps digits read back from this service's own store, where only values that
// passed ParseAadhaar are ever written. It does not validate again.
func AadhaarFromStore(digits string) Aadhaar { return Aadhaar{digits: digits} }

// AadhaarFromLast4 is a number of which only the last four digits are known (users.aadhaar_last4):
// it masks itself like a whole one, and Digits returns "".
func AadhaarFromLast4(last4 string) Aadhaar { return Aadhaar{last4: last4} }
