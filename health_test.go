package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

func TestHealthReportsStreamContent(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	main := testKeys(prefix).Main()
	now := time.Now().UnixMilli()
	ids := []string{fmt.Sprintf("%d-0", now-3000), fmt.Sprintf("%d-0", now-2000), fmt.Sprintf("%d-0", now-1000)}
	for _, id := range ids {
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: main, ID: id, Values: []string{rdb.FieldEvent, "{}"}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// One consumer reads two entries and leaves them pending.
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: eventbus.DefaultGroup, Consumer: "c1",
		Streams: []string{main, ">"}, Count: 2, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}

	h := b.Health(ctx)
	if !h.Healthy || !h.Redis.Connected {
		t.Fatalf("healthy=%v connected=%v warnings=%v", h.Healthy, h.Redis.Connected, h.Warnings)
	}
	m := h.Streams.Main
	if m.Name != main || !m.Exists || m.Length != 3 {
		t.Errorf("main = %+v, want name %s, exists, length 3", m, main)
	}
	if m.FirstEntryID == nil || *m.FirstEntryID != ids[0] || m.LastEntryID == nil || *m.LastEntryID != ids[2] {
		t.Errorf("first/last = %v/%v, want %s/%s", deref(m.FirstEntryID), deref(m.LastEntryID), ids[0], ids[2])
	}
	if len(m.Groups) != 1 {
		t.Fatalf("groups = %+v", m.Groups)
	}
	g := m.Groups[0]
	if g.Name != eventbus.DefaultGroup || g.Consumers != 1 || g.Pending != 2 || g.LastDeliveredID != ids[1] {
		t.Errorf("group = %+v, want consumers 1, pending 2, last delivered %s", g, ids[1])
	}
	if g.Lag == nil || *g.Lag != 1 {
		t.Errorf("lag = %v, want 1", deref(g.Lag))
	}
	if g.OldestPendingID == nil || *g.OldestPendingID != ids[0] {
		t.Errorf("oldest pending = %v, want %s", deref(g.OldestPendingID), ids[0])
	}
	if h.Streams.DLQ.Length != 0 || h.Streams.DLQ.FirstEntryID != nil || !h.Streams.Replay.Exists {
		t.Errorf("dlq/replay = %+v / %+v", h.Streams.DLQ, h.Streams.Replay)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestHealthLagUnknownIsNull(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	main := testKeys(prefix).Main()
	var ids []string
	for range 3 {
		ids = append(ids, c.XAdd(ctx, &redis.XAddArgs{Stream: main, Values: []string{rdb.FieldEvent, "{}"}}).Val())
	}
	// Deleting an entry in the middle of the undelivered range makes the
	// lag unknowable for Redis: it answers nil.
	if err := c.XDel(ctx, main, ids[1]).Err(); err != nil {
		t.Fatal(err)
	}
	h := b.Health(ctx)
	if lag := h.Streams.Main.Groups[0].Lag; lag != nil {
		t.Errorf("lag = %d, want null when Redis cannot say", *lag)
	}
}

func TestHealthFlagsDataAtRisk(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Retention.Main = 100 * time.Minute })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	main := testKeys(prefix).Main()
	now := time.Now()
	add := func(age time.Duration) string {
		id := fmt.Sprintf("%d-0", now.Add(-age).UnixMilli())
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: main, ID: id, Values: []string{rdb.FieldEvent, "{}"}}).Err(); err != nil {
			t.Fatal(err)
		}
		return id
	}
	add(95 * time.Minute) // older than 90 % of retention
	add(time.Minute)

	h := b.Health(ctx)
	if h.Healthy {
		t.Fatal("healthy with an undelivered entry within 10 % of retention")
	}
	if r := h.Streams.Main.Groups[0].DataAtRisk; len(r) != 1 || !strings.Contains(r[0], "undelivered") {
		t.Errorf("risks = %v, want the undelivered entry", r)
	}

	// Delivered but not acknowledged: the pending entry is at risk.
	if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: eventbus.DefaultGroup, Consumer: "c", Streams: []string{main, ">"}, Count: 1, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	h = b.Health(ctx)
	if r := h.Streams.Main.Groups[0].DataAtRisk; len(r) != 1 || !strings.Contains(r[0], "pending") {
		t.Errorf("risks = %v, want the pending entry", r)
	}

	// A second group that never read: trimming removes entries it never
	// got.
	if err := c.XGroupCreate(ctx, main, "late", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.XTrimMinID(ctx, main, fmt.Sprintf("%d-0", now.Add(-2*time.Minute).UnixMilli())).Err(); err != nil {
		t.Fatal(err)
	}
	h = b.Health(ctx)
	var late eventbus.GroupHealth
	for _, g := range h.Streams.Main.Groups {
		if g.Name == "late" {
			late = g
		}
	}
	if len(late.DataAtRisk) != 1 || !strings.Contains(late.DataAtRisk[0], "removed before the group read them") {
		t.Errorf("late group risks = %v", late.DataAtRisk)
	}

	// Everything read and acknowledged: healthy again.
	for _, g := range []string{eventbus.DefaultGroup, "late"} {
		msgs := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: g, Consumer: "c", Streams: []string{main, ">"}, Count: 10, Block: -1}).Val()
		for _, s := range msgs {
			for _, m := range s.Messages {
				if err := c.XAck(ctx, main, g, m.ID).Err(); err != nil {
					t.Fatal(err)
				}
			}
		}
		pend := c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: main, Group: g, Start: "-", End: "+", Count: 10}).Val()
		for _, p := range pend {
			if err := c.XAck(ctx, main, g, p.ID).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if h = b.Health(ctx); !h.Healthy {
		t.Errorf("not healthy after catching up: %v", h.Warnings)
	}
	// Every entry handled, then all trimmed: nothing was lost.
	if err := c.XTrimMinID(ctx, main, fmt.Sprintf("%d-0", now.Add(time.Hour).UnixMilli())).Err(); err != nil {
		t.Fatal(err)
	}
	if h = b.Health(ctx); !h.Healthy {
		t.Errorf("not healthy after trimming handled entries: %v", h.Warnings)
	}
}

