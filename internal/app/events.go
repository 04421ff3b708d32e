package app

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/usersvc/usersvc/internal/events"
	"github.com/usersvc/usersvc/internal/mysqldb"
)

// runEvents: `usersvc events tail` prints the change events of the stream as JSON lines;
// `usersvc events replay --from-id N` makes the relay publish the changes from audit row N on again.
func runEvents(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: usersvc events tail [--from $|0|ENTRY-ID] [--count N] | usersvc events replay --from-id N"
	if len(args) == 0 {
		return errors.New(usage)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "tail":
		fs := newFlagSet("events tail", stderr)
		from := fs.String("from", "$", `where to start: "$" new events only, "0" every event the stream keeps, or a stream entry id`)
		count := fs.Int("count", 0, "stop after this many events (0: follow until interrupted)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		rdb, err := openRedis(cfg)
		if err != nil {
			return err
		}
		defer rdb.Close()
		return events.Tail(ctx, rdb, cfg.EventsStream, *from, *count, stdout)
	case "replay":
		fs := newFlagSet("events replay", stderr)
		fromID := fs.Uint64("from-id", 0, "the first audit row (event_id) to publish again")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *fromID == 0 {
			return errors.New("--from-id is required (an event_id; the audit rows from it on are published again)")
		}
		db, err := mysqldb.Open(ctx, cfg.DB, mysqldb.PoolConfig{MaxOpen: 2, MaxIdle: 1})
		if err != nil {
			return err
		}
		defer db.Close()
		n, err := events.Replay(ctx, db, *fromID)
		fmt.Fprintf(stdout, "%d change events from event_id %d on are pending again; the replicas' relay publishes them\n", n, *fromID)
		return err
	}
	return errors.New(usage)
}
