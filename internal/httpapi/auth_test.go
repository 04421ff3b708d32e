package httpapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/usersvc/usersvc/internal/auth"
	"github.com/usersvc/usersvc/internal/httpapi"
)

// pathFor turns a route pattern into a concrete path.
func pathFor(pattern, id string) string { return strings.ReplaceAll(pattern, ":id", id) }

// TestEveryRouteNeedsItsScope: for every route, no key is 401, a key with every other scope is
// 403, and a key with just that scope gets past authorization.
func TestEveryRouteNeedsItsScope(t *testing.T) {
	e := newEnv(t, false)
	u := e.create(t, newPerson())
	id := u["id"].(string)
	for _, rt := range httpapi.Routes() {
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			path := pathFor(rt.Path, id)
			var others []string
			for _, s := range auth.AllScopes {
				if s != rt.Scope {
					others = append(others, s)
				}
			}
			r := e.do(t, rt.Method, path, nil, "Authorization", "")
			if r.Code != 401 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("no key: %d %v", r.Code, r.Header)
			}
			r = e.do(t, rt.Method, path, nil, "Authorization", e.keyWith(t, others...))
			if r.Code != 403 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `scope="`+rt.Scope+`"`) {
				t.Errorf("every other scope: %d %s", r.Code, r.Body)
			}
			r = e.do(t, rt.Method, path, nil, "Authorization", e.keyWith(t, rt.Scope))
			if r.Code == 401 || r.Code == 403 {
				t.Errorf("with %s: %d %s", rt.Scope, r.Code, r.Body)
			}
		})
	}
}

