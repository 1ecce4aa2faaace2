package eventbus_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

func TestClaimsFromDeadConsumerThenRemovesIt(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a dead consumer's entries to be claimed and the consumer removed: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	main := testKeys(prefix).Main()
	ids := publishN(t, b, 5, "approval.item.approved")
	// A consumer takes the entries and dies without acknowledging them.
	got := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: eventbus.DefaultGroup, Consumer: "ghost", Streams: []string{main, ">"}, Count: 10, Block: -1}).Val()
	entries := got[0].Messages
	// Two of them are trimmed or deleted meanwhile.
	if err := c.XDel(ctx, main, entries[0].ID, entries[1].ID).Err(); err != nil {
		t.Fatal(err)
	}

	cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) {
		// ClaimIdle well above the 700 ms observation window below, so that
		// a loaded machine cannot make the claim come "early".
		cfg.ClaimIdle, cfg.ClaimInterval, cfg.DeadConsumerIdle = 3*time.Second, 100*time.Millisecond, 200*time.Millisecond
	})
	runs := newCounter()
	mustHandle(t, cons, "h", "*", func(_ context.Context, ev eventbus.Event) error { runs.add(ev.ID); return nil })
	runConsumer(t, cons)

	consumers := func() []string {
		var names []string
		for _, ci := range c.XInfoConsumers(ctx, main, eventbus.DefaultGroup).Val() {
			names = append(names, ci.Name)
		}
		return names
	}
	// The ghost holds entries: it must stay in the group until they are
	// claimed, although it is idle past DeadConsumerIdle.
	time.Sleep(700 * time.Millisecond) // several claim rounds, before ClaimIdle passes
	if !slices.Contains(consumers(), "ghost") {
		t.Fatal("a consumer holding pending entries was removed")
	}
	if runs.distinct() != 0 {
		t.Fatal("entries claimed before ClaimIdle")
	}
	waitFor(t, 10*time.Second, "the 3 live entries handled", func() bool {
		return runs.get(ids[2]) == 1 && runs.get(ids[3]) == 1 && runs.get(ids[4]) == 1
	})
	waitFor(t, 10*time.Second, "the ghost removed", func() bool { return !slices.Contains(consumers(), "ghost") })
	if n := pendingCount(t, c, main, eventbus.DefaultGroup); n != 0 {
		t.Errorf("%d entries still pending", n)
	}
	st := cons.Stats()
	if st.Claimed != 3 || st.DeletedEntries != 2 || st.Handled != 3 {
		t.Errorf("stats %+v, want 3 claimed, 2 deleted, 3 handled", st)
	}
}

func TestGracefulShutdownFinishesInFlightHandlers(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	cons := fastConsumer(t, b, nil)
	started := make(chan struct{}, 1)
	finished := make(chan struct{}, 1)
	mustHandle(t, cons, "slow", "*", func(context.Context, eventbus.Event) error {
		started <- struct{}{}
		time.Sleep(300 * time.Millisecond)
		finished <- struct{}{}
		return nil
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cons.Run(runCtx) }()
	if _, err := b.Publish(ctx, approved("t")); err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-finished:
	default:
		t.Fatal("Run returned before the in-flight handler finished")
	}
	if n := pendingCount(t, c, testKeys(prefix).Main(), eventbus.DefaultGroup); n != 0 {
		t.Errorf("%d entries pending after a graceful shutdown, want the finished one acknowledged", n)
	}
}

func TestShutdownDeadlineLeavesUnfinishedEntriesPending(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) { cfg.ShutdownTimeout = 200 * time.Millisecond })
	started := make(chan struct{}, 1)
	mustHandle(t, cons, "stuck", "*", func(hctx context.Context, _ eventbus.Event) error {
		started <- struct{}{}
		<-hctx.Done()
		return hctx.Err()
	})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cons.Run(runCtx) }()
	if _, err := b.Publish(ctx, approved("t")); err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its shutdown deadline")
	}
	if n := pendingCount(t, c, testKeys(prefix).Main(), eventbus.DefaultGroup); n != 1 {
		t.Errorf("%d entries pending, want the unfinished one left for others", n)
	}
	if n := c.XLen(ctx, testKeys(prefix).DLQ()).Val(); n != 0 {
		t.Errorf("the interrupted run was dead-lettered")
	}
	if n := c.ZCard(ctx, testKeys(prefix).RetrySchedule(eventbus.DefaultGroup)).Val(); n != 0 {
		t.Errorf("the interrupted run was scheduled for retry")
	}
}

func TestConsumerStartsWithRedisDownAndRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a consumer with its own Redis down, then starts Redis: slow; run without -short")
	}
	srv := redistest.Start(t)
	srv.Stop()
	c := failFastClient(t, srv.Addr())
	counter := &countingHook{}
	c.AddHook(counter)
	b := fastBus(t, c, "outage", nil)
	cons := fastConsumer(t, b, nil)
	runs := newCounter()
	mustHandle(t, cons, "h", "*", func(_ context.Context, ev eventbus.Event) error { runs.add(ev.ID); return nil })
	runConsumer(t, cons)
	// Down: the loops back off instead of spinning.
	before := counter.n.Load()
	time.Sleep(time.Second) // observation window
	if n := counter.n.Load() - before; n > 40 {
		t.Errorf("%d commands in 1 s with Redis down: busy loop", n)
	}
	srv.Restart()
	ctx := context.Background()
	var p eventbus.Published
	waitFor(t, 10*time.Second, "publish after Redis returned", func() bool {
		var err error
		p, err = b.Publish(ctx, approved("t"))
		return err == nil
	})
	waitFor(t, 40*time.Second, "the consumer to recover by itself", func() bool { return runs.get(p.ID) == 1 })
}

// Entries this consumer still holds (queued behind a busy worker, or in a
// run of slow handlers) are not reclaimed as if their consumer were dead.
func TestEntriesInFlightAreNotReclaimed(t *testing.T) {
	if testing.Short() {
		t.Skip("waits past the claim idle time with entries in flight: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	// Touches come every ClaimIdle/3 (667 ms): over a second of margin
	// before a late touch lets an entry be claimed on a loaded machine.
	cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) {
		cfg.ClaimIdle, cfg.ClaimInterval, cfg.Concurrency = 2*time.Second, 50*time.Millisecond, 1
	})
	h1, h2 := newCounter(), newCounter()
	mustHandle(t, cons, "h1", "*", func(_ context.Context, ev eventbus.Event) error {
		time.Sleep(500 * time.Millisecond) // slow work, not synchronisation
		if h1.add(ev.ID) == 1 {
			return errors.New("first run fails")
		}
		return nil
	}, eventbus.Priority(1), eventbus.Timeout(1500*time.Millisecond))
	mustHandle(t, cons, "h2", "*", func(_ context.Context, ev eventbus.Event) error {
		time.Sleep(500 * time.Millisecond)
		h2.add(ev.ID)
		return nil
	}, eventbus.Priority(2), eventbus.Timeout(1500*time.Millisecond))
	runConsumer(t, cons)
	// Five events behind one worker: the last waits about 4 s, twice
	// ClaimIdle, before it starts.
	ids := publishN(t, b, 5, "approval.item.approved")
	waitFor(t, 40*time.Second, "every event through both handlers, with h1's retry", func() bool {
		for _, id := range ids {
			if h1.get(id) < 2 || h2.get(id) < 1 {
				return false
			}
		}
		return true
	})
	waitFor(t, 5*time.Second, "nothing pending", func() bool {
		return pendingCount(t, c, testKeys(prefix).Main(), eventbus.DefaultGroup)+
			pendingCount(t, c, testKeys(prefix).Retries(eventbus.DefaultGroup), eventbus.DefaultGroup) == 0
	})
	for _, id := range ids {
		if h1.get(id) != 2 || h2.get(id) != 1 {
			t.Errorf("event %s: h1 ran %d times (want 2: first + retry), h2 %d (want 1)", id, h1.get(id), h2.get(id))
		}
		st, err := b.Status(ctx, "", id)
		if err != nil || st.State != eventbus.StateCompleted {
			t.Errorf("status %+v %v", st, err)
		}
		if open := c.HGet(ctx, testKeys(prefix).Status(eventbus.DefaultGroup, rdb.ScopedID("t1", id)), rdb.StatusOpen).Val(); open != "0" {
			t.Errorf("event %s: open retries %q, want 0", id, open)
		}
	}
	if n := cons.Stats().Claimed; n != 0 {
		t.Errorf("%d entries reclaimed from a live consumer", n)
	}
}
