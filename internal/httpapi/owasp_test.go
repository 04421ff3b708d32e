package httpapi_test

// The OWASP API Security Top 10 (2023), and where this suite covers each item that applies:
//
//	API1 Broken object level authorization: every object route needs a scope; there is one
//	     tenant, so object ownership is not modelled (TestEveryRouteNeedsItsScope).
//	API2 Broken authentication: missing, malformed, unknown, wrong-secret, truncated and revoked
//	     keys, JWTs with wrong issuer/audience/key/expiry (TestBadCredentials, TestJWT).
//	API3 Broken object property level authorization: mass assignment of server-owned and
//	     immutable fields is a 422 (TestCreateValidation "server-owned", TestUpdate), and full
//	     Aadhaar/PAN need users:pii (TestMaskingAndAuditedPIIReads).
//	API4 Unrestricted resource consumption: page_size bound (TestListPagination), body size
//	     (TestBodyErrors "too large"), rate limits (TestRateLimit, TestWriteRateLimitClass).
//	API5 Broken function level authorization: every route x every scope (TestEveryRouteNeedsItsScope).
//	API8 Security misconfiguration: headers and CORS (TestSecurityHeadersAndCORS below).
//	API6, API7, API9, API10 (business flows, SSRF, inventory, unsafe consumption): the service
//	     calls no URL a client supplies; the JWKS URL comes from configuration only.

import (
	"strings"
	"testing"
)

func TestSecurityHeadersAndCORS(t *testing.T) {
	e := newEnv(t, false)
	u := e.create(t, newPerson())
	for _, path := range []string{"/api/v1/users/" + u["id"].(string), "/api/v1/users/", "/api/v1/nothing"} {
		r := e.do(t, "GET", path, nil)
		if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: Cache-Control %q, X-Content-Type-Options %q", path, r.Header.Get("Cache-Control"), r.Header.Get("X-Content-Type-Options"))
		}
	}
	if r := e.do(t, "GET", "/api/v1/users/", nil, "Authorization", ""); r.Header.Get("Cache-Control") != "no-store" {
		t.Error("401 without no-store")
	}
	// CORS: only configured origins, never with credentials.
	r := e.do(t, "OPTIONS", "/api/v1/users/", nil, "Origin", "http://localhost:3000", "Access-Control-Request-Method", "DELETE")
	if r.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" || r.Header.Get("Access-Control-Allow-Credentials") != "" ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Authorization") || !strings.Contains(r.Header.Get("Vary"), "Origin") {
		t.Errorf("preflight: %v", r.Header)
	}
	for _, origin := range []string{"https://evil.example", "null", "http://localhost:3000.evil.example"} {
		r := e.do(t, "GET", "/api/v1/users/", nil, "Origin", origin)
		if r.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("origin %q allowed", origin)
		}
	}
}
