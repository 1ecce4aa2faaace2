package eventbus_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// metricsModes are the two sides of the metrics cost comparison: no
// Registerer, and a registry. go test -count repeats each sub-benchmark
// back to back, so run the binary several times to interleave the two
// sides under the same load:
//
//	go test -c -o /tmp/eb.test .
//	for i in 1 2 3 4 5 6 7 8; do /tmp/eb.test -test.run '^$' -test.bench Metrics -test.count 1; done > m.txt
//	go run golang.org/x/perf/cmd/benchstat@latest -col /metrics m.txt
var metricsModes = []struct {
	name string
	reg  func() prometheus.Registerer
}{
	{"metrics=off", func() prometheus.Registerer { return nil }},
	{"metrics=on", func() prometheus.Registerer { return prometheus.NewRegistry() }},
}

// BenchmarkPublishMetrics is BenchmarkPublish with metrics off and on.
func BenchmarkPublishMetrics(b *testing.B) {
	for _, g := range []int{1, 50} {
		for _, m := range metricsModes {
			b.Run("goroutines="+strconv.Itoa(g)+"/"+m.name, func(b *testing.B) {
				c, prefix := redistest.Shared(b)
				bus := newBus(b, c, prefix, func(cfg *eventbus.Config) { cfg.Registerer = m.reg() })
				ctx := context.Background()
				b.ReportAllocs()
				if g == 1 {
					for b.Loop() {
						if _, err := bus.Publish(ctx, benchEvent()); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					publishParallel(b, ctx, bus, g)
				}
				reportRate(b, b.N)
			})
		}
	}
}

// BenchmarkEndToEndMetrics is BenchmarkEndToEnd (50 publishers, one
// consumer, a no-op handler) with metrics off and on.
func BenchmarkEndToEndMetrics(b *testing.B) {
	for _, m := range metricsModes {
		b.Run(m.name, func(b *testing.B) {
			c, prefix := redistest.Shared(b)
			bus := fastBus(b, c, prefix, func(cfg *eventbus.Config) { cfg.BatchSize = 100; cfg.Registerer = m.reg() })
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
		})
	}
}
