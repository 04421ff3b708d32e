// Package ratelimit spends a Redis GCRA budget (github.com/go-redis/redis_rate) in leases, so that
// a busy client costs one Redis call per lease instead of one per request, while every replica
// still draws on the one budget per client in Redis.
//
// How: the first request of a client asks Redis for one token. Each time a replica has spent its
// lease and asks again, it asks for twice as many, up to the lease cap: min(MaxLease, burst/32),
// at least 1. Redis grants what the budget holds (AllowAtMost), the replica spends the grant
// locally, and a refusal is remembered until Redis said a token would be free again.
//
// The bound: requests are only allowed on tokens Redis granted, so in the long run a client gets
// exactly its rate. Within one window, though, a replica may spend tokens it bought before the
// window began, at most one lease's worth: the requests allowed in any window exceed what the GCRA
// alone would allow by at most replicas × lease cap. The other way round, tokens a replica holds
// are missing from the others: a client may be refused while up to replicas × (lease cap − 1)
// tokens sit unspent, and a lease idle for IdleAfter is dropped with what it held. Clients below
// 64 requests per minute (lease cap 1) are limited exactly, with one Redis call per request.
package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// IdleAfter is how long an unused lease is kept.
const IdleAfter = 10 * time.Second

// Leases hands out tokens from leases taken from a redis_rate Limiter.
type Leases struct {
	limiter  *redis_rate.Limiter
	maxLease int
	now      func() time.Time

	mu        sync.Mutex
	leases    map[string]*lease
	lastSweep time.Time
}

type lease struct {
	used time.Time // the last Take began (guarded by Leases.mu)

	mu     sync.Mutex
	tokens int // granted by Redis, not yet spent
	size   int // how many to ask for next time
	// What Redis said at the last grant: the budget left after it and when it is full again.
	remaining int
	resetAt   time.Time
	// After a refusal: Redis grants nothing before deniedUntil.
	deniedUntil time.Time
}

// Result is one decision, with what the RateLimit headers show.
type Result struct {
	Allowed bool
	// Remaining is what this client may still send now: the tokens this replica holds plus what
	// Redis had left at its last grant.
	Remaining int
	// ResetAfter is the time until the budget is full again; RetryAfter, after a refusal, the
	// time until a request may pass.
	ResetAfter, RetryAfter time.Duration
}

// New returns Leases over limiter. maxLease 1 asks Redis for every request.
func New(limiter *redis_rate.Limiter, maxLease int) *Leases {
	return &Leases{limiter: limiter, maxLease: max(1, maxLease), now: time.Now, leases: map[string]*lease{}}
}

// LeaseCap is the largest lease taken for limit.
func (l *Leases) LeaseCap(limit redis_rate.Limit) int {
	return max(1, min(l.maxLease, limit.Burst/32))
}

// Take decides one request of key under limit. An error means Redis could not be asked and no
// token was held: the caller applies its policy for an unavailable Redis.
func (l *Leases) Take(ctx context.Context, key string, limit redis_rate.Limit) (Result, error) {
	le := l.get(key, l.now())
	le.mu.Lock()
	defer le.mu.Unlock()
	// The time after the wait: requests of one client queue here while one of them asks Redis.
	now := l.now()
	if le.tokens == 0 && now.Before(le.deniedUntil) {
		return Result{RetryAfter: le.deniedUntil.Sub(now), ResetAfter: le.resetAt.Sub(now)}, nil
	}
	if le.tokens == 0 {
		n := min(le.size, l.LeaseCap(limit))
		res, err := l.limiter.AllowAtMost(ctx, key, limit, n)
		if err != nil {
			return Result{}, err
		}
		le.remaining, le.resetAt = res.Remaining, now.Add(res.ResetAfter)
		if res.Allowed == 0 {
			le.deniedUntil = now.Add(res.RetryAfter)
			return Result{RetryAfter: res.RetryAfter, ResetAfter: res.ResetAfter}, nil
		}
		le.tokens = res.Allowed
		le.size = min(2*n, l.LeaseCap(limit))
	}
	le.tokens--
	return Result{Allowed: true, Remaining: le.tokens + le.remaining, ResetAfter: max(0, le.resetAt.Sub(now))}, nil
}

// get returns key's lease, making it if needed; now and then it drops leases idle for IdleAfter.
func (l *Leases) get(key string, now time.Time) *lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > IdleAfter {
		l.lastSweep = now
		for k, le := range l.leases {
			if now.Sub(le.used) > IdleAfter {
				delete(l.leases, k)
			}
		}
	}
	le := l.leases[key]
	if le == nil {
		le = &lease{size: 1}
		l.leases[key] = le
	}
	le.used = now
	return le
}

// Len is the number of leases held.
func (l *Leases) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.leases)
}