// TestReadmeScopeTable keeps the route/scope table of docs/api.md equal to the code's.
func TestReadmeScopeTable(t *testing.T) {
	readme, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| (GET|POST|PUT|PATCH|DELETE) \\| `(/api/v1/[^`]*)` \\| `([a-z]+:[a-z]+)` \\|")
	var inReadme, inCode []string
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		inReadme = append(inReadme, m[1]+" "+m[2]+" "+m[3])
	}
	for _, rt := range httpapi.Routes() {
		inCode = append(inCode, rt.Method+" "+strings.ReplaceAll(rt.Path, ":id", "{id}")+" "+rt.Scope)
	}
	sort.Strings(inReadme)
	sort.Strings(inCode)
	if strings.Join(inReadme, "\n") != strings.Join(inCode, "\n") {
		t.Fatalf("docs/api.md scope table differs from the code.\ndocs/api.md:\n%s\ncode:\n%s", strings.Join(inReadme, "\n"), strings.Join(inCode, "\n"))
	}
}

func TestBadCredentials(t *testing.T) {
	e := newEnv(t, false)
	revoked, id, err := auth.Create(context.Background(), e.db, "revoked-"+randLetters(6), auth.AllScopes, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Exec("UPDATE api_keys SET revoked_at = UTC_TIMESTAMP(6) WHERE id = ?", id); err != nil {
		t.Fatal(err)
	}
	good := e.key
	for name, header := range map[string]string{
		"basic scheme":      "Basic dXNlcjpwYXNz",
		"empty bearer":      "Bearer ",
		"not a key":         "Bearer hello",
		"unknown id":        "Bearer usvc_aaaaaaaaaaaa_" + strings.Repeat("A", 43),
		"wrong secret":      "Bearer " + good[:len(good)-1] + map[bool]string{true: "B", false: "A"}[good[len(good)-1] == 'A'],
		"truncated":         "Bearer " + good[:len(good)-5],
		"revoked":           "Bearer " + revoked,
		"jwt when disabled": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig",
	} {
		r := e.do(t, "GET", "/api/v1/users/", nil, "Authorization", header)
		if r.Code != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: %d %v", name, r.Code, r.Header)
		}
	}
	if r := e.do(t, "GET", "/healthz", nil, "Authorization", ""); r.Code != 200 {
		t.Errorf("healthz needs no key: %d", r.Code)
	}
}

func TestMaskingAndAuditedPIIReads(t *testing.T) {
	e := newEnv(t, false)
	p := newPerson()
	u := e.create(t, p)
	id := u["id"].(string)
	aad, pan := p["aadhaar"].(string), p["pan"].(string)
	reader := e.keyWith(t, auth.ScopeUsersRead)
	r := e.do(t, "GET", "/api/v1/users/"+id, nil, "Authorization", reader)
	if g := r.JSON(t); g["aadhaar"] != "XXXX XXXX "+aad[8:] || g["pan"] != "XXXXX"+pan[5:] {
		t.Errorf("reader without users:pii: %v %v", g["aadhaar"], g["pan"])
	}
	if strings.Contains(string(r.Body), aad) || strings.Contains(string(r.Body), pan) {
		t.Error("full values leaked to a reader without users:pii")
	}
	piiReader := e.keyWith(t, auth.ScopeUsersRead, auth.ScopeUsersPII)
	if g := e.do(t, "GET", "/api/v1/users/"+id, nil, "Authorization", piiReader).JSON(t); g["aadhaar"] != aad || g["pan"] != pan {
		t.Errorf("users:pii: %v %v", g["aadhaar"], g["pan"])
	}
	var action, actor string
	if err := e.db.QueryRow("SELECT action, actor FROM user_audit WHERE user_id = ? ORDER BY id DESC LIMIT 1", id).Scan(&action, &actor); err != nil {
		t.Fatal(err)
	}
	if action != "pii_read" || !strings.HasPrefix(actor, "apikey:") {
		t.Errorf("last audit row: %s by %s", action, actor)
	}
	// Only one pii_read: the masked read was not audited as one.
	if n := countRows(t, e.db, "SELECT COUNT(*) FROM user_audit WHERE user_id = ? AND action = 'pii_read'", id); n != 1 {
		t.Errorf("pii_read rows: %d", n)
	}

	// Lookup by Aadhaar or PAN, in the body, needs users:pii.
	lookup := func(body any, key string) response {
		return e.do(t, "POST", "/api/v1/users/lookup", body, "Authorization", key)
	}
	if r := lookup(map[string]any{"aadhaar": aad[:4] + " " + aad[4:]}, piiReader); r.Code != 200 || r.JSON(t)["id"] != id || r.JSON(t)["aadhaar"] != aad {
		t.Errorf("lookup by aadhaar: %d %s", r.Code, r.Body)
	}
	if r := lookup(map[string]any{"pan": strings.ToLower(pan)}, piiReader); r.Code != 200 || r.JSON(t)["id"] != id {
		t.Errorf("lookup by pan: %d %s", r.Code, r.Body)
	}
	if r := lookup(map[string]any{"pan": newPAN()}, piiReader); r.Code != 404 {
		t.Errorf("lookup of an unknown pan: %d", r.Code)
	}
	for _, body := range []any{map[string]any{}, map[string]any{"aadhaar": aad, "pan": pan}, map[string]any{"aadhaar": "123"}, map[string]any{"email": "x@y.com"}} {
		if r := lookup(body, piiReader); r.Code != 422 {
			t.Errorf("lookup %v: %d", body, r.Code)
		}
	}
	if r := lookup(map[string]any{"pan": pan}, reader); r.Code != 403 {
		t.Errorf("lookup without users:pii: %d", r.Code)
	}
}

// TestJWT: HS256 with a shared secret, RS256 and ES256 from a JWKS the test serves; issuer,
// audience, expiry and scopes are checked.
func TestJWT(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: rsaKey.Public(), KeyID: "rsa-1", Algorithm: "RS256", Use: "sig"},
		{Key: ecKey.Public(), KeyID: "ec-1", Algorithm: "ES256", Use: "sig"},
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(jwks) }))
	defer srv.Close()
	secret := []byte("hs256-test-secret-hs256-test-secret")
	e := newEnvWith(t, envOptions{jwt: &auth.JWTConfig{HS256Secret: secret, JWKSURL: srv.URL, Issuer: "https://idp.example", Audience: "usersvc"}})

	sign := func(alg jose.SignatureAlgorithm, key any, kid string, claims jwt.Claims, scope any) string {
		opts := (&jose.SignerOptions{}).WithType("JWT")
		if kid != "" {
			opts = opts.WithHeader("kid", kid)
		}
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Signed(s).Claims(claims).Claims(map[string]any{"scope": scope}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	good := jwt.Claims{Issuer: "https://idp.example", Audience: jwt.Audience{"usersvc"}, Subject: "alice",
		Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour)), IssuedAt: jwt.NewNumericDate(time.Now())}
	for name, tc := range map[string]struct {
		header string
		want   int
	}{
		"HS256":            {sign(jose.HS256, secret, "", good, "users:read"), 200},
		"RS256 via JWKS":   {sign(jose.RS256, rsaKey, "rsa-1", good, "users:read users:write"), 200},
		"ES256 scope list": {sign(jose.ES256, ecKey, "ec-1", good, []string{"users:read"}), 200},
		"missing scope":    {sign(jose.HS256, secret, "", good, "audit:read"), 403},
		"wrong audience":   {sign(jose.HS256, secret, "", withAud(good, "other"), "users:read"), 401},
		"wrong issuer":     {sign(jose.HS256, secret, "", withIss(good, "https://evil.example"), "users:read"), 401},
		"expired":          {sign(jose.HS256, secret, "", withExp(good, time.Now().Add(-time.Hour)), "users:read"), 401},
		"wrong HS secret":  {sign(jose.HS256, []byte("another-secret-another-secret-another"), "", good, "users:read"), 401},
		"unknown kid":      {sign(jose.RS256, rsaKey, "rsa-9", good, "users:read"), 401},
		"RSA key, EC kid":  {sign(jose.RS256, rsaKey, "ec-1", good, "users:read"), 401},
	} {
		if r := e.do(t, "GET", "/api/v1/users/", nil, "Authorization", tc.header); r.Code != tc.want {
			t.Errorf("%s: %d, want %d: %s", name, r.Code, tc.want, r.Body)
		}
	}
	// The JWT subject is the actor of writes.
	r := e.do(t, "POST", "/api/v1/users/", newPerson(), "Authorization", sign(jose.RS256, rsaKey, "rsa-1", good, "users:write"))
	if r.Code != 201 || r.JSON(t)["created_by"] != "jwt:alice" {
		t.Errorf("create by JWT: %d %s", r.Code, r.Body)
	}
}

func withAud(c jwt.Claims, aud string) jwt.Claims    { c.Audience = jwt.Audience{aud}; return c }
func withIss(c jwt.Claims, iss string) jwt.Claims    { c.Issuer = iss; return c }
func withExp(c jwt.Claims, exp time.Time) jwt.Claims { c.Expiry = jwt.NewNumericDate(exp); return c }
