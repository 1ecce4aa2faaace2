package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// publishPaths runs every library publish path once against b and returns
// what each answered: single with a generated id, single with a caller id,
// single with a bus-made id sent again, coalesced singles, a batch without
// ids (MULTI) and a batch with ids (script).
func publishPaths(t *testing.T, b *eventbus.Bus, otherBusID string) map[string][]error {
	t.Helper()
	ctx := context.Background()
	got := map[string][]error{}
	record := func(path string, p []eventbus.Published, err error) {
		for _, x := range p {
			if x.StreamID == "" && err == nil {
				err = fmt.Errorf("published %+v with an empty stream id", x)
			}
		}
		got[path] = append(got[path], err)
	}
	one := func(path string, ev eventbus.Event) {
		p, err := b.Publish(ctx, ev)
		record(path, []eventbus.Published{p}, err)
	}
	one("single generated id", approved("t"))
	withID := approved("t")
	withID.ID = "order-1"
	one("single caller id", withID)
	again := approved("t")
	again.ID = otherBusID
	one("single bus-made id again", again)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			p, err := b.Publish(ctx, approved("t"))
			mu.Lock()
			defer mu.Unlock()
			record("coalesced", []eventbus.Published{p}, err)
		})
	}
	wg.Wait()
	p, err := b.PublishBatch(ctx, []eventbus.Event{approved("t"), approved("t")})
	record("batch (MULTI)", p, err)
	withID.ID = "order-2"
	p, err = b.PublishBatch(ctx, []eventbus.Event{approved("t"), withID})
	record("batch (script)", p, err)
	return got
}

// TestPublishRefusedByRedisFails: a Redis that refuses the client (no
// password, a wrong one, a database number it does not have) makes every
// publish path fail with ErrUnavailable (nothing written), never answer a
// Published with an empty stream id.
func TestPublishRefusedByRedisFails(t *testing.T) {
	if testing.Short() {
		t.Skip("own redis-server, reconfigured; run without -short")
	}
	ctx := context.Background()
	srv := redistest.Start(t, "--databases", "16")
	admin := srv.Client(t)
	otherID := mustPublish(t, newBus(t, admin, "elsewhere", nil), approved("t")).ID
	if err := admin.ConfigSet(ctx, "requirepass", "secret").Err(); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	for name, opt := range map[string]*redis.Options{
		"no password":    {Addr: srv.Addr()},
		"wrong password": {Addr: srv.Addr(), Password: "wrong"},
		"db 99":          {Addr: srv.Addr(), Password: "secret", DB: 99},
	} {
		t.Run(name, func(t *testing.T) {
			c := redis.NewClient(opt)
			t.Cleanup(func() { c.Close() })
			b := newBus(t, c, "refused", nil)
			for path, errs := range publishPaths(t, b, otherID) {
				for _, err := range errs {
					if errors.Is(err, eventbus.ErrUnavailable) && !errors.Is(err, eventbus.ErrOutcomeUnknown) {
						continue
					}
					// Without a password go-redis connects unauthenticated;
					// Redis answers a long command (a publish script of more
					// than 10 arguments) with a protocol error and closes the
					// connection while the client may still be writing, so
					// the client can read a reset instead of the reply: it
					// cannot tell "refused" from "lost", and says unknown.
					// Never success, though.
					if name == "no password" && errors.Is(err, eventbus.ErrOutcomeUnknown) {
						continue
					}
					t.Errorf("%s: %v, want ErrUnavailable (nothing written)", path, err)
				}
			}
		})
	}
	// Nothing listening: every dial fails before anything is sent.
	gone := redistest.Start(t)
	gone.Stop()
	t.Run("nothing listening", func(t *testing.T) {
		c := redis.NewClient(&redis.Options{Addr: gone.Addr()})
		t.Cleanup(func() { c.Close() })
		b := newBus(t, c, "refused", nil)
		for path, errs := range publishPaths(t, b, otherID) {
			for _, err := range errs {
				if !errors.Is(err, eventbus.ErrUnavailable) || errors.Is(err, eventbus.ErrOutcomeUnknown) {
					t.Errorf("%s: %v, want ErrUnavailable (nothing written)", path, err)
				}
			}
		}
	})
	ok := redis.NewClient(&redis.Options{Addr: srv.Addr(), Password: "secret"})
	t.Cleanup(func() { ok.Close() })
	if keys, err := ok.Keys(ctx, "refused*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("keys written: %v (%v), want none", keys, err)
	}
}

