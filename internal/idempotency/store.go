// Package idempotency stores Idempotency-Key records in Redis so that every replica sees them
// (draft-ietf-httpapi-idempotency-key-header). A record is first an in-flight marker with a short
// TTL (so that a crashed replica cannot pin a key), then the completed response, kept for the
// configured TTL and replayed byte for byte.
package idempotency

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Record states.
const (
	StateInFlight = "in_flight"
	StateDone     = "done"
)

// Record is what Redis holds for one key.
type Record struct {
	State       string            `json:"state"`
	Fingerprint string            `json:"fp"`
	Owner       string            `json:"owner,omitempty"`
	Status      int               `json:"status,omitempty"`
	Header      map[string]string `json:"header,omitempty"`
	Body        []byte            `json:"body,omitempty"`
	// UserID is the user the response is about, if any: erasing that user removes the record
	// (ForgetUser), and a replay first checks that the user was not erased.
	UserID string `json:"user,omitempty"`
}

// Store keeps records under "<prefix>:idem:{<key hash>}"; the braces are a Redis Cluster hash tag.
type Store struct {
	rdb         redis.UniversalClient
	prefix      string
	TTL         time.Duration
	InFlightTTL time.Duration
	// Wait is how long a request that finds its key in flight waits for the first request to
	// finish (and then replays its response) before answering 409.
	Wait time.Duration
}

// NewStore returns a Store.
func NewStore(rdb redis.UniversalClient, prefix string, ttl, inFlightTTL, wait time.Duration) *Store {
	return &Store{rdb: rdb, prefix: prefix, TTL: ttl, InFlightTTL: inFlightTTL, Wait: wait}
}

func (s *Store) key(hash []byte) string { return s.prefix + ":idem:{" + hex.EncodeToString(hash) + "}" }

// userKey names the set of a user's record keys, "<prefix>:idemu:{<user id>}".
func (s *Store) userKey(userID string) string { return s.prefix + ":idemu:{" + userID + "}" }

// Claim is a key this request now owns; Complete or Release it.
type Claim struct {
	hash  []byte
	owner string
}

// Begin claims the key for a request with the given fingerprint. It returns a Claim when the
// caller now owns the key, or the existing record (in flight or done) when another request
// has it.
func (s *Store) Begin(ctx context.Context, hash []byte, fingerprint string) (*Claim, *Record, error) {
	ownerBytes := make([]byte, 12)
	_, _ = rand.Read(ownerBytes)
	owner := hex.EncodeToString(ownerBytes)
	marker, _ := json.Marshal(Record{State: StateInFlight, Fingerprint: fingerprint, Owner: owner})
	for attempt := 0; attempt < 3; attempt++ {
		ok, err := s.rdb.SetNX(ctx, s.key(hash), marker, s.InFlightTTL).Result()
		if err != nil {
			return nil, nil, fmt.Errorf("idempotency store: %w", err)
		}
		if ok {
			return &Claim{hash: hash, owner: owner}, nil, nil
		}
		raw, err := s.rdb.Get(ctx, s.key(hash)).Bytes()
		if errors.Is(err, redis.Nil) {
			continue // expired between SETNX and GET: try to claim again
		}
		if err != nil {
			return nil, nil, fmt.Errorf("idempotency store: %w", err)
		}
		var rec Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, nil, fmt.Errorf("idempotency store: corrupt record: %w", err)
		}
		return nil, &rec, nil
	}
	return nil, nil, errors.New("idempotency store: key keeps expiring")
}

// BeginOrWait is Begin, except that a key found in flight is polled for up to s.Wait: if the
// first request finishes meanwhile, its record is returned for replay; if its marker vanishes
// (it failed and released the key), the key is claimed.
func (s *Store) BeginOrWait(ctx context.Context, hash []byte, fingerprint string) (*Claim, *Record, error) {
	deadline := time.Now().Add(s.Wait)
	for {
		claim, rec, err := s.Begin(ctx, hash, fingerprint)
		if err != nil || claim != nil || rec.State != StateInFlight || rec.Fingerprint != fingerprint || !time.Now().Before(deadline) {
			return claim, rec, err
		}
		select {
		case <-ctx.Done():
			return nil, rec, nil
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Complete stores the final response for the claimed key for s.TTL. A record about a user is
// first listed in the user's set, so that ForgetUser finds every record it must remove.
func (s *Store) Complete(ctx context.Context, c *Claim, rec Record) error {
	rec.State, rec.Owner = StateDone, ""
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if rec.UserID != "" {
		// Two keys in different hash slots: separate commands, in this order (Redis Cluster
		// refuses multi-key commands across slots).
		uk := s.userKey(rec.UserID)
		if err := s.rdb.SAdd(ctx, uk, s.key(c.hash)).Err(); err != nil {
			return err
		}
		if err := s.rdb.Expire(ctx, uk, s.TTL).Err(); err != nil {
			return err
		}
	}
	return s.rdb.Set(ctx, s.key(c.hash), raw, s.TTL).Err()
}

// ForgetUser deletes every stored response about the user (after its erasure) and returns how
// many there were. A record completed after it ran is caught at replay (Record.UserID).
func (s *Store) ForgetUser(ctx context.Context, userID string) (int, error) {
	uk := s.userKey(userID)
	keys, err := s.rdb.SMembers(ctx, uk).Result()
	if err != nil {
		return 0, fmt.Errorf("idempotency store: %w", err)
	}
	n := 0
	for _, k := range keys {
		deleted, err := s.rdb.Del(ctx, k).Result()
		if err != nil {
			return n, fmt.Errorf("idempotency store: %w", err)
		}
		n += int(deleted)
	}
	return n, s.rdb.Del(ctx, uk).Err()
}

// Forget deletes one record (a replay found its user erased).
func (s *Store) Forget(ctx context.Context, hash []byte) error {
	return s.rdb.Del(ctx, s.key(hash)).Err()
}

// releaseScript deletes the key only while it is still this owner's in-flight marker.
var releaseScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, rec = pcall(cjson.decode, v)
if ok and rec.state == 'in_flight' and rec.owner == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Release gives the key up without a stored response (the request failed in a way a retry
// should repeat: a 5xx, or the client went away).
func (s *Store) Release(ctx context.Context, c *Claim) error {
	return releaseScript.Run(ctx, s.rdb, []string{s.key(c.hash)}, c.owner).Err()
}
