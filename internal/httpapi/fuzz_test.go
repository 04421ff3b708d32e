package httpapi

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/usersvc/usersvc/internal/users"
)

// FuzzDecodeCreate feeds arbitrary bodies through the create request decoding and validation:
// it must never panic, and must end either in a 4xx problem or in a fully valid NewUser.
func FuzzDecodeCreate(f *testing.F) {
	for _, s := range []string{
		`{"name":"Rajesh Kumar","email":"r@example.com","primary_mobile":"9876543210","aadhaar":"234123412346","pan":"AAPPV8261K","date_of_birth":"1995-06-15","place_of_birth":"Mumbai","current_address":"123 MG Road, Mumbai","permanent_address":"123 MG Road, Mumbai"}`,
		`{"name":1}`, `[]`, `null`, `{"a":` + "\x00", `{"name":"\ud800"}`, `{"id":"x","version":"y"}`, ``,
	} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`{}`), "text/plain")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		w := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(w)
		c.Request = httptest.NewRequest(http.MethodPost, "/api/v1/users", bytes.NewReader(body))
		c.Request.Header.Set("Content-Type", contentType)
		obj, err := readObject(c)
		if err != nil {
			var herr *httpError
			if !errors.As(err, &herr) || herr.status < 400 || herr.status > 499 {
				t.Fatalf("decode error is not a 4xx: %v", err)
			}
			return
		}
		fl := newFields(obj, createPolicy)
		empty := ""
		nu := users.ParseNewUser(users.CreateFields{
			Name: fl.str("name", nil), Email: fl.str("email", nil), PrimaryMobile: fl.str("primary_mobile", nil),
			SecondaryMobile: fl.str("secondary_mobile", &empty), DateOfBirth: fl.str("date_of_birth", nil),
			PlaceOfBirth: fl.str("place_of_birth", nil), Aadhaar: fl.str("aadhaar", nil), PAN: fl.str("pan", nil),
			CurrentAddress: fl.str("current_address", nil), PermanentAddress: fl.str("permanent_address", nil),
		}, time.Now(), fl.verr)
		if fl.verr.Err() != nil {
			if p, _ := problemFor(fl.verr); p.Status != 422 || len(p.Errors) == 0 {
				t.Fatalf("validation error maps to %d", p.Status)
			}
			return
		}
		if nu.Aadhaar.IsZero() || nu.PAN.IsZero() || nu.Email.Key() == "" || len(nu.PrimaryMobile) != 10 {
			t.Fatalf("accepted an incomplete user: %+v", nu)
		}
	})
}
