package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// fastBus is a bus with short blocking reads, for quick shutdowns.
func fastBus(t testing.TB, c redis.UniversalClient, prefix string, mutate func(*eventbus.Config)) *eventbus.Bus {
	return newBus(t, c, prefix, func(cfg *eventbus.Config) {
		cfg.Block = 100 * time.Millisecond
		if mutate != nil {
			mutate(cfg)
		}
	})
}

// fastConsumer returns a consumer with short delays: retries after 50,
// 100 and 150 ms, claims after 2 s.
func fastConsumer(t testing.TB, b *eventbus.Bus, mutate func(*eventbus.ConsumerConfig)) *eventbus.Consumer {
	t.Helper()
	cfg := eventbus.ConsumerConfig{
		ClaimIdle: 2 * time.Second, ClaimInterval: 200 * time.Millisecond, RetryPollInterval: 10 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
		Retry:           &eventbus.RetryPolicy{Delays: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 150 * time.Millisecond}},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := b.NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runConsumer runs c until the test ends.
func runConsumer(t testing.TB, c *eventbus.Consumer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func mustHandle(t testing.TB, c *eventbus.Consumer, name, pattern string, h eventbus.HandlerFunc, opts ...eventbus.SubscribeOption) {
	t.Helper()
	opts = append([]eventbus.SubscribeOption{eventbus.Timeout(time.Second)}, opts...)
	if err := c.Handle(name, pattern, h, opts...); err != nil {
		t.Fatal(err)
	}
}

func publishN(t testing.TB, b *eventbus.Bus, n int, typ string) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for start := 0; start < n; start += 500 {
		batch := make([]eventbus.Event, min(500, n-start))
		for i := range batch {
			batch[i] = eventbus.Event{Type: typ, TenantID: "t1", UserID: "u1", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, start+i))}
		}
		res, err := b.PublishBatch(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// counter counts handler runs per event id.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func newCounter() *counter { return &counter{n: map[string]int{}} }

func (c *counter) add(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[id]++
	return c.n[id]
}

func (c *counter) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}

func (c *counter) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}

func pendingCount(t testing.TB, c redis.UniversalClient, stream, group string) int64 {
	p, err := c.XPending(context.Background(), stream, group).Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

func TestEveryEventHandledOnceByThreeConsumers(t *testing.T) {
	c, prefix := redistest.Shared(t)
	const n = 10000
	runs := newCounter()
	for i := range 3 {
		b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Consumer = fmt.Sprintf("c%d", i) })
		if err := b.SetUp(context.Background()); err != nil {
			t.Fatal(err)
		}
		cons := fastConsumer(t, b, nil)
		mustHandle(t, cons, "count", "approval.*", func(_ context.Context, ev eventbus.Event) error {
			runs.add(ev.ID)
			return nil
		})
		runConsumer(t, cons)
	}
	pub := fastBus(t, c, prefix, nil)
	ids := publishN(t, pub, n, "approval.item.approved")
	waitFor(t, 60*time.Second, "every event handled", func() bool { return runs.distinct() == n })
	waitFor(t, 10*time.Second, "every entry acknowledged", func() bool {
		return pendingCount(t, c, testKeys(prefix).Main(), eventbus.DefaultGroup) == 0
	})
	for _, id := range ids {
		if got := runs.get(id); got != 1 {
			t.Fatalf("event %s handled %d times, want once", id, got)
		}
	}
	// Status of a completed event leaves no key behind and says COMPLETED.
	st, err := pub.Status(context.Background(), "", ids[42])
	if err != nil || st.State != eventbus.StateCompleted {
		t.Errorf("status %+v %v, want COMPLETED", st, err)
	}
	if keys := c.Keys(context.Background(), testKeys(prefix).Status("*", "*")).Val(); len(keys) != 0 {
		t.Errorf("status keys left behind: %v", keys)
	}
}

func TestTwoGroupsEachGetEveryEvent(t *testing.T) {
	c, prefix := redistest.Shared(t)
	const n = 500
	counters := map[string]*counter{"billing": newCounter(), "search": newCounter()}
	for group, runs := range counters {
		b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Group = group })
		if err := b.SetUp(context.Background()); err != nil {
			t.Fatal(err)
		}
		cons := fastConsumer(t, b, nil)
		mustHandle(t, cons, "h", "*", func(_ context.Context, ev eventbus.Event) error { runs.add(ev.ID); return nil })
		runConsumer(t, cons)
	}
	publishN(t, fastBus(t, c, prefix, nil), n, "crm.deal.won")
	for group, runs := range counters {
		waitFor(t, 30*time.Second, group+" got every event", func() bool { return runs.distinct() == n })
	}
}

