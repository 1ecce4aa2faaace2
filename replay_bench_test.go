package eventbus_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// BenchmarkPublishDuringReplay measures the latency of sequential
// publishes while a replay of 1,000,000 events runs (on its own Redis):
// without a replay, with the replay at full speed, and with it limited to
// 10,000 copies/s. It reports p50 and p99 in microseconds, and whether
// the replay was still running when the measurement ended (1: the
// figures were taken under load all along). Run it with a fixed count,
// e.g. -benchtime=20000x.
func BenchmarkPublishDuringReplay(b *testing.B) {
	if testing.Short() {
		b.Skip("seeds 1,000,000 events")
	}
	srv := redistest.Start(b)
	c := srv.Client(b)
	prefix := "bench"
	const n = 1000000
	base := time.Now().Add(-3 * time.Hour).UnixMilli()
	seedMain(b, c, prefix, base, n, replayEvent, nil)
	fakeConsumer(b, c, prefix, eventbus.DefaultGroup, "h1")
	bus := newBus(b, c, prefix, nil)
	if err := bus.SetUp(context.Background()); err != nil {
		b.Fatal(err)
	}
	runBus(b, bus)
	in := bus.Inspector()
	for _, rate := range []int{-1, 0, 10000} {
		name := "no-replay"
		switch {
		case rate == 0:
			name = "full-speed"
		case rate > 0:
			name = fmt.Sprintf("rate-%d", rate)
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			var job eventbus.ReplayJob
			if rate >= 0 {
				var err error
				job, err = in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{
					From: time.UnixMilli(base), To: time.UnixMilli(base + n - 1), Rate: rate,
				})
				if err != nil {
					b.Fatal(err)
				}
				waitJob(b, in, job.ID, 30*time.Second, "the replay running", func(j eventbus.ReplayJob) bool { return j.Written > 0 })
			}
			lat := make([]time.Duration, 0, b.N)
			ev := eventbus.Event{Type: "order.created", TenantID: "t1", UserID: "u1"}
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				if _, err := bus.Publish(ctx, ev); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(pct(0.50), "p50-µs")
			b.ReportMetric(pct(0.99), "p99-µs")
			if rate >= 0 {
				j, err := in.Replay(ctx, eventbus.AllTenants(), job.ID)
				if err != nil {
					b.Fatal(err)
				}
				active := 0.0
				if j.Status == eventbus.ReplayRunning {
					active = 1
				}
				b.ReportMetric(active, "replay-active")
				if _, err := in.CancelReplay(ctx, eventbus.AllTenants(), testActor, job.ID); err == nil {
					waitJob(b, in, job.ID, 30*time.Second, "the replay stopped", ended)
				}
				c.Del(ctx, testKeys(prefix).Replay())
			}
		})
	}
}
