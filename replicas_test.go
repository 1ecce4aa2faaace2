package eventbus_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// startReplicated starts a primary and one replica of it, and waits until
// the replica is in sync.
func startReplicated(t *testing.T) (primary, replica *redistest.Server) {
	t.Helper()
	primary = redistest.Start(t)
	_, port, _ := strings.Cut(primary.Addr(), ":")
	replica = redistest.Start(t, "--replicaof", "127.0.0.1", port)
	pc, rc := primary.Client(t), replica.Client(t)
	waitFor(t, 30*time.Second, "replica in sync", func() bool {
		p, _ := pc.Info(context.Background(), "replication").Result()
		r, _ := rc.Info(context.Background(), "replication").Result()
		return strings.Contains(p, "connected_slaves:1") && strings.Contains(r, "master_link_status:up")
	})
	return primary, replica
}

// plain is an event whose id the bus generates (no idempotency check).
func plain() eventbus.Event {
	ev := approved("t")
	ev.ID = ""
	return ev
}

func TestMinReplicasConfirmed(t *testing.T) {
	primary, replica := startReplicated(t)
	pc, rc := primary.Client(t), replica.Client(t)
	b := newBus(t, pc, "mr", func(c *eventbus.Config) {
		c.MinReplicas = 1
		c.ReplicaTimeout = 5 * time.Second
		c.PublishTimeout = 10 * time.Second
	})
	main := rdb.NewKeys("mr", false).Main()
	ctx := context.Background()

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
	// Confirmed by WAIT: every entry is on the replica now, no polling.
	for _, id := range sids {
		if n, err := rc.XRange(ctx, main, id, id).Result(); err != nil || len(n) != 1 {
			t.Errorf("entry %s on the replica: %v %v", id, n, err)
		}
	}
}

func TestMinReplicasNotConfirmed(t *testing.T) {
	primary, replica := startReplicated(t)
	pc := primary.Client(t)
	const timeout = 200 * time.Millisecond
	b := newBus(t, pc, "mr", func(c *eventbus.Config) { c.MinReplicas = 1; c.ReplicaTimeout = timeout })
	main := rdb.NewKeys("mr", false).Main()
	ctx := context.Background()
	replica.Pause() // SIGSTOP: connected but never acknowledges
	t.Cleanup(replica.Resume)

	check := func(t *testing.T, err error, n int, start time.Time) {
		t.Helper()
		if el := time.Since(start); el > timeout+3*time.Second {
			t.Errorf("took %v for a replica timeout of %v", el, timeout)
		}
		var nr *eventbus.NotReplicatedError
		if !errors.As(err, &nr) || !errors.Is(err, eventbus.ErrNotReplicated) {
			t.Fatalf("err = %v, want a *NotReplicatedError", err)
		}
		if errors.Is(err, eventbus.ErrUnavailable) || errors.Is(err, eventbus.ErrOutcomeUnknown) {
			t.Errorf("%v also matches ErrUnavailable or ErrOutcomeUnknown", err)
		}
		if nr.Wanted != 1 || nr.Replicas != 0 || len(nr.EventIDs) != n || len(nr.StreamIDs) != n {
			t.Fatalf("error fields: %+v", nr)
		}
		for _, id := range nr.StreamIDs { // written on the primary
			if got, err := pc.XRange(ctx, main, id, id).Result(); err != nil || len(got) != 1 {
				t.Errorf("entry %s on the primary: %v %v", id, got, err)
			}
		}
	}
	for name, ev := range map[string]eventbus.Event{"plain": plain(), "idempotent": approved("t")} {
		t.Run("Publish/"+name, func(t *testing.T) {
			start := time.Now()
			_, err := b.Publish(ctx, ev)
			check(t, err, 1, start)
		})
	}
	for name, batch := range map[string][]eventbus.Event{"plain": {plain(), plain()}, "idempotent": {approved("t"), plain()}} {
		t.Run("PublishBatch/"+name, func(t *testing.T) {
			start := time.Now()
			_, err := b.PublishBatch(ctx, batch)
			check(t, err, 2, start)
		})
	}
}

// countHook counts the commands sent by name.
type countHook struct{ wait atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count(cmd)
		return next(ctx, cmd)
	}
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.count(c)
		}
		return next(ctx, cmds)
	}
}
func (h *countHook) count(cmd redis.Cmder) {
	if cmd.Name() == "wait" {
		h.wait.Add(1)
	}
}

func TestMinReplicasZeroSendsNoWait(t *testing.T) {
	for _, n := range []int{0, 1} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			c, prefix := redistest.Shared(t)
			h := &countHook{}
			c.AddHook(h)
			b := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.MinReplicas = n })
			ctx := context.Background()
			_, err1 := b.Publish(ctx, plain())
			_, err2 := b.Publish(ctx, approved("t"))
			_, err3 := b.PublishBatch(ctx, []eventbus.Event{plain()})
			_, err4 := b.PublishBatch(ctx, []eventbus.Event{approved("t")})
			for _, err := range []error{err1, err2, err3, err4} {
				if n == 0 && err != nil {
					t.Fatalf("publish: %v", err)
				}
				if n == 1 && !errors.Is(err, eventbus.ErrNotReplicated) { // the shared server has no replica
					t.Fatalf("publish with no replica: %v", err)
				}
			}
			if want := int64(4 * n); h.wait.Load() != want {
				t.Errorf("%d WAIT sent, want %d", h.wait.Load(), want)
			}
		})
	}
}

func TestMinReplicasConfig(t *testing.T) {
	c, _ := redistest.Shared(t)
	for _, tc := range []struct {
		name string
		mut  func(*eventbus.Config)
		ok   bool
	}{
		{"default", func(*eventbus.Config) {}, true},
		{"one", func(c *eventbus.Config) { c.MinReplicas = 1 }, true},
		{"negative", func(c *eventbus.Config) { c.MinReplicas = -1 }, false},
		{"negative timeout", func(c *eventbus.Config) { c.MinReplicas = 1; c.ReplicaTimeout = -time.Second }, false},
		{"sub-millisecond", func(c *eventbus.Config) { c.MinReplicas = 1; c.ReplicaTimeout = time.Microsecond }, false},
		{"not under the publish timeout", func(c *eventbus.Config) { c.MinReplicas = 1; c.ReplicaTimeout = 2 * time.Second }, false},
		{"cluster", func(c *eventbus.Config) { c.MinReplicas = 1; c.Cluster = true }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := eventbus.Config{Redis: c, Prefix: "mr"}
			tc.mut(&cfg)
			_, err := eventbus.New(cfg)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, eventbus.ErrConfig)) {
				t.Errorf("New: %v", err)
			}
		})
	}
}
