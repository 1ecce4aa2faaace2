package eventbus_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

func TestJanitorEnforcesRetention(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.JanitorInterval = 20 * time.Millisecond })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	main, dlq, replay := b.Streams()
	now := time.Now()

	// Explicit old ids simulate age: stream ids are millisecond times.
	type load struct {
		stream    string
		retention time.Duration
		old, kept int
	}
	loads := []load{
		// ~ trimming removes whole macro nodes (100 entries by default):
		// write enough old entries to fill several.
		{main, eventbus.DefaultMainRetention, 1000, 50},
		{dlq, eventbus.DefaultDLQRetention, 7, 5},
		{replay, eventbus.DefaultReplayRetention, 1000, 50},
	}
	for _, l := range loads {
		pipe := c.Pipeline()
		base := now.Add(-l.retention - time.Hour).UnixMilli()
		for i := range l.old {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: l.stream, ID: fmt.Sprintf("%d-%d", base, i+1), Values: []string{rdb.FieldEvent, "{}"}})
		}
		base = now.Add(-l.retention + time.Hour).UnixMilli()
		for i := range l.kept {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: l.stream, ID: fmt.Sprintf("%d-%d", base, i+1), Values: []string{rdb.FieldEvent, "{}"}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}

	runBus(t, b)
	waitFor(t, 10*time.Second, "janitor trim", func() bool { return c.XLen(ctx, main).Val() < 1050 })
	waitFor(t, 10*time.Second, "janitor trim of every stream", func() bool {
		return c.XLen(ctx, dlq).Val() == 5 && c.XLen(ctx, replay).Val() < 1050
	})

	for _, l := range loads {
		horizon := now.Add(-l.retention).UnixMilli()
		msgs, err := c.XRange(ctx, l.stream, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		var old, kept int
		for _, m := range msgs {
			var ms, seq int64
			if _, err := fmt.Sscanf(m.ID, "%d-%d", &ms, &seq); err != nil {
				t.Fatalf("id %q: %v", m.ID, err)
			}
			if ms < horizon {
				old++
			} else {
				kept++
			}
		}
		if kept != l.kept {
			t.Errorf("%s kept %d entries inside retention, want %d", l.stream, kept, l.kept)
		}
		maxOld := 0
		if l.stream != dlq {
			maxOld = 100 // at most one partly old macro node survives ~
		}
		if old > maxOld {
			t.Errorf("%s still holds %d entries past retention, want at most %d", l.stream, old, maxOld)
		}
	}
}