func mustPublish(t *testing.T, b *eventbus.Bus, ev eventbus.Event) eventbus.Published {
	t.Helper()
	p, err := b.Publish(context.Background(), ev)
	if err != nil || p.StreamID == "" {
		t.Fatalf("publish: %+v %v", p, err)
	}
	return p
}

// entriesByID counts the main stream's entries per event id.
func entriesByID(t *testing.T, c redis.UniversalClient, stream string) map[string]int {
	t.Helper()
	msgs, err := c.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, m := range msgs {
		var ev struct{ ID string }
		s, _ := m.Values[rdb.FieldEvent].(string)
		if err := json.Unmarshal([]byte(s), &ev); err != nil {
			t.Fatal(err)
		}
		n[ev.ID]++
	}
	return n
}

// attempt is one publish made while Redis was paused and what it answered.
type attempt struct {
	events []eventbus.Event
	err    error
	took   time.Duration
}

// TestPublishWhileRedisPaused: with Redis frozen mid-publish (single,
// coalesced, batch), every publish answers within the publish timeout
// (plus a margin) with ErrOutcomeUnknown (carrying the event ids, the
// generated ones too) or ErrUnavailable, never success; once Redis runs
// again, an event answered "unavailable" is not in the stream and none is
// there twice (go-redis's retries would re-send a write whose first send
// went through); publishing again with the ids from the errors leaves
// exactly one entry per event.
func TestPublishWhileRedisPaused(t *testing.T) {
	if testing.Short() {
		t.Skip("pauses its own redis-server; run without -short")
	}
	for _, tc := range []struct {
		name    string
		options func(addr string) *redis.Options
	}{
		// A library user's client with go-redis's defaults: 3 retries, 3s
		// read timeout, no ContextTimeoutEnabled (publishes are sent by
		// leader goroutines; callers stop waiting at their deadline).
		{"go-redis defaults", func(addr string) *redis.Options { return &redis.Options{Addr: addr} }},
		// The recommended client: context deadlines bound the sockets (a
		// lone caller sends on its own goroutine).
		{"ContextTimeoutEnabled", func(addr string) *redis.Options {
			return &redis.Options{Addr: addr, ContextTimeoutEnabled: true, ReadTimeout: 3 * time.Second}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			srv := redistest.Start(t)
			c := redis.NewClient(tc.options(srv.Addr()))
			t.Cleanup(func() { c.Close() })
			b := newBus(t, c, "paused", nil) // PublishTimeout 2s
			if err := b.SetUp(ctx); err != nil {
				t.Fatal(err)
			}
			withID := approved("t")
			withID.ID = "order-1"
			mustPublish(t, b, approved("t"))                                                         // connections ready
			mustPublish(t, b, eventbus.Event{ID: "warm", Type: "a.b.c", TenantID: "t", UserID: "u"}) // script loaded
			srv.Pause()

			var mu sync.Mutex
			var attempts []attempt
			run := func(evs []eventbus.Event, publish func() error) {
				start := time.Now()
				err := publish()
				mu.Lock()
				attempts = append(attempts, attempt{events: evs, err: err, took: time.Since(start)})
				mu.Unlock()
			}
			var wg sync.WaitGroup
			for i := range 12 { // coalesced singles, generated ids and caller ids
				wg.Go(func() {
					ev := approved("t")
					if i%3 == 0 {
						ev.ID = fmt.Sprintf("order-%d", i)
					}
					run([]eventbus.Event{ev}, func() error {
						p, err := b.Publish(ctx, ev)
						if err == nil && p.StreamID == "" {
							err = errors.New("empty stream id")
						}
						return err
					})
				})
			}
			wg.Go(func() {
				evs := []eventbus.Event{approved("t"), approved("t")}
				run(evs, func() error { _, err := b.PublishBatch(ctx, evs); return err })
			})
			wg.Go(func() {
				evs := []eventbus.Event{approved("t"), withID}
				run(evs, func() error { _, err := b.PublishBatch(ctx, evs); return err })
			})
			wg.Wait()

			// What each attempt answered, and the ids to publish again with.
			var retry [][]eventbus.Event
			unavailable := map[string]bool{}
			for _, a := range attempts {
				// About the 2s publish timeout, not go-redis's retries (3 x 3s
				// read timeouts); the margin is for a loaded machine.
				if a.took > 6*time.Second {
					t.Errorf("a publish took %v with Redis paused, want about the 2s publish timeout", a.took)
				}
				var ou *eventbus.OutcomeUnknownError
				switch {
				case errors.As(a.err, &ou):
					if len(ou.EventIDs) != len(a.events) || ou.TenantID != "t" {
						t.Fatalf("outcome unknown for %v of tenant %q, want %d ids of tenant t", ou.EventIDs, ou.TenantID, len(a.events))
					}
					evs := make([]eventbus.Event, len(a.events))
					for i, ev := range a.events {
						if ev.ID != "" && ev.ID != ou.EventIDs[i] {
							t.Fatalf("error carries id %s for event %s", ou.EventIDs[i], ev.ID)
						}
						evs[i] = ev
						evs[i].ID = ou.EventIDs[i]
					}
					retry = append(retry, evs)
				case errors.Is(a.err, eventbus.ErrUnavailable):
					for _, ev := range a.events {
						if ev.ID == "" {
							continue // generated and never sent: nothing to look for
						}
						unavailable[ev.ID] = true
					}
					retry = append(retry, a.events)
				default:
					t.Fatalf("publish with Redis paused: %v, want ErrOutcomeUnknown or ErrUnavailable", a.err)
				}
			}
			if len(retry) == 0 {
				t.Fatal("nothing to retry")
			}
			var slowest time.Duration
			kinds := map[bool]int{}
			for _, a := range attempts {
				slowest = max(slowest, a.took)
				kinds[errors.Is(a.err, eventbus.ErrOutcomeUnknown)]++
			}
			t.Logf("with Redis paused: %d outcome unknown, %d unavailable; slowest answer %v", kinds[true], kinds[false], slowest)

			srv.Resume()
			main, _, _ := b.Streams()
			// Let the writes stuck in Redis's input buffers land, and the bus's
			// background sends end (their read timeout is 3s).
			waitFor(t, 10*time.Second, "Redis answers", func() bool { return c.Ping(ctx).Err() == nil })
			for range 3 {
				if err := c.Ping(ctx).Err(); err != nil {
					t.Fatal(err)
				}
			}
			for id, n := range entriesByID(t, c, main) {
				if n > 1 {
					t.Errorf("event %s written %d times", id, n)
				}
				if unavailable[id] && n > 0 {
					t.Errorf("event %s answered ErrUnavailable (nothing written) but is in the stream", id)
				}
			}

			for _, evs := range retry {
				var err error
				if len(evs) == 1 {
					_, err = b.Publish(ctx, evs[0])
				} else {
					_, err = b.PublishBatch(ctx, evs)
				}
				if err != nil {
					t.Fatalf("retry: %v", err)
				}
			}
			counts := entriesByID(t, c, main)
			for _, evs := range retry {
				for _, ev := range evs {
					if ev.ID != "" && counts[ev.ID] != 1 {
						t.Errorf("event %s: %d entries after the retry, want 1", ev.ID, counts[ev.ID])
					}
				}
			}
		})
	}
}

