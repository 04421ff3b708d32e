// Package auth authenticates bearer credentials (this service's API keys, and optionally JWTs
// from an identity provider) into a Principal with scopes.
package auth

import (
	"context"
	"errors"
	"sort"
	"strings"
)

// Scopes a principal may hold.
const (
	ScopeUsersRead   = "users:read"
	ScopeUsersWrite  = "users:write"
	ScopeUsersDelete = "users:delete" // soft delete and restore
	ScopeUsersErase  = "users:erase"
	ScopeUsersPII    = "users:pii" // full Aadhaar and PAN
	ScopeAuditRead   = "audit:read"
	ScopeUsersImport = "users:import" // bulk import (POST /users/import)
)

// AllScopes lists every scope, for validation and the local development key.
var AllScopes = []string{ScopeUsersRead, ScopeUsersWrite, ScopeUsersDelete, ScopeUsersErase, ScopeUsersPII, ScopeAuditRead, ScopeUsersImport}

// Principal is an authenticated caller. ID is what audit fields record as the actor.
type Principal struct {
	ID     string
	scopes map[string]bool
}

// NewPrincipal returns a principal with the given scopes.
func NewPrincipal(id string, scopes []string) Principal {
	p := Principal{ID: id, scopes: map[string]bool{}}
	for _, s := range scopes {
		p.scopes[s] = true
	}
	return p
}

// Has reports whether p holds scope.
func (p Principal) Has(scope string) bool { return p.scopes[scope] }

// Errors of Authenticate. Their text is safe to return to clients.
var (
	ErrNoCredentials = errors.New("missing bearer credentials")
	ErrInvalid       = errors.New("invalid, expired or revoked credentials")
)

// ParseScopes validates a list of scopes (comma- or space-separated).
func ParseScopes(s string) ([]string, error) {
	known := map[string]bool{}
	for _, k := range AllScopes {
		known[k] = true
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if !known[f] {
			return nil, errors.New("unknown scope " + f + "; known: " + strings.Join(AllScopes, ", "))
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("at least one scope is required")
	}
	sort.Strings(out)
	return out, nil
}

// Verifier checks one kind of bearer token. It returns ErrInvalid for a token of its kind that
// fails, and errNotMine for a token it does not handle.
type Verifier interface {
	Verify(ctx context.Context, token string) (Principal, error)
}

var errNotMine = errors.New("not this verifier's token")

// Authenticator tries its verifiers in order.
type Authenticator struct{ verifiers []Verifier }

// NewAuthenticator returns an Authenticator; nil verifiers are skipped.
func NewAuthenticator(vs ...Verifier) *Authenticator {
	a := &Authenticator{}
	for _, v := range vs {
		if v != nil {
			a.verifiers = append(a.verifiers, v)
		}
	}
	return a
}

// Authenticate turns an Authorization header value into a principal.
func (a *Authenticator) Authenticate(ctx context.Context, header string) (Principal, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if header == "" {
		return Principal{}, ErrNoCredentials
	}
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return Principal{}, ErrInvalid
	}
	for _, v := range a.verifiers {
		p, err := v.Verify(ctx, token)
		if errors.Is(err, errNotMine) {
			continue
		}
		return p, err
	}
	return Principal{}, ErrInvalid
}
