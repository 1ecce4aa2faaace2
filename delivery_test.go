package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// deadLetters reads every DLQ entry's metadata.
func deadLetters(t *testing.T, c redis.UniversalClient, prefix string) []eventbus.DeadLetter {
	t.Helper()
	var out []eventbus.DeadLetter
	for _, m := range c.XRange(context.Background(), testKeys(prefix).DLQ(), "-", "+").Val() {
		var dl eventbus.DeadLetter
		if err := json.Unmarshal([]byte(m.Values[rdb.FieldDLQ].(string)), &dl); err != nil {
			t.Fatal(err)
		}
		out = append(out, dl)
	}
	return out
}

// An entry that kills every consumer that reads it goes to the DLQ after
// MaxDeliveries deliveries, and the consumers carry on.
func TestEntryThatCrashesItsConsumerIsDeadLettered(t *testing.T) {
	if testing.Short() {
		t.Skip("crashes consumers until the entry is dead-lettered: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	const maxDeliveries = 3
	env := []string{"W_CRASH_TYPE=poison.item.crashed", "W_CLAIM_IDLE_MS=500", "W_MAX_DELIVERIES=3"}
	p, err := b.Publish(ctx, eventbus.Event{Type: "poison.item.crashed", TenantID: "t1", UserID: "u1", Data: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	var w *worker
	crashes := 0
	for i := 0; c.XLen(ctx, testKeys(prefix).DLQ()).Val() == 0; i++ {
		if i > 3*maxDeliveries {
			t.Fatalf("no dead letter after %d consumer processes (%d crashed)", i, crashes)
		}
		w = startWorker(t, sharedURL(), prefix, "crashing-"+string(rune('a'+i)), env...)
		deadline := time.After(30 * time.Second)
		for exited := false; !exited; {
			select {
			case <-w.done:
				crashes++
				exited = true
			case <-deadline:
				t.Fatalf("consumer %d neither crashed nor dead-lettered the entry in 30 s", i)
			case <-time.After(20 * time.Millisecond):
				exited = c.XLen(ctx, testKeys(prefix).DLQ()).Val() > 0
			}
		}
	}
	if crashes != maxDeliveries {
		t.Errorf("%d consumers crashed, want %d (one per delivery)", crashes, maxDeliveries)
	}
	dls := deadLetters(t, c, prefix)
	want := "delivered 3 times without an outcome (consumer crash or hang)"
	if len(dls) != 1 || dls[0].Reason != want || dls[0].EventID != p.ID || dls[0].Handler != "crash" || !slices.Equal(dls[0].Handlers, []string{"crash", "a", "b"}) {
		t.Fatalf("dead letters %+v, want one for %s, handler crash, reason %q", dls, p.ID, want)
	}
	if st, err := b.Status(ctx, "", p.ID); err != nil || st.State != eventbus.StateDLQ {
		t.Errorf("status %+v %v, want DLQ", st, err)
	}
	// The last consumer lives on and handles other events.
	ids := publishN(t, b, 5, "approval.item.approved")
	waitFor(t, 30*time.Second, "other events handled", func() bool {
		for _, id := range ids {
			if c.HGet(ctx, prefix+":runs", id+"|b").Val() != "1" {
				return false
			}
		}
		return true
	})
	select {
	case <-w.done:
		t.Fatal("the consumer exited")
	default:
	}
	waitFor(t, 10*time.Second, "nothing pending", func() bool {
		return pendingCount(t, c, testKeys(prefix).Main(), eventbus.DefaultGroup) == 0
	})
	if n := len(deadLetters(t, c, prefix)); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
	if n := c.HGet(ctx, prefix+":runs", p.ID+"|a").Val(); n != "" {
		t.Errorf("handler a ran the poison entry %s times, want never (crash runs first)", n)
	}
}

// Consumers of one group with different handler sets: a retry of a
// handler only consumer 2 has is run by consumer 2, never dead-lettered by
// consumer 1.
func TestRetryReachesAConsumerThatHasTheHandler(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a scheduled retry to reach another consumer: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	busFor := func(name string) *eventbus.Bus {
		b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Consumer = name })
		if err := b.SetUp(ctx); err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The retry is due 3 s after the first run: consumer 2 stops well
	// before, even on a loaded machine.
	retry := &eventbus.RetryPolicy{Delays: []time.Duration{3 * time.Second}}
	runs := newCounter()
	flaky := func(_ context.Context, ev eventbus.Event) error {
		if runs.add(ev.ID) == 1 {
			return errors.New("first run fails")
		}
		return nil
	}
	// Consumer 2 has "flaky": it handles the event first and schedules
	// the retry, then stops before the retry is due.
	b2 := busFor("c2")
	c2 := fastConsumer(t, b2, func(cfg *eventbus.ConsumerConfig) { cfg.Retry = retry })
	mustHandle(t, c2, "flaky", "*", flaky)
	ctx2, stop2 := context.WithCancel(ctx)
	done2 := make(chan struct{})
	go func() { defer close(done2); _ = c2.Run(ctx2) }()
	p, err := b2.Publish(ctx, approved("t1"))
	if err != nil {
		t.Fatal(err)
	}
	schedule := testKeys(prefix).RetrySchedule(eventbus.DefaultGroup)
	waitFor(t, 10*time.Second, "the retry scheduled", func() bool { return runs.get(p.ID) == 1 && c.ZCard(ctx, schedule).Val() == 1 })
	stop2()
	<-done2

	// Consumer 1 lacks "flaky": it reads the due retry and hands it back.
	b1 := busFor("c1")
	c1 := fastConsumer(t, b1, func(cfg *eventbus.ConsumerConfig) { cfg.Retry = retry })
	mustHandle(t, c1, "other", "*", func(context.Context, eventbus.Event) error { return nil })
	runConsumer(t, c1)
	data := testKeys(prefix).RetryData(eventbus.DefaultGroup)
	waitFor(t, 15*time.Second, "consumer 1 to hand the retry back", func() bool {
		for _, v := range c.HGetAll(ctx, data).Val() {
			if strings.Contains(v, "waitingSince") {
				return true
			}
		}
		return false
	})
	if n := c.XLen(ctx, testKeys(prefix).DLQ()).Val(); n != 0 {
		t.Fatalf("%d dead letters: consumer 1 dead-lettered a retry it has no handler for", n)
	}

	// Consumer 2 comes back and runs the retry.
	c2b := fastConsumer(t, b2, func(cfg *eventbus.ConsumerConfig) { cfg.Retry = retry })
	mustHandle(t, c2b, "flaky", "*", flaky)
	runConsumer(t, c2b)
	waitFor(t, 20*time.Second, "the retry run by consumer 2", func() bool { return runs.get(p.ID) == 2 })
	waitFor(t, 10*time.Second, "status COMPLETED", func() bool {
		st, err := b1.Status(ctx, "", p.ID)
		return err == nil && st.State == eventbus.StateCompleted
	})
	if n := c.XLen(ctx, testKeys(prefix).DLQ()).Val(); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
	// The registry names each live consumer's handlers.
	reg := c.HGetAll(ctx, testKeys(prefix).Consumers(eventbus.DefaultGroup)).Val()
	if !strings.Contains(reg["c1"], `"other"`) || !strings.Contains(reg["c2"], `"flaky"`) {
		t.Errorf("consumer registry %v, want c1 with other and c2 with flaky", reg)
	}
}

// When no consumer of the group has the handler, the retry goes to the
// DLQ once UnknownHandlerTimeout has passed, with that reason.
func TestRetryWithoutAnyConsumerOfItsHandlerEndsInDLQ(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for retries to run out into the DLQ: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	// Due 2 s later: the first consumer stops well before.
	retry := &eventbus.RetryPolicy{Delays: []time.Duration{2 * time.Second}}
	first := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) { cfg.Retry = retry })
	failed := make(chan struct{}, 1)
	mustHandle(t, first, "gone", "*", func(context.Context, eventbus.Event) error {
		select {
		case failed <- struct{}{}:
		default:
		}
		return errors.New("fails")
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = first.Run(runCtx) }()
	p, err := b.Publish(ctx, approved("t1"))
	if err != nil {
		t.Fatal(err)
	}
	<-failed
	stop()
	<-done
	// The handler is gone from every consumer of the group.
	second := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) {
		cfg.Retry, cfg.UnknownHandlerTimeout = retry, 500*time.Millisecond
	})
	mustHandle(t, second, "other", "*", func(context.Context, eventbus.Event) error { return nil })
	runConsumer(t, second)
	waitFor(t, 15*time.Second, "a dead letter", func() bool { return c.XLen(ctx, testKeys(prefix).DLQ()).Val() == 1 })
	dls := deadLetters(t, c, prefix)
	if want := "no consumer of the group has handler gone"; dls[0].Reason != want || dls[0].EventID != p.ID || dls[0].Handler != "gone" {
		t.Errorf("dead letter %+v, want reason %q", dls[0], want)
	}
}