func TestRetriesRunOnlyTheFailedHandler(t *testing.T) {
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	cons := fastConsumer(t, b, nil)
	var a, bRuns atomic.Int32
	var order []string
	var mu sync.Mutex
	mustHandle(t, cons, "a", "approval.item.approved", func(context.Context, eventbus.Event) error {
		a.Add(1)
		mu.Lock()
		order = append(order, "a")
		mu.Unlock()
		return nil
	}, eventbus.Priority(10))
	mustHandle(t, cons, "b", "approval.*", func(context.Context, eventbus.Event) error {
		mu.Lock()
		order = append(order, "b")
		mu.Unlock()
		if bRuns.Add(1) <= 2 {
			return errors.New("downstream unavailable")
		}
		return nil
	}, eventbus.Priority(200))
	if err := b.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	runConsumer(t, cons)
	p, err := b.Publish(context.Background(), approved("t1"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b to succeed on its third run", func() bool { return bRuns.Load() == 3 })
	waitFor(t, 5*time.Second, "status COMPLETED", func() bool {
		st, err := b.Status(context.Background(), "", p.ID)
		return err == nil && st.State == eventbus.StateCompleted
	})
	if a.Load() != 1 {
		t.Errorf("handler a ran %d times, want 1", a.Load())
	}
	mu.Lock()
	if order[0] != "a" || order[1] != "b" {
		t.Errorf("order %v: lower priority must run first", order)
	}
	mu.Unlock()
	st, err := b.Status(context.Background(), "", p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Handlers) != 2 || st.Handlers[1].Name != "b" || st.Handlers[1].Attempts != 3 || st.Handlers[1].State != "succeeded" {
		t.Errorf("status handlers %+v", st.Handlers)
	}
	if n := pendingCount(t, c, testKeys(prefix).Main(), eventbus.DefaultGroup) + pendingCount(t, c, testKeys(prefix).Retries(eventbus.DefaultGroup), eventbus.DefaultGroup); n != 0 {
		t.Errorf("%d entries still pending", n)
	}
}

func TestAlwaysFailingHandlerEndsInDLQWithEveryError(t *testing.T) {
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	delays := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
	cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) { cfg.Retry = &eventbus.RetryPolicy{Delays: delays} })
	var mu sync.Mutex
	var at []time.Time
	mustHandle(t, cons, "always-fails", "*", func(context.Context, eventbus.Event) error {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		return fmt.Errorf("attempt %d failed", len(at))
	})
	if err := b.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	runConsumer(t, cons)
	p, err := b.Publish(context.Background(), approved("t1"))
	if err != nil {
		t.Fatal(err)
	}
	// While retrying: FAILED with the next attempt.
	waitFor(t, 5*time.Second, "status FAILED", func() bool {
		st, err := b.Status(context.Background(), "", p.ID)
		return err == nil && st.State == eventbus.StateFailed && st.NextAttemptAt != nil && st.LastError != ""
	})
	dlq := testKeys(prefix).DLQ()
	waitFor(t, 10*time.Second, "a DLQ entry", func() bool { return c.XLen(context.Background(), dlq).Val() == 1 })
	mu.Lock()
	if len(at) != 4 {
		t.Fatalf("%d attempts, want 4", len(at))
	}
	for i, d := range delays {
		if gap := at[i+1].Sub(at[i]); gap < d {
			t.Errorf("retry %d came after %v, want at least %v", i+1, gap, d)
		}
	}
	mu.Unlock()
	entries := c.XRange(context.Background(), dlq, "-", "+").Val()
	var dl eventbus.DeadLetter
	if err := json.Unmarshal([]byte(entries[0].Values[rdb.FieldDLQ].(string)), &dl); err != nil {
		t.Fatal(err)
	}
	if dl.EventID != p.ID || dl.Handler != "always-fails" || dl.Group != eventbus.DefaultGroup || dl.OriginalStreamID != p.StreamID ||
		dl.Attempts != 4 || len(dl.Errors) != 4 || dl.MovedAt.IsZero() {
		t.Errorf("dead letter %+v", dl)
	}
	for i, e := range dl.Errors {
		if e.Attempt != i+1 || e.Message != fmt.Sprintf("attempt %d failed", i+1) {
			t.Errorf("error %d: %+v", i, e)
		}
	}
	var orig map[string]any
	if err := json.Unmarshal([]byte(entries[0].Values[rdb.FieldEvent].(string)), &orig); err != nil || orig["id"] != p.ID {
		t.Errorf("DLQ event field %v %v", orig, err)
	}
	st, err := b.Status(context.Background(), "", p.ID)
	if err != nil || st.State != eventbus.StateDLQ || st.Attempts != 4 || st.LastError != "attempt 4 failed" {
		t.Errorf("status %+v %v, want DLQ after 4 attempts", st, err)
	}
	// Nothing left scheduled or pending.
	if n := c.ZCard(context.Background(), testKeys(prefix).RetrySchedule(eventbus.DefaultGroup)).Val(); n != 0 {
		t.Errorf("%d retries still scheduled", n)
	}
}

