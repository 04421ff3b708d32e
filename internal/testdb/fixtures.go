package testdb

import (
	"crypto/rand"
	"math/big"
	"strings"

	"github.com/usersvc/usersvc/internal/govid"
	"github.com/usersvc/usersvc/internal/users"
)

// Digits returns n random decimal digits.
func Digits(n int) string { return randomFrom("0123456789", n) }

// Letters returns n random upper-case letters.
func Letters(n int) string { return randomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZ", n) }

func randomFrom(alphabet string, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		d, _ := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		b.WriteByte(alphabet[d.Int64()])
	}
	return b.String()
}

// Aadhaar returns a random valid Aadhaar starting 9999, as domain-rules.md recommends for fixtures.
func Aadhaar() string {
	for {
		payload := "9999" + Digits(7)
		full := payload + string(govid.VerhoeffCheckDigit(payload))
		if _, err := govid.ParseAadhaar(full); err == nil {
			return full
		}
	}
}

// PAN returns a random valid person PAN.
func PAN() string {
	for {
		p := Letters(3) + "P" + Letters(1) + Digits(4) + Letters(1)
		if _, err := govid.ParsePAN(p); err == nil {
			return p
		}
	}
}

// Mobile returns a random number that libphonenumber classes as an Indian mobile.
func Mobile() string {
	for {
		m := "98" + Digits(8)
		if _, err := users.ParseMobile(m); err == nil {
			return m
		}
	}
}