// TestRetryOfGeneratedIDIsDeduplicated: an id the bus generated, sent
// again, finds the entry already written (no idempotency key exists for
// it) and writes nothing, in Publish and PublishBatch; one never written is
// written once.
func TestRetryOfGeneratedIDIsDeduplicated(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	first := mustPublish(t, b, approved("t"))
	batch, err := b.PublishBatch(ctx, []eventbus.Event{approved("t"), approved("t")})
	if err != nil {
		t.Fatal(err)
	}
	for range 50 { // entries after them, so the search has something to skip
		mustPublish(t, b, approved("other"))
	}
	again := approved("t")
	again.ID = first.ID
	p, err := b.Publish(ctx, again)
	if err != nil || !p.Duplicate || p.StreamID != first.StreamID {
		t.Fatalf("publish of generated id %s again: %+v %v, want duplicate of %s", first.ID, p, err, first.StreamID)
	}
	evs := []eventbus.Event{approved("t"), approved("t")}
	evs[0].ID, evs[1].ID = batch[0].ID, batch[1].ID
	ps, err := b.PublishBatch(ctx, evs)
	if err != nil || !ps[0].Duplicate || !ps[1].Duplicate || ps[0].StreamID != batch[0].StreamID || ps[1].StreamID != batch[1].StreamID {
		t.Fatalf("batch of generated ids again: %+v %v, want duplicates of %+v", ps, err, batch)
	}
	// Another tenant's event with that id is not a duplicate of it.
	theirs := approved("u")
	theirs.ID = first.ID
	if p, err := b.Publish(ctx, theirs); err != nil || p.Duplicate {
		t.Fatalf("tenant u's publish of tenant t's id: %+v %v, want a new entry", p, err)
	}
	// A bus-made id never written here is written once.
	fresh := approved("t")
	fresh.ID = mustPublish(t, newBus(t, c, prefix+"-other", nil), approved("t")).ID
	p1, err1 := b.Publish(ctx, fresh)
	p2, err2 := b.Publish(ctx, fresh)
	if err1 != nil || err2 != nil || p1.Duplicate || !p2.Duplicate || p1.StreamID != p2.StreamID {
		t.Fatalf("new bus-made id twice: %+v %v / %+v %v", p1, err1, p2, err2)
	}
	main, _, _ := b.Streams()
	if n := c.XLen(ctx, main).Val(); n != 3+50+1+1 {
		t.Errorf("%d entries, want %d", n, 3+50+1+1)
	}
}

