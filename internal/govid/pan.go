package govid

import (
	"errors"
	"log/slog"
	"strings"
)

// PAN is a valid Permanent Account Number of a person (holder type P).
type PAN struct{ value, last5 string }

// Errors returned by ParsePAN. Their text never contains the PAN.
var (
	ErrPANFormat    = errors.New("must be 5 letters, 4 digits and 1 letter, like AAPPV8261K")
	ErrPANNotPerson = errors.New("4th character must be P (a person); other letters are companies, firms, trusts and so on " +
		"(the product description's example ABCDE1234F is not a person's PAN)")
	ErrPANSequence = errors.New("digits 6-9 must not be 0000")
)

// ParsePAN upper-cases s, strips spaces and hyphens and validates the result.
func ParsePAN(s string) (PAN, error) {
	v := strings.ToUpper(stripSeparators(s))
	if len(v) != 10 {
		return PAN{}, ErrPANFormat
	}
	for i := 0; i < 10; i++ {
		c := v[i]
		letter := c >= 'A' && c <= 'Z'
		digit := c >= '0' && c <= '9'
		if (i < 5 || i == 9) && !letter || (i >= 5 && i < 9) && !digit {
			return PAN{}, ErrPANFormat
		}
	}
	if v[3] != 'P' {
		return PAN{}, ErrPANNotPerson
	}
	if v[5:9] == "0000" {
		return PAN{}, ErrPANSequence
	}
	return PAN{value: v}, nil
}

// Value returns the full PAN. Callers must ask for it by name.
func (p PAN) Value() string { return p.value }

// IsZero reports whether p is the zero value.
func (p PAN) IsZero() bool { return p.value == "" && p.last5 == "" }

// Last5 returns the part of the PAN that is shown: the sequence digits and the check letter.
func (p PAN) Last5() string {
	if p.value != "" {
		return p.value[5:]
	}
	return p.last5
}

// Masked returns the display form used everywhere in this service, "XXXXX8261K": the five
// letters (holder type and name initial) hidden, the sequence digits and check letter shown.
func (p PAN) Masked() string {
	if p.IsZero() {
		return ""
	}
	return "XXXXX" + p.Last5()
}

// String returns the masked form.
func (p PAN) String() string { return p.Masked() }

// GoString returns the masked form.
func (p PAN) GoString() string { return "govid.PAN(" + p.Masked() + ")" }

// LogValue implements slog.LogValuer with the masked form.
func (p PAN) LogValue() slog.Value { return slog.StringValue(p.Masked()) }

// PANFromStore wraps a value read back from this service's own store, where only values that
// passed ParsePAN are ever written. It does not validate again.
func PANFromStore(value string) PAN { return PAN{value: value} }

// PANFromLast5 is a PAN of which only the shown part is known (users.pan_last5): it masks itself
// like a whole one, and Value returns "".
func PANFromLast5(last5 string) PAN { return PAN{last5: last5} }
