package ratelimit

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/usersvc/usersvc/internal/testdb"
)

// counting counts the scripts run in Redis (the limiter's calls).
type counting struct{ n atomic.Int64 }

func (c *counting) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *counting) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *counting) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func newRedis(t *testing.T) (*redis.Client, *counting) {
	t.Helper()
	opt, err := redis.ParseURL(testdb.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	c := &counting{}
	rdb.AddHook(c)
	return rdb, c
}

func key() string { return "test-rl-" + testdb.Letters(12) }

// Below 64 per minute the lease cap is 1: three replicas share the budget exactly, and the
// remaining count is exact.
func TestSmallLimitsAreExact(t *testing.T) {
	rdb, _ := newRedis(t)
	ctx, k, limit := context.Background(), key(), redis_rate.PerMinute(5)
	replicas := []*Leases{New(redis_rate.NewLimiter(rdb), 64), New(redis_rate.NewLimiter(rdb), 64), New(redis_rate.NewLimiter(rdb), 64)}
	if c := replicas[0].LeaseCap(limit); c != 1 {
		t.Fatalf("lease cap for 5/min = %d, want 1", c)
	}
	for i := 1; i <= 8; i++ {
		res, err := replicas[i%3].Take(ctx, k, limit)
		if err != nil {
			t.Fatal(err)
		}
		if want := i <= 5; res.Allowed != want {
			t.Fatalf("request %d: allowed %v, want %v", i, res.Allowed, want)
		}
		if res.Allowed && res.Remaining != 5-i {
			t.Errorf("request %d: remaining %d, want %d", i, res.Remaining, 5-i)
		}
		if !res.Allowed && (res.RetryAfter <= 0 || res.RetryAfter > 12*time.Second) {
			t.Errorf("request %d: retry after %v, want up to 12s (one token per 12s)", i, res.RetryAfter)
		}
	}
}

// A busy client costs one Redis call per lease: 10,000 requests at a generous limit make at most
// 10,000/64 calls, plus the few while the lease grows (1, 2, 4, ... 64).
func TestLeasesCutRedisCalls(t *testing.T) {
	rdb, calls := newRedis(t)
	l := New(redis_rate.NewLimiter(rdb), 64)
	ctx, k, limit := context.Background(), key(), redis_rate.PerMinute(1_000_000)
	before := calls.n.Load()
	for i := 0; i < 10_000; i++ {
		res, err := l.Take(ctx, k, limit)
		if err != nil || !res.Allowed {
			t.Fatalf("request %d: %+v %v", i, res, err)
		}
	}
	// 6 calls grow the lease (1+2+...+32 tokens), then one per 64; a script's first run in a Redis
	// may cost an EVALSHA and an EVAL.
	n := calls.n.Load() - before
	if limit := int64(6 + (10_000-63+63)/64 + 1); n > limit { // 6 + ceil(9,937 / 64) + 1
		t.Fatalf("%d Redis calls for 10,000 requests, want at most %d", n, limit)
	}
	t.Logf("%d Redis calls for 10,000 requests", n)
}

// The overshoot bound: three replicas each hold a full lease bought earlier, the client's budget in
// Redis is full again, and a burst arrives. The replicas allow the held tokens on top of the
// budget: more than the GCRA alone would (the bound is real), and never more than burst + what
// refilled during the burst + replicas × lease cap.
func TestOvershootBound(t *testing.T) {
	rdb, _ := newRedis(t)
	ctx, k := context.Background(), key()
	limit := redis_rate.Limit{Rate: 320, Burst: 320, Period: time.Second}
	replicas := []*Leases{New(redis_rate.NewLimiter(rdb), 10), New(redis_rate.NewLimiter(rdb), 10), New(redis_rate.NewLimiter(rdb), 10)}
	leaseCap := replicas[0].LeaseCap(limit)
	if leaseCap != 10 {
		t.Fatalf("lease cap %d, want 10", leaseCap)
	}
	take := func(l *Leases) Result {
		t.Helper()
		res, err := l.Take(ctx, k, limit)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	waitFull := func(res Result) { time.Sleep(res.ResetAfter + 50*time.Millisecond) }
	// Grow every replica's lease to the cap: 1 + 2 + 4 + 8 + 10 tokens.
	var last Result
	for _, l := range replicas {
		for i := 0; i < 25; i++ {
			last = take(l)
		}
	}
	waitFull(last)
	// One request each buys a full lease and leaves cap-1 tokens held.
	for _, l := range replicas {
		last = take(l)
	}
	held := len(replicas) * (leaseCap - 1)
	waitFull(last)

	start := time.Now()
	allowed, denials := 0, 0
	for i := 0; denials < 60; i++ {
		if take(replicas[i%3]).Allowed {
			allowed, denials = allowed+1, 0
		} else {
			denials++
		}
	}
	refilled := int(time.Since(start).Seconds()*float64(limit.Rate)) + 1
	bound := limit.Burst + refilled + len(replicas)*leaseCap
	t.Logf("burst allowed %d: budget %d + held %d + refilled up to %d; bound %d", allowed, limit.Burst, held, refilled, bound)
	if allowed <= limit.Burst {
		t.Errorf("allowed %d: the held leases should have been spent on top of the budget of %d", allowed, limit.Burst)
	}
	if allowed > bound {
		t.Errorf("allowed %d, more than the bound %d (burst + refill + replicas × lease cap)", allowed, bound)
	}
}

// Idle leases are dropped, so memory follows the clients of the last seconds only.
func TestIdleLeasesAreDropped(t *testing.T) {
	rdb, _ := newRedis(t)
	l := New(redis_rate.NewLimiter(rdb), 64)
	clock := time.Now()
	l.now = func() time.Time { return clock }
	ctx, prefix := context.Background(), key()
	for i := 0; i < 100; i++ {
		if _, err := l.Take(ctx, prefix+net.IPv4(10, 0, 0, byte(i)).String(), redis_rate.PerMinute(100)); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(IdleAfter + time.Second)
	if _, err := l.Take(ctx, prefix+"late", redis_rate.PerMinute(100)); err != nil {
		t.Fatal(err)
	}
	if n := l.Len(); n != 1 {
		t.Fatalf("%d leases after everyone else was idle, want 1", n)
	}
}

// Redis down: an error and no token, unless one is held.
func TestRedisDown(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	if _, err := New(redis_rate.NewLimiter(rdb), 64).Take(context.Background(), key(), redis_rate.PerMinute(100)); err == nil {
		t.Fatal("no error with Redis unreachable")
	}
}
