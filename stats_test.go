package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

func mustStats(t *testing.T, b *eventbus.Bus, scope eventbus.Scope) eventbus.Stats {
	t.Helper()
	st, err := b.Inspector().Stats(context.Background(), scope)
	if err != nil {
		t.Fatalf("Stats(%v): %v", scope, err)
	}
	return st
}

// TestStatsCountPublishedEvents: events written are counted, in total, per
// type and per tenant; a duplicate of an idempotency key and failed
// publishes are not; a tenant scope sees its own counts only.
func TestStatsCountPublishedEvents(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	pub := func(tenant, typ string, n int) {
		t.Helper()
		for range n {
			inspPublish(t, b, eventbus.Event{Type: typ, TenantID: tenant, UserID: "u"})
		}
	}
	pub("tenant-a", "orders.order.created", 3)
	pub("tenant-a", "orders.order.paid", 2)
	pub("tenant-b", "orders.order.created", 4)
	// An idempotent id published twice: written once.
	for i, wantDup := range []bool{false, true} {
		p, err := b.Publish(ctx, eventbus.Event{ID: "once", Type: "orders.order.paid", TenantID: "tenant-b", UserID: "u"})
		if err != nil || p.Duplicate != wantDup {
			t.Fatalf("publish %d of id once: %+v %v", i, p, err)
		}
	}
	// A batch of two, and a batch repeating one of its ids plus a new one.
	batch := []eventbus.Event{
		{ID: "b1", Type: "users.user.signed_up", TenantID: "tenant-b", UserID: "u"},
		{ID: "b2", Type: "users.user.signed_up", TenantID: "tenant-c", UserID: "u"},
	}
	if _, err := b.PublishBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	batch[1].ID = "b3"
	if res, err := b.PublishBatch(ctx, batch); err != nil || !res[0].Duplicate || res[1].Duplicate {
		t.Fatalf("second batch: %+v %v", res, err)
	}
	// Failed publishes: invalid, and a context already ended.
	if _, err := b.Publish(ctx, eventbus.Event{Type: "Bad Type", TenantID: "tenant-a", UserID: "u"}); err == nil {
		t.Fatal("invalid event published")
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Publish(done, eventbus.Event{Type: "orders.order.paid", TenantID: "tenant-a", UserID: "u"}); err == nil {
		t.Fatal("publish with an ended context succeeded")
	}
	if _, err := b.PublishBatch(done, batch); err == nil {
		t.Fatal("batch with an ended context succeeded")
	}
	if err := eventbus.FlushStats(ctx, b); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		scope  eventbus.Scope
		total  int64
		byType map[string]int64
	}{
		{eventbus.AllTenants(), 13, map[string]int64{"orders.order.created": 7, "orders.order.paid": 3, "users.user.signed_up": 3}},
		{eventbus.TenantScope("tenant-a"), 5, map[string]int64{"orders.order.created": 3, "orders.order.paid": 2}},
		{eventbus.TenantScope("tenant-b"), 6, map[string]int64{"orders.order.created": 4, "orders.order.paid": 1, "users.user.signed_up": 1}},
		{eventbus.TenantScope("tenant-c"), 2, map[string]int64{"users.user.signed_up": 2}},
		{eventbus.TenantScope("tenant-z"), 0, map[string]int64{}},
	} {
		st := mustStats(t, b, tt.scope)
		th := st.Throughput
		if th.LastHour != tt.total || th.Last24h != tt.total {
			t.Errorf("%v: throughput %d / %d, want %d", tt.scope, th.LastHour, th.Last24h, tt.total)
		}
		if len(th.ByType) != len(tt.byType) {
			t.Errorf("%v: byType %v, want %v", tt.scope, th.ByType, tt.byType)
		}
		for typ, n := range tt.byType {
			if got := th.ByType[typ]; got.LastHour != n || got.Last24h != n {
				t.Errorf("%v: type %s: %+v, want %d", tt.scope, typ, got, n)
			}
		}
	}
	// A second flush adds only what came since.
	pub("tenant-a", "orders.order.paid", 1)
	if err := eventbus.FlushStats(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := eventbus.FlushStats(ctx, b); err != nil { // nothing new
		t.Fatal(err)
	}
	if got := mustStats(t, b, eventbus.AllTenants()).Throughput.LastHour; got != 14 {
		t.Errorf("after one more event: lastHour %d, want 14", got)
	}
}

// TestStatsBucketsExpire: every counter hash written has an expiry: the
// minute hashes a little over an hour, the hour hashes a little over a
// day.
func TestStatsBucketsExpire(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	before := time.Now()
	inspPublish(t, b, eventbus.Event{Type: "orders.order.created", TenantID: "tenant-a", UserID: "u"})
	if err := eventbus.FlushStats(ctx, b); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	k := testKeys(prefix)
	var keys []string
	for m := before.Unix() / 60; m <= after.Unix()/60; m++ {
		keys = append(keys, k.StatsMinute(m), k.StatsHour(m/60), k.StatsTenantMinute("tenant-a", m), k.StatsTenantHour("tenant-a", m/60))
	}
	found := 0
	for _, key := range keys {
		ttl, err := c.TTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl == -2*time.Nanosecond { // no such key (the other side of a minute boundary)
			continue
		}
		found++
		limit := 70 * time.Minute
		if strings.Contains(key, ":h:") {
			limit = 26 * time.Hour
		}
		if ttl <= 0 || ttl > limit {
			t.Errorf("%s: ttl %v, want within (0, %v]", key, ttl, limit)
		}
	}
	if found < 4 {
		t.Errorf("found %d counter hashes among %v, want 4", found, keys)
	}
}

// TestStatsKnownState: the stream, DLQ and group fields against a state
// made by hand: pending entries, lag, scheduled retries, dead letters and
// the trimmed counter.
func TestStatsKnownState(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.DLQBudget = 200 })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	k := testKeys(prefix)
	var first, last string
	for i := range 5 {
		p := inspPublish(t, b, eventbus.Event{Type: "orders.order.created", TenantID: "tenant-a", UserID: "u"})
		if i == 0 {
			first = p.StreamID
		}
		last = p.StreamID
	}
	// Three entries delivered, not acknowledged: pending 3, lag 2.
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: b.Config().Group, Consumer: "reader", Streams: []string{k.Main(), ">"}, Count: 3}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.ZAdd(ctx, k.RetrySchedule(b.Config().Group), redis.Z{Score: 1, Member: "a"}, redis.Z{Score: 2, Member: "b"}).Err(); err != nil {
		t.Fatal(err)
	}
	for range 120 {
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: k.DLQ(), Values: []any{"x", "1"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// The DLQ's retention counter (field "trimmed" of the counters hash).
	if err := c.HSet(ctx, k.DLQCounters(), "trimmed", 7).Err(); err != nil {
		t.Fatal(err)
	}

	st := mustStats(t, b, eventbus.AllTenants())
	ms := st.MainStream
	if ms == nil || ms.Name != k.Main() || ms.Length != 5 || ms.FirstEntryID == nil || *ms.FirstEntryID != first || ms.LastEntryID == nil || *ms.LastEntryID != last {
		t.Errorf("main stream %+v, want length 5 from %s to %s", ms, first, last)
	}
	if d := st.DLQ; d.Length != 120 || d.Budget != 200 || d.UsedPercent != 60 || d.TrimmedByRetention != 7 {
		t.Errorf("dlq %+v", d)
	}
	g := st.ConsumerGroup
	if g == nil {
		t.Fatal("no consumer group")
	}
	if g.Name != b.Config().Group || g.Pending != 3 || g.Consumers != 0 || g.RetriesScheduled != 2 {
		t.Errorf("group %+v", g)
	}
	if g.Lag == nil || *g.Lag != 2 {
		t.Errorf("lag %v, want 2", g.Lag)
	}
	if g.OldestPendingAgeMs == nil || *g.OldestPendingAgeMs < 0 || *g.OldestPendingAgeMs > time.Minute.Milliseconds() {
		t.Errorf("oldest pending age %v", g.OldestPendingAgeMs)
	}
	if len(st.Alarms) != 1 || st.Alarms[0].Name != eventbus.AlarmDLQ || st.Alarms[0].Level != eventbus.AlarmWarning || st.Alarms[0].Value != 120 {
		t.Errorf("alarms %+v, want one DLQ warning", st.Alarms)
	}
	if st.Scope != "*" {
		t.Errorf("scope %q", st.Scope)
	}

	// A tenant sees no platform-wide part and no other tenant's dead
	// letters (these raw entries have no tenant in the DLQ index).
	ts := mustStats(t, b, eventbus.TenantScope("tenant-a"))
	if ts.MainStream != nil || ts.ConsumerGroup != nil || ts.DLQ.Length != 0 || ts.DLQ.UsedPercent != 0 || ts.DLQ.TrimmedByRetention != 0 || len(ts.Alarms) != 0 || ts.Scope != "tenant-a" {
		t.Errorf("tenant stats %+v", ts)
	}
}

// TestStatsFailuresPerTenant: failed handler runs (retries scheduled and
// dead letters) are counted, per tenant, from a process that runs a
// consumer only; the consumer's stop flushes them.
func TestStatsFailuresPerTenant(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) {
		cfg.Retry = &eventbus.RetryPolicy{Delays: []time.Duration{time.Hour}} // one retry, never due in the test
	})
	mustHandle(t, cons, "flaky", "*", func(_ context.Context, ev eventbus.Event) error {
		if ev.TenantID == "tenant-b" {
			return eventbus.Permanent(errors.New("bad"))
		}
		return errors.New("try later")
	})
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		tenant := "tenant-a"
		if i%4 == 0 {
			tenant = "tenant-b" // 3 of them
		}
		inspPublish(t, b, eventbus.Event{Type: "orders.order.created", TenantID: tenant, UserID: "u"})
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = cons.Run(runCtx) }()
	waitFor(t, 10*time.Second, "12 failed runs", func() bool { return cons.Stats().Failed == 12 })
	stop()
	<-done

	st := mustStats(t, b, eventbus.AllTenants())
	if st.Failures.LastHour != 12 || st.DLQ.Length != 3 || st.ConsumerGroup.RetriesScheduled != 9 || st.ConsumerGroup.Pending != 0 {
		t.Errorf("failures %d, dlq %d, group %+v", st.Failures.LastHour, st.DLQ.Length, st.ConsumerGroup)
	}
	if len(st.Alarms) != 1 || st.Alarms[0].Name != eventbus.AlarmFailures || st.Alarms[0].Level != eventbus.AlarmWarning ||
		st.Alarms[0].Value != 12 || st.Alarms[0].Threshold != eventbus.AlarmFailuresWarn {
		t.Errorf("alarms %+v, want one failures warning", st.Alarms)
	}
	for tenant, want := range map[string]int64{"tenant-a": 9, "tenant-b": 3, "tenant-z": 0} {
		if got := mustStats(t, b, eventbus.TenantScope(tenant)).Failures.LastHour; got != want {
			t.Errorf("%s: failures %d, want %d", tenant, got, want)
		}
	}
	// This process published without Bus.Run: the consumer's loop
	// flushed the publish counts too.
	if got := st.Throughput.LastHour; got != 12 {
		t.Errorf("throughput %d, want 12", got)
	}
}

