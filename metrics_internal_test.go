package eventbus

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkMetricsPublishHooks is the metrics work added to one published
// event (its outcome counted, its call's latency observed), without
// Redis: the part of the publish cost that metrics add, free of the noise
// of a shared Redis.
func BenchmarkMetricsPublishHooks(b *testing.B) {
	m, err := newMetrics(prometheus.NewRegistry(), DefaultMetricsMaxTypes)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.publishResult("approval.item.approved", false, nil)
			m.publishCalled("approval.item.approved", start, nil)
		}
	})
}

// BenchmarkMetricsHandlerHooks is the metrics work added to one handler
// run (delivery delay, outcome and duration).
func BenchmarkMetricsHandlerHooks(b *testing.B) {
	m, err := newMetrics(prometheus.NewRegistry(), DefaultMetricsMaxTypes)
	if err != nil {
		b.Fatal(err)
	}
	h := m.handler("noop")
	ts := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			now := time.Now()
			m.delivered(ts, now)
			h.ran(runResult{}.outcome(), time.Since(now))
		}
	})
}