// Redis 7.0 reports a wrong lag after loading an AOF whose rewrite
// happened mid-stream; the health report must not pass it through.
func TestHealthLagIsCrossCheckedAfterAOFRestart(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	c := failFastClient(t, srv.Addr())
	b := fastBus(t, c, "lag", nil)
	ctx := context.Background()
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	main := "lag:events:main"
	readAndAck := func(n int) {
		t.Helper()
		for range n {
			if _, err := b.Publish(ctx, approved("t1")); err != nil {
				t.Fatal(err)
			}
		}
		res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: eventbus.DefaultGroup, Consumer: "r", Streams: []string{main, ">"}, Count: 100, Block: -1}).Result()
		if err != nil || len(res) != 1 || len(res[0].Messages) != n {
			t.Fatalf("read %v %v, want %d entries", res, err, n)
		}
		for _, m := range res[0].Messages {
			if err := c.XAck(ctx, main, eventbus.DefaultGroup, m.ID).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	readAndAck(3)
	if err := c.BgRewriteAOF(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the AOF rewrite", func() bool {
		info := c.Info(ctx, "persistence").Val()
		return strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0")
	})
	readAndAck(7)
	srv.Stop()
	srv.Restart()
	waitFor(t, 10*time.Second, "Redis back", func() bool { return c.Ping(ctx).Err() == nil })

	var redisLag int64 = -2
	for _, g := range c.XInfoGroups(ctx, main).Val() {
		if g.Name == eventbus.DefaultGroup {
			redisLag = g.Lag
		}
	}
	t.Logf("Redis reports lag %d with nothing undelivered", redisLag)
	check := func(when string, want int64) {
		t.Helper()
		h := b.Health(ctx)
		for _, g := range h.Streams.Main.Groups {
			if g.Name != eventbus.DefaultGroup {
				continue
			}
			if g.Lag == nil || *g.Lag != want {
				t.Errorf("%s: lag %v, want %d", when, deref(g.Lag), want)
			}
			return
		}
		t.Errorf("%s: group %s missing from health", when, eventbus.DefaultGroup)
	}
	check("after the restart, nothing undelivered", 0)
	// With entries undelivered, a lag above the stream's length is not
	// reported.
	for range 2 {
		if _, err := b.Publish(ctx, approved("t1")); err != nil {
			t.Fatal(err)
		}
	}
	h := b.Health(ctx)
	for _, g := range h.Streams.Main.Groups {
		if g.Name == eventbus.DefaultGroup && g.Lag != nil && *g.Lag > h.Streams.Main.Length {
			t.Errorf("lag %d above the stream's length %d", *g.Lag, h.Streams.Main.Length)
		}
	}
}