// countingHook counts the commands a client sends.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(int64(len(cmds))); return next(ctx, cmds) }
}

func TestRedisLostAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and restarts its own Redis: slow; run without -short")
	}
	srv := redistest.Start(t)
	c := failFastClient(t, srv.Addr())
	counter := &countingHook{}
	c.AddHook(counter)
	b := newBus(t, c, "lost", nil)
	runBus(t, b)
	ctx := context.Background()
	waitFor(t, 10*time.Second, "ready", func() bool { return b.Ready(ctx) == nil })

	srv.Stop()
	for i := range 5 {
		start := time.Now()
		err := b.Ready(ctx)
		if !errors.Is(err, eventbus.ErrUnavailable) {
			t.Fatalf("call %d with Redis down: %v, want ErrUnavailable", i, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("call %d took %v, want under a second", i, d)
		}
		if h := b.Health(ctx); h.Healthy || h.Redis.Connected {
			t.Fatalf("health with Redis down: healthy=%v connected=%v", h.Healthy, h.Redis.Connected)
		}
	}

	// No busy loop: left alone for a while, the background loops send
	// only a handful of commands.
	before := counter.n.Load()
	time.Sleep(1500 * time.Millisecond) // observation window, not synchronisation
	if n := counter.n.Load() - before; n > 20 {
		t.Errorf("%d commands in 1.5s with Redis down: busy loop", n)
	}

	srv.Restart()
	waitFor(t, 15*time.Second, "healthy again", func() bool { return b.Health(ctx).Healthy })
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready after Redis returned: %v", err)
	}
}

// The DLQ budget: a warning from 80 % (still healthy), unhealthy from
// 95 %, with the budget, the use and the entries removed by retention in
// the report.
func TestHealthDLQBudget(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.DLQBudget = 20 })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	seed := func(n int) {
		var s []dlqSeed
		for i := range n {
			s = append(s, dlqSeed{dl: deadLetterOf("t1", fmt.Sprintf("e%d", i), "order.created", "h", "x")})
		}
		seedDLQ(t, c, prefix, s)
	}
	for _, tc := range []struct {
		add     int
		healthy bool
		level   string
		used    float64
	}{
		{15, true, "", 75},
		{1, true, eventbus.AlarmWarning, 80},
		{2, true, eventbus.AlarmWarning, 90},
		{1, false, eventbus.AlarmCritical, 95},
		{5, false, eventbus.AlarmCritical, 120},
	} {
		seed(tc.add)
		h := b.Health(ctx)
		d := h.DLQBudget
		if h.Healthy != tc.healthy || d.Level != tc.level || d.UsedPercent != tc.used || d.Budget != 20 {
			t.Errorf("after %d more: healthy %v, dlqBudget %+v, warnings %q; want healthy %v, level %q, used %v%%",
				tc.add, h.Healthy, d, h.Warnings, tc.healthy, tc.level, tc.used)
		}
		if (tc.level != "") != slices.ContainsFunc(h.Warnings, func(w string) bool { return strings.Contains(w, "budget") }) {
			t.Errorf("warnings %q: want a budget warning exactly when the level is set", h.Warnings)
		}
	}
	if err := c.HSet(ctx, testKeys(prefix).DLQCounters(), rdb.DLQCounterTrimmed, 7).Err(); err != nil {
		t.Fatal(err)
	}
	if d := b.Health(ctx).DLQBudget; d.TrimmedByRetention != 7 {
		t.Errorf("trimmedByRetention %d, want 7", d.TrimmedByRetention)
	}
}
