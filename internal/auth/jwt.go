package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// JWTConfig configures verification of JWT bearer tokens from an identity provider.
type JWTConfig struct {
	// HS256Secret verifies HS256 tokens. Either it or JWKSURL must be set.
	HS256Secret []byte
	// JWKSURL is fetched for RS256/ES256 public keys (refreshed every JWKSRefresh, and when a
	// token names an unknown key id).
	JWKSURL     string
	JWKSRefresh time.Duration
	Issuer      string
	Audience    string
	// ScopesClaim names the claim holding scopes: a space-separated string or a list.
	ScopesClaim string
	HTTPClient  *http.Client
}

// JWTVerifier verifies JWTs.
type JWTVerifier struct {
	cfg JWTConfig

	mu      sync.Mutex
	keys    jose.JSONWebKeySet
	fetched time.Time
}

// NewJWTVerifier returns a verifier, or nil when cfg configures none.
func NewJWTVerifier(cfg JWTConfig) *JWTVerifier {
	if len(cfg.HS256Secret) == 0 && cfg.JWKSURL == "" {
		return nil
	}
	if cfg.ScopesClaim == "" {
		cfg.ScopesClaim = "scope"
	}
	if cfg.JWKSRefresh == 0 {
		cfg.JWKSRefresh = 10 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	return &JWTVerifier{cfg: cfg}
}

// Verify implements Verifier for compact JWS tokens.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Principal, error) {
	if strings.Count(token, ".") != 2 {
		return Principal{}, errNotMine
	}
	algs := []jose.SignatureAlgorithm{jose.RS256, jose.ES256}
	if len(v.cfg.HS256Secret) > 0 {
		algs = append(algs, jose.HS256)
	}
	tok, err := jwt.ParseSigned(token, algs)
	if err != nil || len(tok.Headers) != 1 {
		return Principal{}, ErrInvalid
	}
	key, err := v.key(ctx, tok.Headers[0])
	if err != nil {
		return Principal{}, err
	}
	var std jwt.Claims
	var extra map[string]any
	if err := tok.Claims(key, &std, &extra); err != nil {
		return Principal{}, ErrInvalid
	}
	exp := jwt.Expected{Issuer: v.cfg.Issuer, Time: time.Now()}
	if v.cfg.Audience != "" {
		exp.AnyAudience = jwt.Audience{v.cfg.Audience}
	}
	if err := std.ValidateWithLeeway(exp, 30*time.Second); err != nil || std.Subject == "" || std.Expiry == nil {
		return Principal{}, ErrInvalid
	}
	return NewPrincipal("jwt:"+std.Subject, scopesOf(extra[v.cfg.ScopesClaim])), nil
}

func scopesOf(v any) []string {
	switch s := v.(type) {
	case string:
		return strings.Fields(s)
	case []any:
		var out []string
		for _, x := range s {
			if str, ok := x.(string); ok {
				out = append(out, str)
			}
		}
		return out
	}
	return nil
}

// key picks the verification key for a token header.
func (v *JWTVerifier) key(ctx context.Context, h jose.Header) (any, error) {
	if h.Algorithm == string(jose.HS256) {
		if len(v.cfg.HS256Secret) == 0 {
			return nil, ErrInvalid
		}
		return v.cfg.HS256Secret, nil
	}
	if v.cfg.JWKSURL == "" {
		return nil, ErrInvalid
	}
	for attempt := 0; attempt < 2; attempt++ {
		keys, err := v.jwks(ctx, attempt == 1)
		if err != nil {
			return nil, err
		}
		for _, k := range keys.Key(h.KeyID) {
			if k.Algorithm == "" || k.Algorithm == h.Algorithm {
				return k.Public().Key, nil
			}
		}
	}
	return nil, ErrInvalid
}

func (v *JWTVerifier) jwks(ctx context.Context, force bool) (jose.JSONWebKeySet, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !force && time.Since(v.fetched) < v.cfg.JWKSRefresh && len(v.keys.Keys) > 0 {
		return v.keys, nil
	}
	if force && time.Since(v.fetched) < 5*time.Second {
		return v.keys, nil // an unknown kid must not turn every request into a JWKS fetch
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.JWKSURL, nil)
	if err != nil {
		return v.keys, err
	}
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return v.keys, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v.keys, fmt.Errorf("fetch JWKS: status %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return v.keys, fmt.Errorf("decode JWKS: %w", err)
	}
	if len(set.Keys) == 0 {
		return v.keys, errors.New("JWKS has no keys")
	}
	v.keys, v.fetched = set, time.Now()
	return set, nil
}
