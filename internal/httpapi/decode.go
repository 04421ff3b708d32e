package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/usersvc/usersvc/internal/users"
)

// MaxBodyBytes is the largest request body accepted (413 beyond it).
const MaxBodyBytes = 1 << 20

// hasBody reports whether the request carries a body at all.
func hasBody(r *http.Request) bool {
	return r.ContentLength > 0 || r.ContentLength == -1 && len(r.TransferEncoding) > 0
}

// readObject reads a JSON object body: 415 for another content type, 413 past MaxBodyBytes, 400
// for anything that is not exactly one JSON object.
func readObject(c *gin.Context) (map[string]json.RawMessage, error) {
	ct := c.GetHeader("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || !(mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return nil, newHTTPError(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"the request body must be JSON, sent with Content-Type: application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, newHTTPError(http.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than %d bytes", MaxBodyBytes)
		}
		return nil, newHTTPError(http.StatusBadRequest, "unreadable_body", "the request body could not be read")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, newHTTPError(http.StatusBadRequest, "empty_body", "the request body is empty; send a JSON object")
	}
	return parseObject(body)
}

// parseObject parses exactly one JSON object (a request body, or one line of an import).
func parseObject(body []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, newHTTPError(http.StatusBadRequest, "malformed_json", "the JSON is not valid (error at byte %d)", se.Offset)
		case errors.As(err, &te):
			return nil, newHTTPError(http.StatusBadRequest, "not_an_object", "the JSON must be an object, not %s", te.Value)
		default:
			return nil, newHTTPError(http.StatusBadRequest, "malformed_json", "the JSON is not valid")
		}
	}
	if obj == nil {
		return nil, newHTTPError(http.StatusBadRequest, "not_an_object", "the JSON must be an object, not null")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, newHTTPError(http.StatusBadRequest, "malformed_json", "there is data after the JSON object")
	}
	return obj, nil
}

// fieldPolicy says which body fields a request accepts and why others are refused.
type fieldPolicy struct {
	allowed   map[string]bool
	immutable map[string]bool
}

// serverOwned are fields only the service sets.
var serverOwned = set("id", "is_deleted", "deleted_at", "deleted_by", "created_at", "created_by", "updated_at",
	"updated_by", "version", "is_active", "email_verified", "mobile_verified", "last_login_at")

var (
	createPolicy = fieldPolicy{allowed: set("name", "email", "primary_mobile", "secondary_mobile", "aadhaar", "pan",
		"date_of_birth", "place_of_birth", "current_address", "permanent_address", "idempotency_key")}
	updatePolicy = fieldPolicy{
		allowed: set("name", "email", "primary_mobile", "secondary_mobile", "current_address", "permanent_address",
			"is_active", "version"),
		immutable: set("date_of_birth", "aadhaar", "pan", "place_of_birth"),
	}
	versionOnlyPolicy = fieldPolicy{allowed: set("version")}
	lookupPolicy      = fieldPolicy{allowed: set("aadhaar", "pan")}
	erasePolicy       = fieldPolicy{allowed: set("reason")}
	// importPolicy: an import line is a create without idempotency_key (the email makes a
	// re-run create nothing twice).
	importPolicy = fieldPolicy{allowed: set("name", "email", "primary_mobile", "secondary_mobile", "aadhaar", "pan",
		"date_of_birth", "place_of_birth", "current_address", "permanent_address")}
)

// createFields reads the fields of a create (or an import line).
func (f *fields) createFields() users.CreateFields {
	empty := ""
	return users.CreateFields{
		Name: f.str("name", nil), Email: f.str("email", nil),
		PrimaryMobile: f.str("primary_mobile", nil), SecondaryMobile: f.str("secondary_mobile", &empty),
		DateOfBirth: f.str("date_of_birth", nil), PlaceOfBirth: f.str("place_of_birth", nil),
		Aadhaar: f.str("aadhaar", nil), PAN: f.str("pan", nil),
		CurrentAddress: f.str("current_address", nil), PermanentAddress: f.str("permanent_address", nil),
	}
}

// DecodeImportLine reads one NDJSON line of an import with the rules of a create body: the fields
// it holds, with every field error in verr; an error when the line is not one JSON object.
func DecodeImportLine(line []byte, verr *users.ValidationError) (users.CreateFields, error) {
	obj, err := parseObject(line)
	if err != nil {
		return users.CreateFields{}, err
	}
	f := newFields(obj, importPolicy)
	in := f.createFields()
	verr.Fields = append(verr.Fields, f.verr.Fields...)
	return in, nil
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// fields reads typed values out of a decoded object, collecting every error in verr.
type fields struct {
	obj  map[string]json.RawMessage
	verr *users.ValidationError
}

// newFields checks every key of obj against policy, in a stable order.
func newFields(obj map[string]json.RawMessage, policy fieldPolicy) *fields {
	f := &fields{obj: obj, verr: &users.ValidationError{}}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch {
		case policy.allowed[k]:
		case policy.immutable[k]:
			f.verr.Add(k, "cannot be changed after the user is created")
		case serverOwned[k]:
			f.verr.Add(k, "is set by the server and cannot be sent")
		default:
			f.verr.Add(k, "is not a known field")
		}
	}
	return f
}

func (f *fields) isNull(name string) bool {
	raw, ok := f.obj[name]
	return ok && bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// str returns the string value of name, nil when absent. null is "must be a string" unless
// nullAs is given, in which case null reads as that value.
func (f *fields) str(name string, nullAs *string) *string {
	raw, ok := f.obj[name]
	if !ok {
		return nil
	}
	if f.isNull(name) {
		if nullAs != nil {
			return nullAs
		}
		f.verr.Add(name, "must be a string, not null")
		return nil
	}
	// encoding/json would turn invalid UTF-8 into U+FFFD and store it; refuse it, naming the field.
	if !utf8.Valid(raw) {
		f.verr.Add(name, "must be valid UTF-8 text")
		return nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		f.verr.Add(name, "must be a string")
		return nil
	}
	return &s
}

func (f *fields) boolean(name string) *bool {
	raw, ok := f.obj[name]
	if !ok {
		return nil
	}
	var b bool
	if f.isNull(name) || json.Unmarshal(raw, &b) != nil {
		f.verr.Add(name, "must be true or false")
		return nil
	}
	return &b
}
