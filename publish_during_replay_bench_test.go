package eventbus_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// replayBenchEvents is the size of the replayed window.
const replayBenchEvents = 1_000_000

// BenchmarkPublishDuringReplay measures what a replay of 1,000,000
// events costs publishers (issue 11: "a replay must not starve
// publishing"): the latency of publishes paced at 2,000/s with no replay,
// during a replay at full speed and during one limited to 20,000
// events/s, on a redis-server of its own. A consumer of the group runs a
// no-op handler on the copies, as in production. It reports p50/p99 of
// each phase and the replay's speed (copies written per second). Run it
// once: go test -run '^$' -bench PublishDuringReplay -benchtime 1x .
func BenchmarkPublishDuringReplay(b *testing.B) {
	ctx := context.Background()
	rs := redistest.Start(b)
	c := redis.NewClient(&redis.Options{Addr: rs.Addr(), ContextTimeoutEnabled: true, ReadTimeout: 3 * time.Second})
	b.Cleanup(func() { c.Close() })
	const prefix = "replaybench"
	bus := newBus(b, c, prefix, nil)
	if err := bus.SetUp(ctx); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	batch := make([]eventbus.Event, 1000)
	for i := 0; i < replayBenchEvents; i += len(batch) {
		for j := range batch {
			ev := benchEvent()
			ev.Type = []string{"approval.item.approved", "crm.deal.won", "billing.invoice.sent"}[(i+j)%3]
			ev.TenantID = fmt.Sprintf("tenant-%03d", (i+j)%100)
			batch[j] = ev
		}
		if _, err := bus.PublishBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	windowTo := time.Now()
	b.Logf("seeded %d events in %v", replayBenchEvents, time.Since(start).Round(time.Millisecond))
	main, _, _ := bus.Streams()
	// The consumer handles copies only: skip the seeded backlog.
	if err := c.XGroupSetID(ctx, main, eventbus.DefaultGroup, "$").Err(); err != nil {
		b.Fatal(err)
	}
	runBus(b, bus)
	cons, err := bus.NewConsumer(eventbus.ConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	if err := cons.Handle("noop", "*", eventbus.HandlerFunc(func(context.Context, eventbus.Event) error { return nil })); err != nil {
		b.Fatal(err)
	}
	runConsumer(b, cons)
	in := bus.Inspector()
	waitFor(b, 30*time.Second, "the consumer's heartbeat", func() bool {
		cs, err := in.Consumers(ctx)
		return err == nil && len(cs) > 0
	})

	const rate, phase = 2000, 5 * time.Second
	pub := newBus(b, c, prefix, nil) // publishers of their own, as another service
	measure := func(name string) {
		lat := pacedPublish(b, pub, rate, phase)
		b.ReportMetric(float64(percentile(lat, 0.50).Microseconds()), name+"-p50-µs")
		b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), name+"-p99-µs")
		b.Logf("%s: publish p50 %v p99 %v p99.9 %v (%d publishes at %d/s)", name,
			percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 0.999), len(lat), rate)
	}
	replay := func(name string, limit int) {
		job, err := in.StartReplay(ctx, eventbus.AllTenants(), eventbus.Actor{Subject: "bench", TenantID: "*", Role: "owner"},
			eventbus.ReplayRequest{From: start.Add(-time.Second), To: windowTo, Handlers: []string{"noop"}, Rate: limit})
		if err != nil {
			b.Fatal(err)
		}
		waitFor(b, 30*time.Second, "the job to start", func() bool {
			j, err := in.Replay(ctx, eventbus.AllTenants(), job.ID)
			return err == nil && j.Status != eventbus.ReplayPending
		})
		measure(name)
		var j eventbus.ReplayJob
		waitFor(b, 20*time.Minute, "the job to end", func() bool {
			j, err = in.Replay(ctx, eventbus.AllTenants(), job.ID)
			return err == nil && j.Status != eventbus.ReplayPending && j.Status != eventbus.ReplayRunning
		})
		if j.Status != eventbus.ReplayCompleted || j.StartedAt == nil || j.FinishedAt == nil {
			b.Fatalf("job %s ended %s: %+v", j.ID, j.Status, j)
		}
		speed := float64(j.Written) / j.FinishedAt.Sub(*j.StartedAt).Seconds()
		b.ReportMetric(speed, name+"-copies/s")
		b.Logf("%s: %d copies in %v = %.0f copies/s (estimated %d)", name, j.Written,
			j.FinishedAt.Sub(*j.StartedAt).Round(time.Millisecond), speed, j.EstimatedEvents)
	}
	for b.Loop() {
		measure("idle")
		replay("full", 0)
		replay("limited", 20000)
	}
}

// pacedPublish publishes at perSecond for dur from 8 goroutines and
// returns each publish's latency from its call (not from its scheduled
// time: the sleep's own overshoot, up to a millisecond, would swamp the
// figures; at 2,000/s over 8 goroutines a slow call delays only its own
// goroutine's next one).
func pacedPublish(b *testing.B, bus *eventbus.Bus, perSecond int, dur time.Duration) []time.Duration {
	const workers = 8
	total := int(float64(perSecond) * dur.Seconds())
	interval := time.Second / time.Duration(perSecond)
	begin := time.Now().Add(10 * time.Millisecond)
	out := make([][]time.Duration, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < total; i += workers {
				time.Sleep(time.Until(begin.Add(time.Duration(i) * interval)))
				start := time.Now()
				if _, err := bus.Publish(context.Background(), benchEvent()); err != nil {
					b.Error(err)
					return
				}
				out[w] = append(out[w], time.Since(start))
			}
		})
	}
	wg.Wait()
	return slices.Concat(out...)
}

// percentile returns the q-quantile of lat (sorted in place).
func percentile(lat []time.Duration, q float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return lat[min(len(lat)-1, int(q*float64(len(lat))))]
}
