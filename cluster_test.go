package eventbus_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestRedisCluster runs the whole life of events on a 3-node Redis
// Cluster: every atomic step (MULTI batches, the idempotency, settle,
// retry-forwarding and claim scripts) must touch one hash slot.
func TestRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster; run without -short")
	}
	addrs := redistest.StartCluster(t, 3)
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	b := newBus(t, c, "clu", func(cfg *eventbus.Config) { cfg.Cluster = true; cfg.Block = 100 * time.Millisecond })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	cons := fastConsumer(t, b, nil)
	var fails atomic.Int32
	ok := newCounter()
	mustHandle(t, cons, "ok", "*", func(_ context.Context, ev eventbus.Event) error { ok.add(ev.ID); return nil })
	mustHandle(t, cons, "flaky", "*", func(context.Context, eventbus.Event) error {
		if fails.Add(1) <= 2 {
			return errors.New("not yet")
		}
		return nil
	})
	runConsumer(t, cons)

	single, err := b.Publish(ctx, approved("t1"))
	if err != nil {
		t.Fatal(err)
	}
	withID := approved("t1")
	withID.ID = "cluster-order-1"
	if _, err := b.Publish(ctx, withID); err != nil {
		t.Fatal(err)
	}
	if again, err := b.Publish(ctx, withID); err != nil || !again.Duplicate {
		t.Fatalf("idempotent repeat on a cluster: %+v %v", again, err)
	}
	batch, err := b.PublishBatch(ctx, []eventbus.Event{approved("t1"), approved("t2")})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{single.ID, withID.ID, batch[0].ID, batch[1].ID} {
		waitFor(t, 10*time.Second, "event handled on the cluster", func() bool { return ok.get(id) == 1 })
	}
	waitFor(t, 10*time.Second, "the flaky handler's retries settled", func() bool {
		st, err := b.Status(ctx, "", single.ID)
		return err == nil && st.State == eventbus.StateCompleted
	})
	if h := b.Health(ctx); !h.Healthy {
		t.Errorf("health on a cluster: %v", h.Warnings)
	}
	if _, err := b.Trim(ctx); err != nil {
		t.Errorf("trim on a cluster: %v", err)
	}
}