// A live consumer blocked on a quiet stream (Redis 7.0 counts its idle
// time from its last delivery) is not removed as dead; consumers without a
// heartbeat are.
func TestLiveConsumerOnQuietStreamIsNotRemoved(t *testing.T) {
	if testing.Short() {
		t.Skip("watches a quiet stream past the dead-consumer timeout: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	main := testKeys(prefix).Main()
	consumers := func() []string {
		var names []string
		for _, ci := range c.XInfoConsumers(ctx, main, eventbus.DefaultGroup).Val() {
			names = append(names, ci.Name)
		}
		return names
	}
	start := func(name string) (stop func()) {
		b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Consumer = name })
		if err := b.SetUp(ctx); err != nil {
			t.Fatal(err)
		}
		cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) {
			// Heartbeats every 500 ms: 1.5 s of margin on a loaded machine.
			cfg.DeadConsumerIdle, cfg.ClaimInterval = 2*time.Second, 100*time.Millisecond
		})
		mustHandle(t, cons, "h", "*", func(context.Context, eventbus.Event) error { return nil })
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = cons.Run(runCtx) }()
		var once sync.Once
		stop = func() { once.Do(func() { cancel(); <-done }) }
		t.Cleanup(stop)
		return stop
	}
	b := fastBus(t, c, prefix, nil)
	start("live-1")
	start("live-2")
	stopped := start("stopped")
	// Redis 7.0 adds a consumer to the group with its first delivery:
	// publish until each has had one.
	waitFor(t, 20*time.Second, "three consumers in the group", func() bool {
		if _, err := b.Publish(ctx, approved("t1")); err != nil {
			t.Fatal(err)
		}
		return len(consumers()) == 3
	})
	waitFor(t, 10*time.Second, "nothing pending", func() bool { return pendingCount(t, c, main, eventbus.DefaultGroup) == 0 })
	stopped()
	// A consumer that read once (nothing: redis.Nil) and died without ever
	// sending a heartbeat.
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: eventbus.DefaultGroup, Consumer: "ghost", Streams: []string{main, ">"}, Count: 1, Block: -1}).Err(); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the stopped consumer and the ghost removed", func() bool {
		names := consumers()
		return !slices.Contains(names, "stopped") && !slices.Contains(names, "ghost")
	})
	// Well past DeadConsumerIdle on a stream without a single event.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if names := consumers(); !slices.Contains(names, "live-1") || !slices.Contains(names, "live-2") {
			t.Fatalf("a live consumer was removed: consumers %v", names)
		}
		time.Sleep(100 * time.Millisecond) // observation window
	}
}

