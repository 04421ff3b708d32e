package events

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/redis/go-redis/v9"

	"github.com/usersvc/usersvc/internal/httpapi/apidocs"
	"github.com/usersvc/usersvc/internal/testdb"
)

// TestThreeRelaysPublishEachEventOnce runs three relays, as three replicas would (each with its
// own pool), while changes are made: every change is published once (a consumer group reads each
// exactly once), in commit order per user, with the type, fields and version of its audit row, and
// the stream holds no personal value.
func TestThreeRelaysPublishEachEventOnce(t *testing.T) {
	f := newFixture(t)
	rdb, stream := redisFor(t, testdb.RedisURL(t))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		r := NewRelay(openDB(t, f.cfg), rdb, Options{Stream: stream, Poll: 20 * time.Millisecond, Batch: 7})
		wg.Add(1)
		go func() { defer wg.Done(); r.Run(ctx) }()
	}
	want := f.lives(ctx, 60, 4)
	f.waitDrained(30 * time.Second)
	cancel()
	wg.Wait()

	evs, _ := readStream(t, rdb, stream)
	if dups := checkComplete(t, f, evs); dups != 0 || len(evs) != want {
		t.Fatalf("%d events for %d changes, %d duplicates: want each once", len(evs), want, dups)
	}
	// A consumer group reads each event once.
	bg := context.Background()
	if err := rdb.XGroupCreate(bg, stream, "billing", "0").Err(); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for {
		res, err := rdb.XReadGroup(bg, &redis.XReadGroupArgs{Group: "billing", Consumer: "c1", Streams: []string{stream, ">"}, Count: 50, Block: -1}).Result()
		if errors.Is(err, redis.Nil) || (err == nil && len(res[0].Messages) == 0) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res[0].Messages {
			got[m.Values["event_id"].(string)]++
			rdb.XAck(bg, stream, "billing", m.ID)
		}
	}
	if len(got) != want {
		t.Fatalf("the consumer group read %d events, want %d", len(got), want)
	}
	// Each event says what its audit row says.
	types := map[string]int{}
	for _, e := range evs {
		types[e.Type]++
		var action, fields, version string
		if err := f.db.QueryRow("SELECT action, changed_fields, version FROM user_audit WHERE id = ?", e.ID).Scan(&action, &fields, &version); err != nil {
			t.Fatal(err)
		}
		if e.Type != typesByAction(action) || strings.Join(e.Changed, ",") != fields || e.Version != version || e.Actor != "apikey:events-test" || e.RequestID == "" {
			t.Fatalf("event %+v does not match its audit row (%s, %s, %s)", e, action, fields, version)
		}
	}
	for _, typ := range []string{"user.created", "user.updated", "user.deleted", "user.restored", "user.erased"} {
		if types[typ] == 0 {
			t.Errorf("no %s event", typ)
		}
	}
	scanForPII(t, f, rdb, stream)
	checkSchema(t, rdb, stream)
}

// checkSchema checks the stream's entries against the ChangeEvent component of the OpenAPI
// document, which documents them for consumers.
func checkSchema(t *testing.T, rdb redis.UniversalClient, stream string) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(apidocs.YAML())
	if err != nil {
		t.Fatal(err)
	}
	schema := doc.Components.Schemas["ChangeEvent"].Value
	_, msgs := readStream(t, rdb, stream)
	for _, m := range msgs {
		if len(m.Values) != len(schema.Properties) || len(schema.Required) != len(schema.Properties) {
			t.Fatalf("entry %s has %d fields, the document %d", m.ID, len(m.Values), len(schema.Properties))
		}
		if err := schema.VisitJSON(m.Values); err != nil {
			t.Fatalf("entry %s does not match the document's ChangeEvent: %v", m.ID, err)
		}
	}
}

func typesByAction(a string) string { return types[a] }

// scanForPII reads every field of every entry of the stream and fails on any personal value the
// fixture wrote, in any of the forms it could take.
func scanForPII(t *testing.T, f *fixture, rdb redis.UniversalClient, stream string) {
	t.Helper()
	_, msgs := readStream(t, rdb, stream)
	var forms []string
	for _, v := range f.pii {
		forms = append(forms, strings.ToLower(v))
		if d := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, v); len(d) >= 10 {
			forms = append(forms, d, d[len(d)-10:])
		}
	}
	for _, m := range msgs {
		for k, v := range m.Values {
			s := strings.ToLower(fmt.Sprint(v))
			for _, form := range forms {
				if strings.Contains(s, form) {
					t.Fatalf("stream entry %s field %s holds a personal value", m.ID, k)
				}
			}
		}
	}
	if len(msgs) == 0 || len(forms) == 0 {
		t.Fatal("nothing to scan")
	}
}

