package eventbus_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// netOutput returns Redis's total_net_output_bytes.
func netOutput(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_net_output_bytes:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no total_net_output_bytes in INFO stats")
	return 0
}

// TestStatusOfMadeUpIDIsCheap: looking up an id that was never published
// reads another tenant's large events only inside Redis: a few KB leave
// Redis whatever that tenant wrote around the id's time, and no body; real
// events are still found, and only by their own tenant.
func TestStatusOfMadeUpIDIsCheap(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t) // private: the byte counter is ours alone
	c := srv.Client(t)
	b := newBus(t, c, "status", nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	big := map[string]string{"blob": strings.Repeat("x", 20_000)}
	var real []eventbus.Published
	for i := range 300 { // 6 MB of tenant-x events around now
		ev, err := eventbus.NewEvent("approval.item.approved", "tenant-x", "u", big)
		if err != nil {
			t.Fatal(err)
		}
		p := mustPublish(t, b, ev)
		if i%100 == 0 {
			real = append(real, p)
		}
	}
	madeUp := ulid.Make().String()

	before := netOutput(t, c)
	for _, tenant := range []string{"tenant-y", ""} {
		if _, err := b.Status(ctx, tenant, madeUp); !errors.Is(err, eventbus.ErrNotFound) {
			t.Fatalf("status of a made-up id as %q: %v, want ErrNotFound", tenant, err)
		}
	}
	if _, err := b.Status(ctx, "tenant-y", real[0].ID); !errors.Is(err, eventbus.ErrNotFound) {
		t.Fatalf("tenant-y's status of tenant-x's event: %v, want ErrNotFound", err)
	}
	moved := netOutput(t, c) - before
	t.Logf("three lookups moved %d bytes from Redis (the events around them: 6 MB)", moved)
	if moved > 16<<10 {
		t.Errorf("three lookups moved %d bytes from Redis, want a few KB", moved)
	}

	for _, p := range real {
		for _, tenant := range []string{"tenant-x", ""} {
			st, err := b.Status(ctx, tenant, p.ID)
			if err != nil || st.StreamID != p.StreamID || st.TenantID != "tenant-x" || st.Type != "approval.item.approved" || st.State != eventbus.StatePending {
				t.Errorf("status of %s as %q: %+v %v, want pending at %s", p.ID, tenant, st, err, p.StreamID)
			}
		}
	}
}
