package rdb

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/redistest"
)

// TestLastIDAndReadAfter: LastID is "0-0" for a missing stream and the
// last entry otherwise; ReadAfter returns only the entries after the id,
// nil after a block with nothing new, and creates no consumer group.
func TestLastIDAndReadAfter(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	r := New(c, NewKeys(prefix, false), Options{})
	stream := r.Keys().Main()
	if id, err := r.LastID(ctx, stream); err != nil || id != "0-0" {
		t.Fatalf("LastID of a missing stream = %q, %v", id, err)
	}
	first, err := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{FieldEvent, "a"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	start, err := r.LastID(ctx, stream)
	if err != nil || start != first {
		t.Fatalf("LastID = %q, %v; want %s", start, err, first)
	}
	if msgs, err := r.ReadAfter(ctx, stream, start, 10, 10*time.Millisecond); err != nil || msgs != nil {
		t.Fatalf("ReadAfter with nothing new = %v, %v", msgs, err)
	}
	second, err := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{FieldEvent, "b"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := r.ReadAfter(ctx, stream, start, 10, time.Second)
	if err != nil || len(msgs) != 1 || msgs[0].ID != second {
		t.Fatalf("ReadAfter = %v, %v; want only %s", msgs, err, second)
	}
	if _, err := r.ReadAfter(ctx, stream, start, 10, 0); err == nil {
		t.Error("ReadAfter with block 0 (for ever) accepted")
	}
	groups, err := c.XInfoGroups(ctx, stream).Result()
	if err != nil || len(groups) != 0 {
		t.Errorf("groups after tailing: %v, %v", groups, err)
	}
}