// TestRelayStoppedBetweenPublishAndMark stops a relay after it published a batch and before it
// marked it, as a crash would: nothing is lost, and the batch is published again by the next
// relay with the same event ids.
func TestRelayStoppedBetweenPublishAndMark(t *testing.T) {
	f := newFixture(t)
	rdb, stream := redisFor(t, testdb.RedisURL(t))
	ctx := context.Background()
	want := f.lives(ctx, 6, 2)

	crashed := NewRelay(f.db, rdb, Options{Stream: stream, Batch: 10, Lease: 300 * time.Millisecond})
	crashed.afterPublish = func() error { return errors.New("killed") }
	if _, err := crashed.Step(ctx); err == nil {
		t.Fatal("the crashing relay's step succeeded")
	}
	if evs, _ := readStream(t, rdb, stream); len(evs) != 10 {
		t.Fatalf("the crashing relay published %d events, want its batch of 10", len(evs))
	}
	if n, _, _ := Backlog(ctx, f.db, time.Now()); n != int64(want) {
		t.Fatalf("%d events pending after the crash, want all %d (none was marked)", n, want)
	}

	// The next relay takes the lease once the dead one's expires, and publishes everything.
	next := NewRelay(f.db, rdb, Options{Stream: stream, Batch: 10})
	deadline := time.Now().Add(10 * time.Second)
	for n, _, _ := Backlog(ctx, f.db, time.Now()); n > 0; n, _, _ = Backlog(ctx, f.db, time.Now()) {
		if time.Now().After(deadline) {
			t.Fatalf("%d events still pending", n)
		}
		if _, err := next.Step(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	evs, _ := readStream(t, rdb, stream)
	if dups := checkComplete(t, f, evs); dups != 10 || len(evs) != want+10 {
		t.Fatalf("%d events, %d duplicates; want %d and the crashed batch of 10 again", len(evs), dups, want+10)
	}
	for i := 0; i < 10; i++ {
		if evs[10+i].ID != evs[i].ID {
			t.Fatalf("the republished batch differs at %d: %d, first %d", i, evs[10+i].ID, evs[i].ID)
		}
	}
}

// TestRedisStoppedUnderWrites stops Redis (a private redis-server with an append-only file, so
// that the stream outlives the restart) while changes are made: the events wait in MySQL, the
// backlog metric shows them, and after Redis is back they all arrive, in commit order per user.
func TestRedisStoppedUnderWrites(t *testing.T) {
	f := newFixture(t)
	dir, port := t.TempDir(), testdb.FreePort(t)
	start := func() *exec.Cmd {
		cmd := exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "",
			"--appendonly", "yes", "--appendfsync", "always", "--dir", dir, "--daemonize", "no")
		if err := cmd.Start(); err != nil {
			t.Fatalf("redis-server: %v", err)
		}
		for i := 0; i < 100; i++ {
			if out, err := exec.Command("redis-cli", "-p", fmt.Sprint(port), "ping").Output(); err == nil && strings.TrimSpace(string(out)) == "PONG" {
				return cmd
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("redis-server did not start")
		return nil
	}
	stop := func(cmd *exec.Cmd) { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
	srv := start()
	t.Cleanup(func() { stop(srv) })
	rdb, stream := redisFor(t, fmt.Sprintf("redis://127.0.0.1:%d/0", port))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	relay := NewRelay(f.db, rdb, Options{Stream: stream, Poll: 20 * time.Millisecond, Batch: 20})
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()

	f.lives(ctx, 6, 2)
	stop(srv)
	down := f.lives(ctx, 12, 3) // Redis is down: these wait in MySQL
	time.Sleep(100 * time.Millisecond)
	if n, lag, err := Backlog(ctx, f.db, time.Now()); err != nil || n < int64(down) || lag <= 0 {
		t.Fatalf("backlog with Redis down: %d events, lag %v, err %v; want at least %d waiting", n, lag, err, down)
	}
	srv = start()
	f.lives(ctx, 3, 1)
	f.waitDrained(30 * time.Second)
	cancel()
	<-done

	evs, _ := readStream(t, rdb, stream)
	checkComplete(t, f, evs)
}
