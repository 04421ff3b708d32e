package users

import (
	"time"

	"github.com/usersvc/usersvc/internal/govid"
)

// CreateFields are the raw text fields of a create request; nil means absent.
type CreateFields struct {
	Name, Email, PrimaryMobile, SecondaryMobile, DateOfBirth, PlaceOfBirth *string
	Aadhaar, PAN, CurrentAddress, PermanentAddress                         *string
}

// NewUser is a validated create request.
type NewUser struct {
	Name             string
	Email            Email
	PrimaryMobile    string
	SecondaryMobile  string
	DateOfBirth      time.Time
	PlaceOfBirth     string
	Aadhaar          govid.Aadhaar
	PAN              govid.PAN
	CurrentAddress   string
	PermanentAddress string
}

// ParseNewUser validates every field of f and reports all invalid ones at once, added to verr.
func ParseNewUser(f CreateFields, now time.Time, verr *ValidationError) NewUser {
	var nu NewUser
	required := func(field string, v *string, parse func(string) error) {
		if v == nil {
			if !verr.Has(field) { // a type error was already reported
				verr.Add(field, "is required")
			}
			return
		}
		if err := parse(*v); err != nil {
			verr.Add(field, err.Error())
		}
	}
	required("name", f.Name, func(s string) (err error) { nu.Name, err = cleanText(s, NameMin, NameMax, false); return })
	required("email", f.Email, func(s string) (err error) { nu.Email, err = ParseEmail(s); return })
	required("primary_mobile", f.PrimaryMobile, func(s string) (err error) { nu.PrimaryMobile, err = ParseMobile(s); return })
	required("date_of_birth", f.DateOfBirth, func(s string) (err error) { nu.DateOfBirth, err = ParseDateOfBirth(s, now); return })
	required("place_of_birth", f.PlaceOfBirth, func(s string) (err error) {
		nu.PlaceOfBirth, err = cleanText(s, PlaceMin, PlaceMax, false)
		return
	})
	required("aadhaar", f.Aadhaar, func(s string) (err error) { nu.Aadhaar, err = govid.ParseAadhaar(s); return })
	required("pan", f.PAN, func(s string) (err error) { nu.PAN, err = govid.ParsePAN(s); return })
	required("current_address", f.CurrentAddress, func(s string) (err error) {
		nu.CurrentAddress, err = cleanText(s, AddressMin, AddressMax, true)
		return
	})
	required("permanent_address", f.PermanentAddress, func(s string) (err error) {
		nu.PermanentAddress, err = cleanText(s, AddressMin, AddressMax, true)
		return
	})
	if f.SecondaryMobile != nil && *f.SecondaryMobile != "" {
		m, err := ParseMobile(*f.SecondaryMobile)
		switch {
		case err != nil:
			verr.Add("secondary_mobile", err.Error())
		case m == nu.PrimaryMobile:
			verr.Add("secondary_mobile", "must differ from primary_mobile")
		default:
			nu.SecondaryMobile = m
		}
	}
	return nu
}

// UpdateFields are the raw fields of a partial update; nil means "leave unchanged". A
// SecondaryMobile pointing at "" clears the secondary mobile.
type UpdateFields struct {
	Name, Email, PrimaryMobile, SecondaryMobile, CurrentAddress, PermanentAddress *string
	IsActive                                                                      *bool
}

// Changes is a validated partial update; nil fields stay as they are.
type Changes struct {
	Name             *string
	Email            *Email
	PrimaryMobile    *string
	SecondaryMobile  *string // "" clears it
	CurrentAddress   *string
	PermanentAddress *string
	IsActive         *bool
}

// ParseChanges validates the fields present in f, adding every invalid one to verr.
func ParseChanges(f UpdateFields, verr *ValidationError) Changes {
	var c Changes
	optional := func(field string, v *string, parse func(string) (string, error), dst **string) {
		if v == nil {
			return
		}
		s, err := parse(*v)
		if err != nil {
			verr.Add(field, err.Error())
			return
		}
		*dst = &s
	}
	text := func(minLen, maxLen int, multiline bool) func(string) (string, error) {
		return func(s string) (string, error) { return cleanText(s, minLen, maxLen, multiline) }
	}
	optional("name", f.Name, text(NameMin, NameMax, false), &c.Name)
	optional("primary_mobile", f.PrimaryMobile, ParseMobile, &c.PrimaryMobile)
	optional("current_address", f.CurrentAddress, text(AddressMin, AddressMax, true), &c.CurrentAddress)
	optional("permanent_address", f.PermanentAddress, text(AddressMin, AddressMax, true), &c.PermanentAddress)
	optional("secondary_mobile", f.SecondaryMobile, func(s string) (string, error) {
		if s == "" {
			return "", nil
		}
		return ParseMobile(s)
	}, &c.SecondaryMobile)
	if f.Email != nil {
		e, err := ParseEmail(*f.Email)
		if err != nil {
			verr.Add("email", err.Error())
		} else {
			c.Email = &e
		}
	}
	c.IsActive = f.IsActive
	return c
}