// TestRetryOfGeneratedIDNeverWritesBlindly: when the search for the
// earlier write reads its whole budget without reaching the end of the
// stream, the publish writes nothing and the outcome stays unknown.
func TestRetryOfGeneratedIDNeverWritesBlindly(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	ev := approved("t")
	ev.ID = mustPublish(t, newBus(t, c, prefix+"-other", nil), approved("t")).ID // bus-made, not here
	main, _, _ := b.Streams()
	pipe := c.Pipeline()
	for range 10_001 { // more than rdb.VerifyCap entries after the id's time
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: main, Values: []any{rdb.FieldEvent, `{"id":"x"}`}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for _, publish := range []func() error{
		func() error { _, err := b.Publish(ctx, ev); return err },
		func() error { _, err := b.PublishBatch(ctx, []eventbus.Event{approved("t"), ev}); return err },
	} {
		var ou *eventbus.OutcomeUnknownError
		if err := publish(); !errors.As(err, &ou) || ou.EventIDs[len(ou.EventIDs)-1] != ev.ID {
			t.Fatalf("publish of %s past the search budget: %v, want ErrOutcomeUnknown with its id", ev.ID, err)
		}
	}
	if n := c.XLen(ctx, main).Val(); n != 10_001 {
		t.Errorf("%d entries, want 10001: nothing written", n)
	}
}

// TestPublishQueuedCallerContextEnds: a caller whose context ends while
// its event is still queued behind a stuck pipeline gets its context's
// error (not ErrOutcomeUnknown), and the event is never written.
func TestPublishQueuedCallerContextEnds(t *testing.T) {
	if testing.Short() {
		t.Skip("own redis-server, waits out a paused Redis; run without -short")
	}
	ctx := context.Background()
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { c.Close() })
	b := newBus(t, c, "queued", func(cfg *eventbus.Config) { cfg.PublishTimeout = 3 * time.Second })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, b, approved("t"))
	srv.Pause()
	first := make(chan error, 1)
	go func() { _, err := b.Publish(ctx, approved("t")); first <- err }() // takes the pipeline
	var queuedID string
	var queuedErr error
	for attempt := 0; attempt < 5; attempt++ {
		// The first publish may not have been taken yet: then this one
		// leads and its outcome is unknown; try again.
		ev := approved("t")
		ev.ID = fmt.Sprintf("queued-%d", attempt)
		qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, queuedErr = b.Publish(qctx, ev)
		cancel()
		queuedID = ev.ID
		if !errors.Is(queuedErr, eventbus.ErrOutcomeUnknown) {
			break
		}
	}
	if !errors.Is(queuedErr, context.DeadlineExceeded) || errors.Is(queuedErr, eventbus.ErrOutcomeUnknown) {
		t.Fatalf("queued publish whose context ended: %v, want context.DeadlineExceeded (not written)", queuedErr)
	}
	// The first publish was sent (unknown), or queued behind an attempt
	// that led (unavailable: not sent within the timeout).
	if err := <-first; !errors.Is(err, eventbus.ErrOutcomeUnknown) && !errors.Is(err, eventbus.ErrUnavailable) {
		t.Errorf("publish with Redis paused: %v, want ErrOutcomeUnknown or ErrUnavailable", err)
	}
	srv.Resume()
	waitFor(t, 10*time.Second, "Redis answers", func() bool { return c.Ping(ctx).Err() == nil })
	main, _, _ := b.Streams()
	if n := entriesByID(t, c, main)[queuedID]; n != 0 {
		t.Errorf("event %s answered its context's error (not written) but is in the stream %d times", queuedID, n)
	}
}

