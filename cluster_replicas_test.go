package eventbus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestMinReplicasCluster publishes with MinReplicas 1 on a Redis Cluster
// of 3 masters with a replica each: the write and its WAIT run on the
// master that owns the main stream's slot, so WAIT counts that master's
// replica. Confirmed events are on that replica; with the replica frozen,
// publishing fails with a *NotReplicatedError and the events are on the
// master.
func TestMinReplicasCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a six-node Redis Cluster; run without -short")
	}
	nodes := redistest.StartClusterWithReplicas(t, 3, 1)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: nodes.Addrs()})
	t.Cleanup(func() { cc.Close() })
	ctx := context.Background()
	const prefix = "mrc"
	main := rdb.NewKeys(prefix, true).Main()
	owner, err := cc.MasterForKey(ctx, main)
	if err != nil {
		t.Fatal(err)
	}
	var master, replica *redistest.Server
	for i, m := range nodes.Masters {
		if m.Addr() == owner.Options().Addr {
			master, replica = m, nodes.Replicas[i][0]
		}
	}
	if master == nil {
		t.Fatalf("master of %s (%s) not among %v", main, owner.Options().Addr, nodes.Addrs())
	}
	mc := master.Client(t)
	rconn := replica.Client(t).Conn() // READONLY is per connection
	t.Cleanup(func() { rconn.Close() })
	if err := rconn.ReadOnly(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	on := func(t *testing.T, what string, c interface {
		XRange(context.Context, string, string, string) *redis.XMessageSliceCmd
	}, ids []string) {
		t.Helper()
		for _, id := range ids {
			if got, err := c.XRange(ctx, main, id, id).Result(); err != nil || len(got) != 1 {
				t.Errorf("entry %s on the %s: %v %v", id, what, got, err)
			}
		}
	}

	t.Run("confirmed", func(t *testing.T) {
		b := newBus(t, cc, prefix, func(c *eventbus.Config) {
			c.Cluster = true
			c.MinReplicas = 1
			c.ReplicaTimeout = 5 * time.Second
			c.PublishTimeout = 10 * time.Second
		})
		var sids []string
		for _, ev := range []eventbus.Event{plain(), approved("t")} {
			p, err := b.Publish(ctx, ev)
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			sids = append(sids, p.StreamID)
		}
		for _, batch := range [][]eventbus.Event{{plain(), plain()}, {approved("t"), plain()}} {
			ps, err := b.PublishBatch(ctx, batch)
			if err != nil {
				t.Fatalf("PublishBatch: %v", err)
			}
			for _, p := range ps {
				sids = append(sids, p.StreamID)
			}
		}
		on(t, "replica of the stream's master", rconn, sids)
	})

	t.Run("replica frozen", func(t *testing.T) {
		const timeout = 200 * time.Millisecond
		b := newBus(t, cc, prefix, func(c *eventbus.Config) {
			c.Cluster = true
			c.MinReplicas = 1
			c.ReplicaTimeout = timeout
		})
		replica.Pause() // SIGSTOP: connected but never acknowledges
		t.Cleanup(replica.Resume)
		check := func(t *testing.T, err error, n int) {
			t.Helper()
			var nr *eventbus.NotReplicatedError
			if !errors.As(err, &nr) || !errors.Is(err, eventbus.ErrNotReplicated) {
				t.Fatalf("err = %v, want a *NotReplicatedError", err)
			}
			if errors.Is(err, eventbus.ErrUnavailable) || errors.Is(err, eventbus.ErrOutcomeUnknown) {
				t.Errorf("%v also matches ErrUnavailable or ErrOutcomeUnknown", err)
			}
			if nr.Wanted != 1 || nr.Replicas != 0 || len(nr.StreamIDs) != n {
				t.Fatalf("error fields: %+v", nr)
			}
			on(t, "stream's master", mc, nr.StreamIDs)
		}
		for name, ev := range map[string]eventbus.Event{"plain": plain(), "idempotent": approved("t")} {
			t.Run("Publish/"+name, func(t *testing.T) {
				_, err := b.Publish(ctx, ev)
				check(t, err, 1)
			})
		}
		for name, batch := range map[string][]eventbus.Event{"plain": {plain(), plain()}, "idempotent": {approved("t"), plain()}} {
			t.Run("PublishBatch/"+name, func(t *testing.T) {
				_, err := b.PublishBatch(ctx, batch)
				check(t, err, 2)
			})
		}
	})

	// The node connection goes through the breaker: with the stream's
	// master killed (and the client's slot map not yet reloaded), publishes
	// fail with ErrUnavailable and, past the threshold, the breaker opens.
	t.Run("master killed", func(t *testing.T) {
		b := newBus(t, cc, prefix, func(c *eventbus.Config) {
			c.Cluster = true
			c.MinReplicas = 1
			c.ReplicaTimeout = 200 * time.Millisecond
		})
		master.Stop()
		var err error
		for i := 0; i < 10 && (err == nil || !strings.Contains(err.Error(), "circuit breaker open")); i++ {
			_, err = b.Publish(ctx, plain())
			if !errors.Is(err, eventbus.ErrUnavailable) {
				t.Fatalf("publish %d with the master down: %v, want ErrUnavailable", i, err)
			}
		}
		if !strings.Contains(err.Error(), "circuit breaker open") {
			t.Errorf("breaker never opened: %v", err)
		}
	})
}
