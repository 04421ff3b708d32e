package events

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/usersvc/usersvc/internal/sqlcgen"
)

// Options configure a Relay.
type Options struct {
	Stream string        // the stream's key (EVENTS_STREAM)
	MaxLen int64         // approximate MAXLEN kept by every XADD (EVENTS_MAXLEN); 0 = no trimming
	Poll   time.Duration // how often the lease holder looks for new events when none waited
	Batch  int           // events per MySQL read and Redis round trip
	Lease  time.Duration // how long the relay lease lasts without renewal
	Log    *slog.Logger
	// Metrics, when set, are kept up to date: events published, and the backlog (how many wait,
	// counted up to BacklogCap) and lag (age of the oldest waiting event), which every replica
	// refreshes every few seconds, with or without the lease, so that they also show while Redis
	// is down.
	Published prometheus.Counter
	Backlog   prometheus.Gauge
	Lag       prometheus.Gauge
}

// BacklogCap bounds the count behind the backlog metric.
const BacklogCap = 100_000

// statsEvery is how often each replica refreshes the backlog and lag metrics.
const statsEvery = 5 * time.Second

// Relay publishes pending events. Every replica runs one; only the holder of the relay lease (a
// Redis key) publishes, so that in normal operation each event is published once and in id order,
// which per user is commit order. Delivery is at least once: a relay that stops between
// publishing a batch and marking it (a crash, a lost lease) leaves those events pending, and they
// are published again with the same event_id. With Redis down nothing is published; the events
// wait in MySQL and go out in order when it is back.
type Relay struct {
	db       *sql.DB
	rdb      redis.UniversalClient
	o        Options
	leaseKey string
	token    string // this relay's lease value
	failing  bool   // the last step failed (logged once, and once more when it recovers)
	// afterPublish, when set (tests), runs between publishing a batch and marking it; an error
	// stops the step there, as a crash would.
	afterPublish func() error
}

// NewRelay returns a relay publishing db's pending events to o.Stream on rdb.
func NewRelay(db *sql.DB, rdb redis.UniversalClient, o Options) *Relay {
	if o.Poll <= 0 {
		o.Poll = 200 * time.Millisecond
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Lease <= 0 {
		o.Lease = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return &Relay{db: db, rdb: rdb, o: o, leaseKey: o.Stream + ":relay", token: hex.EncodeToString(b)}
}

// Run publishes until ctx ends, then gives up the lease.
func (r *Relay) Run(ctx context.Context) {
	var statsAt time.Time
	for ctx.Err() == nil {
		if time.Since(statsAt) >= statsEvery {
			r.refreshStats(ctx)
			statsAt = time.Now()
		}
		n, err := r.Step(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil && !r.failing:
			r.o.Log.Warn("event relay: publishing stopped; events wait in MySQL", "error", err.Error())
		case err == nil && r.failing:
			r.o.Log.Info("event relay: publishing again")
		}
		r.failing = err != nil && ctx.Err() == nil
		if err == nil && n == r.o.Batch {
			continue // more are waiting
		}
		select {
		case <-ctx.Done():
		case <-time.After(r.o.Poll):
		}
	}
	release := context.WithoutCancel(ctx)
	_ = releaseLease.Run(release, r.rdb, []string{r.leaseKey}, r.token).Err()
}

// Step takes or renews the lease and, when held, publishes one batch of pending events and marks
// them. It returns how many audit rows it handled (0 without the lease).
func (r *Relay) Step(ctx context.Context) (int, error) {
	held, err := holdLease.Run(ctx, r.rdb, []string{r.leaseKey}, r.token, r.o.Lease.Milliseconds()).Int()
	if err != nil || held != 1 {
		return 0, err
	}
	q := sqlcgen.New(r.db)
	rows, err := q.ListPendingEvents(ctx, int32(r.o.Batch))
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	ids := make([]uint64, len(rows))
	pipe := r.rdb.Pipeline()
	for i, row := range rows {
		ids[i] = row.UserAudit.ID
		if e, ok := fromAudit(row.UserAudit); ok {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: r.o.Stream, MaxLen: r.o.MaxLen, Approx: true, Values: e.values()})
		}
	}
	published := pipe.Len()
	if published > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, err
		}
	}
	if r.afterPublish != nil {
		if err := r.afterPublish(); err != nil {
			return 0, err
		}
	}
	if _, err := q.MarkEventsPublished(ctx, ids); err != nil {
		return 0, err
	}
	if r.o.Published != nil {
		r.o.Published.Add(float64(published))
	}
	return len(rows), nil
}

// Backlog is how many events wait (counted up to BacklogCap) and the age of the oldest.
func Backlog(ctx context.Context, db *sql.DB, now time.Time) (waiting int64, lag time.Duration, err error) {
	q := sqlcgen.New(db)
	if waiting, err = q.CountPendingEvents(ctx, BacklogCap); err != nil || waiting == 0 {
		return waiting, 0, err
	}
	oldest, err := q.OldestPendingEvent(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil // published in between
	}
	return waiting, max(now.Sub(oldest), 0), err
}

func (r *Relay) refreshStats(ctx context.Context) {
	if r.o.Backlog == nil && r.o.Lag == nil {
		return
	}
	waiting, lag, err := Backlog(ctx, r.db, time.Now())
	if err != nil {
		return // the database is away; the next refresh tries again
	}
	if r.o.Backlog != nil {
		r.o.Backlog.Set(float64(waiting))
	}
	if r.o.Lag != nil {
		r.o.Lag.Set(lag.Seconds())
	}
}

// holdLease takes the relay lease when free, or renews it when this relay holds it: 1 when held.
var holdLease = redis.NewScript(`
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('pexpire', KEYS[1], ARGV[2])
  return 1
end
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0`)

// releaseLease gives the lease up if this relay holds it, so that another replica takes over at
// once when this one stops.
var releaseLease = redis.NewScript(`
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0`)

// Replay marks the changes from audit row fromID on as pending again, in batches, so that the
// relay publishes them again, in id order (for example after the stream was lost). Returns how
// many rows it marked.
func Replay(ctx context.Context, db *sql.DB, fromID uint64) (int64, error) {
	q := sqlcgen.New(db)
	last, err := q.LastAuditID(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	const window = 10_000
	var total int64
	for from := fromID; from <= last; from += window {
		n, err := q.ReplayEvents(ctx, sqlcgen.ReplayEventsParams{FromID: from, ToID: from + window})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}
