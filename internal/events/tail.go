package events

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tail writes the stream's events as JSON lines, one per event with its stream entry id, from
// entry id from ("$": only events added from now on; "0": every event the stream keeps), until
// ctx ends or count events were written (count 0: no end).
func Tail(ctx context.Context, rdb redis.UniversalClient, stream, from string, count int, w io.Writer) error {
	enc := json.NewEncoder(w)
	last, written := from, 0
	for ctx.Err() == nil {
		res, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, last}, Count: 100, Block: time.Second}).Result()
		if errors.Is(err, redis.Nil) {
			continue // nothing new within the block time
		}
		if err != nil && ctx.Err() != nil {
			return nil //nolint:nilerr // interrupted (Ctrl-C): the normal end of a tail
		}
		if err != nil {
			return err
		}
		for _, s := range res {
			for _, m := range s.Messages {
				last = m.ID
				e, err := Parse(m.Values)
				if err != nil {
					return err
				}
				if err := enc.Encode(struct {
					StreamID string `json:"stream_id"`
					Event
				}{m.ID, e}); err != nil {
					return err
				}
				if written++; count > 0 && written >= count {
					return nil
				}
			}
		}
	}
	return nil
}
