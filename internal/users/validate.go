package users

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/net/idna"
)

// Field limits. Names and addresses are counted in characters (runes), not bytes.
const (
	NameMin, NameMax        = 2, 255
	PlaceMin, PlaceMax      = 2, 255
	AddressMin, AddressMax  = 10, 1000
	EmailMax, EmailLocalMax = 254, 64
	MinAge, MaxAge          = 18, 130
)

// IST is India Standard Time. India has had no daylight saving since 1945, so a fixed offset is
// exact and needs no tzdata on the host.
var IST = time.FixedZone("IST", 5*3600+30*60)

// Email is a validated email address: what the user typed (shown back) and the key that carries
// uniqueness: the local part in the RFC 8265 UsernameCaseMapped form (width-mapped, lower-cased,
// NFC) and the domain in IDNA ASCII form, both free of invisible characters and mixed scripts.
type Email struct{ display, key string }

// Display returns the address as typed.
func (e Email) Display() string { return e.display }

// Key returns the normalised form used for uniqueness and lookup.
func (e Email) Key() string { return e.key }

var emailIDNA = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.StrictDomainName(true))

// ParseEmail accepts a bare address only (no display name, comment, quoted local part or IP
// literal), with a hostname-legal domain of at least two labels.
func ParseEmail(s string) (Email, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Email{}, errors.New("is required")
	}
	if len(s) > EmailMax {
		return Email{}, errors.New("must be at most 254 characters")
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return Email{}, errors.New("must be a plain email address like name@example.com")
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], s[at+1:]
	if local == "" || len(local) > EmailLocalMax {
		return Email{}, errors.New("the part before @ must be 1 to 64 characters")
	}
	if strings.ContainsAny(local, "\"\\ ") {
		return Email{}, errors.New("quoted local parts are not accepted")
	}
	if err := checkText(s, false); err != nil {
		return Email{}, err
	}
	if strings.HasPrefix(domain, "[") {
		return Email{}, errors.New("IP-address domains are not accepted")
	}
	ascii, err := emailIDNA.ToASCII(domain)
	if err != nil {
		return Email{}, errors.New("the domain is not a valid host name")
	}
	ascii = strings.ToLower(ascii)
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return Email{}, errors.New("the domain needs at least two labels, like example.com")
	}
	for _, l := range labels {
		if !hostLabel(l) {
			return Email{}, errors.New("the domain is not a valid host name")
		}
		u, err := emailIDNA.ToUnicode(l)
		if err != nil {
			return Email{}, errors.New("the domain is not a valid host name")
		}
		if err := singleScript(u); err != nil {
			return Email{}, fmt.Errorf("a label of the domain %w", err)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return Email{}, errors.New("the domain's last label must not be numeric")
	}
	localKey, err := emailLocalKey(local)
	if err != nil {
		return Email{}, err
	}
	key := localKey + "@" + ascii
	if len(key) > EmailMax {
		return Email{}, errors.New("must be at most 254 characters")
	}
	return Email{display: s, key: key}, nil
}

func hostLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ParseMobile accepts an Indian mobile number in the usual written forms (9876543210,
// +91 98765 43210, +91-98765-43210, 0091 9876543210, 098765 43210, 919876543210) and returns
// the 10-digit national number. libphonenumber's metadata decides whether the number is a
// mobile: fixed lines and special services are refused.
func ParseMobile(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("is required")
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		case r == '+' && i == 0:
			b.WriteRune(r)
		default:
			return "", errors.New("may contain only digits, spaces, hyphens and a leading +")
		}
	}
	d := b.String()
	switch {
	case strings.HasPrefix(d, "+"):
		if !strings.HasPrefix(d, "+91") {
			return "", errors.New("must be an Indian number (+91)")
		}
		d = d[3:]
	case len(d) == 14 && strings.HasPrefix(d, "0091"):
		d = d[4:]
	case len(d) == 12 && strings.HasPrefix(d, "91"):
		d = d[2:]
	case len(d) == 11 && d[0] == '0':
		d = d[1:]
	}
	if len(d) != 10 {
		return "", errors.New("must be a 10-digit Indian mobile number, like 9876543210")
	}
	if d[0] < '6' {
		return "", errors.New("must start with 6, 7, 8 or 9")
	}
	num, err := phonenumbers.Parse("+91"+d, "IN")
	if err != nil || !phonenumbers.IsValidNumberForRegion(num, "IN") {
		return "", errors.New("is not a valid Indian mobile number")
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
		return d, nil
	default:
		return "", errors.New("is not a mobile number (it is a landline or special-service number)")
	}
}

// ParseDateOfBirth parses YYYY-MM-DD and checks the age rules: at least 18 and at most 130 years
// old on today's date in India. Majority begins on the 18th birthday (Indian Majority Act s.3);
// for someone born on 29 February it begins on 1 March in years that have no 29 February.
func ParseDateOfBirth(s string, now time.Time) (time.Time, error) {
	dob, err := time.Parse(time.DateOnly, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, errors.New("must be a date in the form YYYY-MM-DD")
	}
	y, m, d := now.In(IST).Date()
	today := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	if dob.After(today) {
		return time.Time{}, errors.New("must not be in the future")
	}
	if today.Before(anniversary(dob, MinAge)) {
		return time.Time{}, errors.New("the user must be at least 18 years old")
	}
	if !today.Before(anniversary(dob, MaxAge+1)) {
		return time.Time{}, errors.New("must be less than 131 years ago")
	}
	return dob, nil
}

// anniversary returns the date the person turns n. time.Date normalises 29 February of a
// non-leap year to 1 March, which is the rule we apply.
func anniversary(dob time.Time, n int) time.Time {
	return time.Date(dob.Year()+n, dob.Month(), dob.Day(), 0, 0, 0, 0, time.UTC)
}

func lengthError(minLen, maxLen int) error {
	return fmt.Errorf("must be %d to %d characters long", minLen, maxLen)
}

// CleanReason validates an erasure reason: up to 255 characters, no control characters. It must
// not hold personal data; that is the caller's duty, stated in the API documentation.
func CleanReason(s string) (string, error) { return cleanText(s, 0, 255, false) }
