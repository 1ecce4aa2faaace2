package rdb

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/redistest"
)

// A retry's due time is stored rounded up to the millisecond, so that it is
// never forwarded (and run) before it is due.
func TestSettleStoresRetryDueTimeRoundedUp(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	r := New(c, NewKeys(prefix, false), Options{})
	const group = "g"
	stream := r.Keys().Main()
	if err := c.XGroupCreateMkStream(ctx, stream, group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	id := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{FieldEvent, "{}"}}).Val()
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "me", Streams: []string{stream, ">"}, Count: 1, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}

	due := time.UnixMilli(1_800_000_000_000).Add(999 * time.Microsecond) // 0.999 ms past a whole millisecond
	err := r.Settle(ctx, SettleArgs{
		Stream: stream, Group: group, EntryID: id, Consumer: "me", EventID: "e1", EventStreamID: id,
		OpenTTL: time.Minute, ResolvedTTL: time.Minute, DLQMinID: "0",
		Ops: []SettleOp{{Kind: OpRetry, Handler: "h", Record: []byte("{}"), Due: due, Member: "m", Data: []byte("{}"), Flag: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	score := c.ZScore(ctx, r.Keys().RetrySchedule(group), "m").Val()
	if got := time.UnixMilli(int64(score)); got.Before(due) {
		t.Errorf("retry stored as due at %v, before its due time %v", got.Format(time.StampMicro), due.Format(time.StampMicro))
	}
	// Forwarding at a time just before the due time moves nothing.
	if n, err := r.ForwardDueRetries(ctx, group, 0, due.Add(-time.Microsecond), 10, "0"); err != nil || n != 0 {
		t.Errorf("forwarded %d (%v) before the due time, want 0", n, err)
	}
	if n, err := r.ForwardDueRetries(ctx, group, 0, due.Add(time.Millisecond), 10, "0"); err != nil || n != 1 {
		t.Errorf("forwarded %d (%v) after the due time, want 1", n, err)
	}
	if got := DueMillis(time.UnixMilli(5)); got != 5 {
		t.Errorf("DueMillis of a whole millisecond = %d, want 5", got)
	}
}

// The heartbeat registry: a live consumer's heartbeat protects it from
// removal; a stale or missing one does not, and pending entries always do.
func TestDeleteIdleConsumerHonoursHeartbeat(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	r := New(c, NewKeys(prefix, false), Options{})
	const group = "g"
	stream := r.Keys().Main()
	if err := c.XGroupCreateMkStream(ctx, stream, group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"live", "dead", "holder"} {
		if err := c.XGroupCreateConsumer(ctx, stream, group, name).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{FieldEvent, "{}"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "holder", Streams: []string{stream, ">"}, Count: 1, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Heartbeat(ctx, group, "live", []byte(`["h1","h2"]`), time.Minute); err != nil {
		t.Fatal(err)
	}
	streams := []string{stream}
	for _, tc := range []struct {
		name string
		want bool
	}{{"live", false}, {"dead", true}, {"holder", false}} {
		if got, err := r.DeleteIdleConsumer(ctx, [][]string{streams}, group, tc.name, time.Minute); err != nil || got != tc.want {
			t.Errorf("delete %s: %v %v, want %v", tc.name, got, err, tc.want)
		}
	}
	live, err := r.LiveConsumers(ctx, group, time.Minute)
	if err != nil || len(live) != 1 || live[0].Name != "live" || len(live[0].Handlers) != 2 {
		t.Errorf("live consumers %+v %v", live, err)
	}
	// A stale heartbeat does not protect.
	if got, err := r.DeleteIdleConsumer(ctx, [][]string{streams}, group, "live", time.Nanosecond); err != nil || !got {
		t.Errorf("delete live with a stale heartbeat: %v %v, want removed", got, err)
	}
	if n := c.HLen(ctx, r.Keys().Consumers(group)).Val(); n != 0 {
		t.Errorf("%d heartbeats left after the removal", n)
	}
	// A heartbeat drops entries older than the registry's TTL.
	reg := r.Keys().Consumers(group)
	if err := c.HSet(ctx, reg, "long-gone", `{"lastSeen":1000,"handlers":[]}`, "garbage", "x").Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Heartbeat(ctx, group, "live", []byte(`[]`), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := c.HKeys(ctx, reg).Val(); len(got) != 1 || got[0] != "live" {
		t.Errorf("registry %v after a heartbeat, want only live", got)
	}
}

func TestCheckLag(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		lag         *int64
		undelivered bool
		length      int64
		want        *int64
	}{
		{nil, true, 10, nil},        // Redis cannot say
		{nil, false, 10, nil},       // nor here: unknown stays unknown
		{n(21404), false, 10, n(0)}, // the AOF restart: nothing after last delivered
		{n(21404), true, 10, nil},   // above the stream's length: wrong
		{n(3), true, 10, n(3)},      // plausible: passed through
		{n(0), false, 0, n(0)},      // empty stream
		{n(10), true, 10, n(10)},    // everything undelivered
	} {
		got := checkLag(tc.lag, tc.undelivered, tc.length)
		if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
			t.Errorf("checkLag(%v, %v, %d) = %v, want %v", tc.lag, tc.undelivered, tc.length, got, tc.want)
		}
	}
}