// TestBreakerProbesOneCallWhileRedisPaused: with Redis paused and the
// breaker open, once the cool-down is over one call waits for Redis (the
// probe) and every other call fails at once.
func TestBreakerProbesOneCallWhileRedisPaused(t *testing.T) {
	if testing.Short() {
		t.Skip("pauses Redis through breaker cool-downs; run without -short")
	}
	ctx := context.Background()
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 2 * time.Second, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	b := newBus(t, c, "probe", nil)
	if err := b.Ready(ctx); err != nil && !errors.Is(err, eventbus.ErrNotReady) {
		t.Fatal(err)
	}
	srv.Pause()
	waitFor(t, 30*time.Second, "the breaker to open", func() bool {
		start := time.Now()
		err := b.Ready(ctx)
		return errors.Is(err, eventbus.ErrUnavailable) && time.Since(start) < 100*time.Millisecond
	})
	time.Sleep(1100 * time.Millisecond) // the breaker's cool-down (1s): the duration under test
	var wg sync.WaitGroup
	took := make(chan time.Duration, 10)
	for range 10 {
		wg.Go(func() {
			start := time.Now()
			_ = b.Ready(ctx)
			took <- time.Since(start)
		})
	}
	wg.Wait()
	close(took)
	slow := 0
	for d := range took {
		if d > time.Second {
			slow++
		}
	}
	if slow != 1 {
		t.Errorf("%d of 10 calls waited for the paused Redis after the cool-down, want exactly 1 (the probe)", slow)
	}
}