// TestStatsFlushOnStop: Bus.Run flushes the counts when it stops.
func TestStatsFlushOnStop(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(runCtx) }()
	waitFor(t, 10*time.Second, "set-up", func() bool { return b.Ready(ctx) == nil })
	for range 3 {
		inspPublish(t, b, eventbus.Event{Type: "orders.order.created", TenantID: "tenant-a", UserID: "u"})
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := mustStats(t, b, eventbus.AllTenants()).Throughput.LastHour; got != 3 {
		t.Errorf("after Run stopped: lastHour %d, want 3", got)
	}
}

// TestStatsEmptyJSON: an empty bus reports zeros with empty (never null)
// byType and alarms; an invalid scope is ErrInvalidScope.
func TestStatsEmptyJSON(t *testing.T) {
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	for _, scope := range []eventbus.Scope{eventbus.AllTenants(), eventbus.TenantScope("tenant-a")} {
		raw, err := json.Marshal(mustStats(t, b, scope))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"byType":{}`, `"alarms":[]`, `"lastHour":0`} {
			if !strings.Contains(string(raw), want) {
				t.Errorf("%v: %s lacks %s", scope, raw, want)
			}
		}
	}
	if _, err := b.Inspector().Stats(context.Background(), eventbus.TenantScope(" ")); !errors.Is(err, eventbus.ErrInvalidScope) {
		t.Errorf("blank tenant: %v, want ErrInvalidScope", err)
	}
}

// TestStatsThroughputPerBucket: the report's perMinute (60 values) and
// perHour (24 values) hold each bucket's published count, oldest first
// with the current bucket last; a tenant scope reads its own buckets.
func TestStatsThroughputPerBucket(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	r := rdb.New(c, testKeys(prefix), rdb.Options{})
	now := time.Now()
	m := now.Unix() / 60
	add := func(back int64, all, tenantA int64) rdb.StatsAdd {
		return rdb.StatsAdd{Minute: m - back, All: map[string]int64{rdb.StatsPublished: all},
			Tenants: map[string]map[string]int64{"tenant-a": {rdb.StatsPublished: tenantA}}}
	}
	if err := r.AddStats(ctx, now, []rdb.StatsAdd{add(0, 3, 1), add(2, 5, 2), add(61, 7, 4)}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		scope           eventbus.Scope
		now, two, sixty int64
	}{
		{eventbus.AllTenants(), 3, 5, 7},
		{eventbus.TenantScope("tenant-a"), 1, 2, 4},
		{eventbus.TenantScope("tenant-b"), 0, 0, 0},
	} {
		st := mustStats(t, b, tt.scope)
		// Place the buckets by the report's own clock: a minute may have
		// turned since AddStats.
		mNow := st.Timestamp.Unix() / 60
		wantMin := make([]int64, 60)
		wantHour := make([]int64, 24)
		for back, n := range map[int64]int64{0: tt.now, 2: tt.two, 61: tt.sixty} {
			minute := m - back
			if i := 59 - (mNow - minute); i >= 0 {
				wantMin[i] += n
			}
			wantHour[23-(mNow/60-minute/60)] += n
		}
		th := st.Throughput
		if !slices.Equal(th.PerMinute, wantMin) || !slices.Equal(th.PerHour, wantHour) {
			t.Errorf("%v: perMinute %v, want %v; perHour %v, want %v", tt.scope, th.PerMinute, wantMin, th.PerHour, wantHour)
		}
	}
	raw, err := json.Marshal(mustStats(t, b, eventbus.TenantScope("tenant-z")).Throughput)
	if err != nil {
		t.Fatal(err)
	}
	zeros := func(n int) string { return "[" + strings.TrimSuffix(strings.Repeat("0,", n), ",") + "]" }
	for _, want := range []string{`"perMinute":` + zeros(60), `"perHour":` + zeros(24)} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("empty tenant: %s lacks %s", raw, want)
		}
	}
}
