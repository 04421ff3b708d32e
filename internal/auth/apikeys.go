package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// KeyPrefix marks this service's API keys, so that secret scanners can recognise leaked ones:
// usvc_<12-character id>_<43-character base64url secret>.
const KeyPrefix = "usvc_"

const (
	idAlphabet = "abcdefghijkmnopqrstuvwxyz23456789" // no l, 0, 1: ids are read aloud
	idLen      = 12
)

// NewKey returns a new key's plaintext (shown once), its id and the hash to store.
func NewKey() (plaintext, id string, secretHash []byte) {
	idb := make([]byte, idLen)
	_, _ = rand.Read(idb)
	for i := range idb {
		idb[i] = idAlphabet[int(idb[i])%len(idAlphabet)]
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	s := base64.RawURLEncoding.EncodeToString(secret) // 43 characters, 256 bits
	h := sha256.Sum256([]byte(s))
	return KeyPrefix + string(idb) + "_" + s, string(idb), h[:]
}

// parseKey splits a key into id and secret.
func parseKey(token string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, KeyPrefix)
	if !found {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	return id, secret, ok && len(id) == idLen && len(secret) == 43
}

// KeyStore verifies API keys against the api_keys table, with a short cache so that most
// requests do not read the table. A revocation takes effect within CacheTTL on every replica.
type KeyStore struct {
	db       *sql.DB
	CacheTTL time.Duration
	now      func() time.Time

	mu      sync.Mutex
	cache   map[string]cachedKey
	touched map[string]time.Time
}

type cachedKey struct {
	row     sqlcgen.ApiKey
	expires time.Time
}

// touchEvery bounds how often a replica records a key's last use.
const touchEvery = time.Minute

// NewKeyStore returns a KeyStore on db.
func NewKeyStore(db *sql.DB) *KeyStore {
	return &KeyStore{db: db, CacheTTL: 10 * time.Second, now: time.Now, cache: map[string]cachedKey{}, touched: map[string]time.Time{}}
}

// Verify implements Verifier for usvc_ keys.
func (s *KeyStore) Verify(ctx context.Context, token string) (Principal, error) {
	if !strings.HasPrefix(token, KeyPrefix) {
		return Principal{}, errNotMine
	}
	id, secret, ok := parseKey(token)
	if !ok {
		return Principal{}, ErrInvalid
	}
	row, err := s.lookup(ctx, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Principal{}, ErrInvalid
	}
	if err != nil {
		return Principal{}, fmt.Errorf("look up api key: %w", err)
	}
	h := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(h[:], row.SecretHash) != 1 || row.RevokedAt.Valid {
		return Principal{}, ErrInvalid
	}
	now := s.now().UTC()
	if s.shouldTouch(id, now) {
		// Best effort: a failed touch must not fail the request. The UPDATE itself only writes
		// when the stored time is stale, so replicas do not fight over the row either.
		_ = sqlcgen.New(s.db).TouchAPIKey(ctx, sqlcgen.TouchAPIKeyParams{
			Now: sql.NullTime{Time: now, Valid: true}, ID: id, StaleBefore: sql.NullTime{Time: now.Add(-touchEvery), Valid: true},
		})
	}
	return NewPrincipal("apikey:"+row.ID, strings.Fields(row.Scopes)), nil
}

// shouldTouch reports, at most once per touchEvery per key and replica, that last use should be
// recorded: otherwise every request would run an UPDATE on one hot row.
func (s *KeyStore) shouldTouch(id string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.touched[id]; ok && now.Sub(last) < touchEvery {
		return false
	}
	if len(s.touched) > 10000 {
		s.touched = map[string]time.Time{}
	}
	s.touched[id] = now
	return true
}

func (s *KeyStore) lookup(ctx context.Context, id string) (sqlcgen.ApiKey, error) {
	now := s.now()
	s.mu.Lock()
	c, ok := s.cache[id]
	s.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.row, nil
	}
	row, err := sqlcgen.New(s.db).GetAPIKey(ctx, id)
	if err != nil {
		return row, err
	}
	s.mu.Lock()
	if len(s.cache) > 10000 {
		s.cache = map[string]cachedKey{}
	}
	s.cache[id] = cachedKey{row: row, expires: now.Add(s.CacheTTL)}
	s.mu.Unlock()
	return row, nil
}

// Create stores a new key and returns its plaintext, which is never stored.
func Create(ctx context.Context, db *sql.DB, name string, scopes []string, now time.Time) (plaintext, id string, err error) {
	plaintext, id, hash := NewKey()
	err = sqlcgen.New(db).InsertAPIKey(ctx, sqlcgen.InsertAPIKeyParams{
		ID: id, Name: name, SecretHash: hash, Scopes: strings.Join(scopes, " "), CreatedAt: now.UTC(),
	})
	return plaintext, id, err
}