// A consumer whose queued entries were taken over and finished by another
// consumer while it was held up (a pause past ClaimIdle) does not run
// them again.
func TestEntriesTakenOverWhileQueuedAreNotRunAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for queued entries to be claimed by another consumer: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Consumer = "held" })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	const claimIdle = 4 * time.Second
	cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) { cfg.Concurrency, cfg.ClaimIdle = 1, claimIdle })
	runs := newCounter()
	release := make(chan struct{})
	started := make(chan string, 10)
	mustHandle(t, cons, "h", "*", func(_ context.Context, ev eventbus.Event) error {
		runs.add(ev.ID)
		started <- ev.ID
		if ev.Data != nil && strings.Contains(string(ev.Data), "slow") {
			<-release
		}
		return nil
	}, eventbus.Timeout(claimIdle-500*time.Millisecond))
	runConsumer(t, cons)

	slow, err := b.Publish(ctx, eventbus.Event{Type: "approval.item.approved", TenantID: "t1", UserID: "u1", Data: json.RawMessage(`{"slow":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	if id := <-started; id != slow.ID {
		t.Fatalf("started %s first", id)
	}
	held := publishN(t, b, 2, "approval.item.approved")
	main := testKeys(prefix).Main()
	var heldIDs []string
	waitFor(t, 10*time.Second, "the two events queued at the held consumer", func() bool {
		p := c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: main, Group: eventbus.DefaultGroup, Start: "-", End: "+", Count: 10, Consumer: "held"}).Val()
		heldIDs = heldIDs[:0]
		for _, e := range p {
			heldIDs = append(heldIDs, e.ID)
		}
		return len(p) == 3
	})
	readAt := time.Now()
	// Another consumer claims the queued entries and finishes them.
	queued := slices.DeleteFunc(heldIDs, func(id string) bool { return id == slow.StreamID })
	if err := c.XClaim(ctx, &redis.XClaimArgs{Stream: main, Group: eventbus.DefaultGroup, Consumer: "other", MinIdle: 0, Messages: queued}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.XAck(ctx, main, eventbus.DefaultGroup, queued...).Err(); err != nil {
		t.Fatal(err)
	}
	// Hold the worker past ClaimIdle/2 since the read, then let it go on.
	for time.Since(readAt) < claimIdle/2+500*time.Millisecond {
		time.Sleep(50 * time.Millisecond) // the pause being simulated
	}
	close(release)
	// The held consumer goes on with new events, and never runs the two.
	next, err := b.Publish(ctx, approved("t1"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the next event handled", func() bool { return runs.get(next.ID) == 1 })
	for _, id := range held {
		if n := runs.get(id); n != 0 {
			t.Errorf("event %s ran %d times at the held consumer after another consumer finished it", id, n)
		}
	}
}

// captureHandler records log records.
type captureHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *captureHandler) WithGroup(string) slog.Handler      { return h }

func (h *captureHandler) find(msg string) (map[string]string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.Message != msg {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		return attrs, true
	}
	return nil, false
}

func TestDeadLetterLogNamesTheEventID(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	logs := &captureHandler{}
	b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Logger = slog.New(logs) })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	cons := fastConsumer(t, b, nil)
	mustHandle(t, cons, "h", "*", func(context.Context, eventbus.Event) error { return eventbus.Permanent(errors.New("no")) })
	runConsumer(t, cons)
	p, err := b.Publish(ctx, approved("t1"))
	if err != nil {
		t.Fatal(err)
	}
	var attrs map[string]string
	waitFor(t, 10*time.Second, "the dead-letter log", func() bool {
		var ok bool
		attrs, ok = logs.find("event dead-lettered")
		return ok
	})
	if attrs["event_id"] != p.ID || attrs["stream_id"] != p.StreamID || attrs["handler"] != "h" {
		t.Errorf("log attributes %v, want event_id %s and stream_id %s", attrs, p.ID, p.StreamID)
	}
}