func TestPermanentErrorGoesToDLQAtOnce(t *testing.T) {
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	cons := fastConsumer(t, b, nil)
	var runs atomic.Int32
	mustHandle(t, cons, "strict", "*", func(context.Context, eventbus.Event) error {
		runs.Add(1)
		return eventbus.Permanent(errors.New("schema mismatch"))
	})
	mustHandle(t, cons, "fine", "*", func(context.Context, eventbus.Event) error { return nil })
	if err := b.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	runConsumer(t, cons)
	p, err := b.Publish(context.Background(), approved("t1"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "DLQ entry", func() bool { return c.XLen(context.Background(), testKeys(prefix).DLQ()).Val() == 1 })
	st, err := b.Status(context.Background(), "", p.ID)
	if err != nil || st.State != eventbus.StateDLQ || runs.Load() != 1 {
		t.Errorf("status %+v %v runs %d", st, err, runs.Load())
	}
}

func TestBadEntriesGoToDLQAndTheLoopContinues(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	cons := fastConsumer(t, b, nil)
	runs := newCounter()
	mustHandle(t, cons, "h", "*", func(_ context.Context, ev eventbus.Event) error { runs.add(ev.ID); return nil })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	runConsumer(t, cons)
	main := testKeys(prefix).Main()
	garbage := []struct {
		values []string
		reason string
	}{
		{[]string{rdb.FieldEvent, "not json at all"}, "event"},
		{[]string{rdb.FieldEvent, `{"id":"x1","type":"a.b","userId":"u"}`}, "tenantId"},
		{[]string{rdb.FieldEvent, `{"id":"x2","type":"NOPE","tenantId":"t","userId":"u"}`}, "type"},
		{[]string{rdb.FieldEvent, `{"id":"x3","type":"a.b","tenantId":"t","userId":"u","data":[1]}`}, "data"},
		{[]string{rdb.FieldEvent, `{"type":"a.b","tenantId":"t","userId":"u"}`}, "id"},
		{[]string{"payload", "something else"}, "no event field"},
	}
	want := map[string]string{} // stream id -> reason
	for _, g := range garbage {
		want[c.XAdd(ctx, &redis.XAddArgs{Stream: main, Values: g.values}).Val()] = g.reason
	}
	p, err := b.Publish(ctx, approved("t1"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the valid event after the garbage", func() bool { return runs.get(p.ID) == 1 })
	waitFor(t, 5*time.Second, "every bad entry in the DLQ", func() bool {
		return c.XLen(ctx, testKeys(prefix).DLQ()).Val() >= int64(len(garbage))
	})
	dlq := c.XRange(ctx, testKeys(prefix).DLQ(), "-", "+").Val()
	if len(dlq) != len(garbage) {
		t.Fatalf("%d DLQ entries, want %d", len(dlq), len(garbage))
	}
	for _, e := range dlq {
		var dl eventbus.DeadLetter
		json.Unmarshal([]byte(e.Values[rdb.FieldDLQ].(string)), &dl)
		if reason, ok := want[dl.OriginalStreamID]; !ok || !strings.Contains(dl.Reason, reason) {
			t.Errorf("entry %s reason %q, want it to mention %q", dl.OriginalStreamID, dl.Reason, reason)
		}
		delete(want, dl.OriginalStreamID)
	}
	waitFor(t, 5*time.Second, "all acknowledged", func() bool { return pendingCount(t, c, main, eventbus.DefaultGroup) == 0 })
}

func TestPanicAndTimeoutAreFailures(t *testing.T) {
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) { cfg.Retry = &eventbus.RetryPolicy{} })
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	mustHandle(t, cons, "panics", "panic.*", func(context.Context, eventbus.Event) error { panic("boom") })
	if err := cons.Handle("hangs", "hang.*", eventbus.HandlerFunc(func(context.Context, eventbus.Event) error {
		<-release // ignores its context
		return nil
	}), eventbus.Timeout(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	runs := newCounter()
	mustHandle(t, cons, "ok", "ok.*", func(_ context.Context, ev eventbus.Event) error { runs.add(ev.ID); return nil })
	if err := b.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	runConsumer(t, cons)
	ctx := context.Background()
	pp, err := b.Publish(ctx, eventbus.Event{Type: "panic.now.please", TenantID: "t", UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	ph, err := b.Publish(ctx, eventbus.Event{Type: "hang.for.ever", TenantID: "t", UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	ok, err := b.Publish(ctx, eventbus.Event{Type: "ok.fine.event", TenantID: "t", UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "two DLQ entries", func() bool { return c.XLen(ctx, testKeys(prefix).DLQ()).Val() == 2 })
	waitFor(t, 5*time.Second, "the consumer still handles events", func() bool { return runs.get(ok.ID) == 1 })
	for _, e := range c.XRange(ctx, testKeys(prefix).DLQ(), "-", "+").Val() {
		var dl eventbus.DeadLetter
		json.Unmarshal([]byte(e.Values[rdb.FieldDLQ].(string)), &dl)
		switch dl.EventID {
		case pp.ID:
			if !strings.Contains(dl.Errors[0].Message, "panic: boom") || !strings.Contains(dl.Errors[0].Stack, "goroutine") {
				t.Errorf("panic dead letter %+v", dl.Errors)
			}
		case ph.ID:
			if !strings.Contains(dl.Errors[0].Message, "timed out") {
				t.Errorf("timeout dead letter %+v", dl.Errors)
			}
		default:
			t.Errorf("unexpected dead letter %+v", dl)
		}
	}
}

func TestEventWithoutHandlerIsAcknowledged(t *testing.T) {
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	cons := fastConsumer(t, b, nil)
	mustHandle(t, cons, "crm", "crm.*", func(context.Context, eventbus.Event) error { return nil }, eventbus.Tenants("t-crm"))
	if err := b.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	runConsumer(t, cons)
	publishN(t, b, 20, "approval.item.approved") // no handler matches the type
	ev := eventbus.Event{Type: "crm.deal.won", TenantID: "other-tenant", UserID: "u"}
	if _, err := b.Publish(context.Background(), ev); err != nil { // matches the type, not the tenant
		t.Fatal(err)
	}
	main := testKeys(prefix).Main()
	waitFor(t, 5*time.Second, "every entry delivered and acknowledged", func() bool {
		last, _ := c.XInfoGroups(context.Background(), main).Result()
		return len(last) == 1 && last[0].EntriesRead == 21 && pendingCount(t, c, main, eventbus.DefaultGroup) == 0
	})
}

func TestHandlerIgnoringItsTimeoutDoesNotBlockTheNextHandlers(t *testing.T) {
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) {
		cfg.Retry = &eventbus.RetryPolicy{}
		cfg.Concurrency = 1 // the stuck worker must be replaced, or nothing else runs
	})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	if err := cons.Handle("stuck", "*", eventbus.HandlerFunc(func(context.Context, eventbus.Event) error {
		<-release
		return nil
	}), eventbus.Timeout(100*time.Millisecond), eventbus.Priority(1)); err != nil {
		t.Fatal(err)
	}
	after := newCounter()
	mustHandle(t, cons, "after", "*", func(_ context.Context, ev eventbus.Event) error { after.add(ev.ID); return nil }, eventbus.Priority(2))
	if err := b.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	runConsumer(t, cons)
	ctx := context.Background()
	first, err := b.Publish(ctx, approved("t"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.Publish(ctx, approved("t"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "both events through the next handler", func() bool {
		return after.get(first.ID) == 1 && after.get(second.ID) == 1
	})
	waitFor(t, 5*time.Second, "both stuck runs dead-lettered", func() bool {
		return c.XLen(ctx, testKeys(prefix).DLQ()).Val() == 2
	})
	st, err := b.Status(ctx, "", first.ID)
	if err != nil || st.State != eventbus.StateDLQ || len(st.Handlers) != 2 {
		t.Errorf("status %+v %v", st, err)
	}
}

func TestHandlerContextEndsAtItsTimeout(t *testing.T) {
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) { cfg.Retry = &eventbus.RetryPolicy{} })
	var hadDeadline atomic.Bool
	if err := cons.Handle("polite", "*", eventbus.HandlerFunc(func(ctx context.Context, _ eventbus.Event) error {
		_, ok := ctx.Deadline()
		hadDeadline.Store(ok)
		<-ctx.Done()
		return ctx.Err()
	}), eventbus.Timeout(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := b.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	runConsumer(t, cons)
	start := time.Now()
	if _, err := b.Publish(context.Background(), approved("t")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	waitFor(t, 5*time.Second, "the timed-out run dead-lettered", func() bool { return c.XLen(ctx, testKeys(prefix).DLQ()).Val() == 1 })
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("dead-lettered after %v, before the timeout", d)
	}
	var dl eventbus.DeadLetter
	json.Unmarshal([]byte(c.XRange(ctx, testKeys(prefix).DLQ(), "-", "+").Val()[0].Values[rdb.FieldDLQ].(string)), &dl)
	if msg := dl.Errors[0].Message; !strings.Contains(msg, "timed out after 100ms") || !strings.Contains(msg, "deadline exceeded") {
		t.Errorf("error %q", msg)
	}
	if !hadDeadline.Load() {
		t.Error("the handler's context had no deadline")
	}
}
