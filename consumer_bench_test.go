package eventbus_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// BenchmarkEndToEnd: 50 goroutines publish while one consumer (batch 100,
// concurrency 100) handles every event with a no-op handler and
// acknowledges it. The figure is events published, handled and
// acknowledged per second.
func BenchmarkEndToEnd(b *testing.B) {
	c, prefix := redistest.Shared(b)
	bus := fastBus(b, c, prefix, func(cfg *eventbus.Config) { cfg.BatchSize = 100 })
	ctx := context.Background()
	if err := bus.SetUp(ctx); err != nil {
		b.Fatal(err)
	}
	cons := fastConsumer(b, bus, func(cfg *eventbus.ConsumerConfig) { cfg.Concurrency = 100 })
	var handled atomic.Int64
	mustHandle(b, cons, "noop", "*", func(context.Context, eventbus.Event) error { handled.Add(1); return nil })
	runConsumer(b, cons)
	b.ReportAllocs()
	b.ResetTimer()
	publishParallel(b, ctx, bus, 50)
	for handled.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	reportRate(b, b.N)
	main := testKeys(prefix).Main()
	waitFor(b, 30*time.Second, "every entry acknowledged", func() bool { return pendingCount(b, c, main, eventbus.DefaultGroup) == 0 })
}

// BenchmarkLatency publishes b.N events at a steady 2,000 per second and
// reports the publish-to-handler latency percentiles, measured from each
// event's scheduled send time (so a stalled publisher shows up as latency:
// no coordinated omission). Run it with a fixed count, e.g.
// -bench Latency -benchtime 10000x (5 s). time.Sleep wakes up to about
// half a millisecond late on this kind of machine, and that lateness counts
// as latency here; make bench (bench/) schedules precisely and compares
// with raw go-redis and Watermill.
func BenchmarkLatency(b *testing.B) {
	const rate = 2000
	c, prefix := redistest.Shared(b)
	bus := fastBus(b, c, prefix, nil)
	ctx := context.Background()
	if err := bus.SetUp(ctx); err != nil {
		b.Fatal(err)
	}
	cons := fastConsumer(b, bus, nil)
	lat := make([]time.Duration, b.N)
	var handled atomic.Int64
	mustHandle(b, cons, "timer", "*", func(_ context.Context, ev eventbus.Event) error {
		now := time.Now()
		var d struct{ I, At int64 }
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			return eventbus.Permanent(err)
		}
		lat[d.I] = now.Sub(time.Unix(0, d.At))
		handled.Add(1)
		return nil
	})
	runConsumer(b, cons)
	b.ResetTimer()
	start := time.Now().Add(10 * time.Millisecond)
	for i := range b.N {
		at := start.Add(time.Duration(i) * time.Second / rate)
		time.Sleep(time.Until(at))
		ev := benchEvent()
		ev.Data = json.RawMessage(`{"i":` + strconv.Itoa(i) + `,"at":` + strconv.FormatInt(at.UnixNano(), 10) + `}`)
		if _, err := bus.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(b, 30*time.Second, "every event handled", func() bool { return handled.Load() == int64(b.N) })
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(pct(0.999), "p99.9-µs")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkConsumeBacklog: b.N events are published first; then four
// consumers (batch 100) drain them with a no-op handler. The figure is
// events handled and acknowledged per second.
func BenchmarkConsumeBacklog(b *testing.B) {
	c, prefix := redistest.Shared(b)
	ctx := context.Background()
	pub := fastBus(b, c, prefix, nil)
	if err := pub.SetUp(ctx); err != nil {
		b.Fatal(err)
	}
	batch := make([]eventbus.Event, 1000)
	for i := range batch {
		batch[i] = benchEvent()
	}
	for n := 0; n < b.N; n += len(batch) {
		if _, err := pub.PublishBatch(ctx, batch[:min(len(batch), b.N-n)]); err != nil {
			b.Fatal(err)
		}
	}
	var handled atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := range 4 {
		bus := fastBus(b, c, prefix, func(cfg *eventbus.Config) { cfg.BatchSize = 100; cfg.Consumer = "c" + strconv.Itoa(i) })
		cons := fastConsumer(b, bus, func(cfg *eventbus.ConsumerConfig) { cfg.Concurrency = 100 })
		mustHandle(b, cons, "noop", "*", func(context.Context, eventbus.Event) error { handled.Add(1); return nil })
		runConsumer(b, cons)
	}
	main := testKeys(prefix).Main()
	for handled.Load() < int64(b.N) || pendingCount(b, c, main, eventbus.DefaultGroup) > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	reportRate(b, b.N)
}
