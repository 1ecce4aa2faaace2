package eventbus_test

import (
	"context"
	"encoding/json"
	"runtime"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// benchEvent is about 305 bytes on the wire, like the platform's events.
func benchEvent() eventbus.Event {
	return eventbus.Event{
		Type: "approval.item.approved", TenantID: "tenant-0001", UserID: "user-0001",
		Data: json.RawMessage(`{"itemId":"item-000001","approvalId":"appr-000001","amount":1250,"currency":"EUR","note":"ok"}`),
	}
}

func reportRate(b *testing.B, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkXAddLoop is the baseline: a plain loop of one XADD per call.
func BenchmarkXAddLoop(b *testing.B) {
	c, prefix := redistest.Shared(b)
	ctx := context.Background()
	payload, _ := json.Marshal(benchEvent())
	b.ReportAllocs()
	for b.Loop() {
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: prefix + ":raw", Values: []any{rdb.FieldEvent, payload}}).Err(); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N)
}

func BenchmarkPublish(b *testing.B) {
	b.Run("goroutines=1", func(b *testing.B) {
		c, prefix := redistest.Shared(b)
		bus := newBus(b, c, prefix, nil)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := bus.Publish(ctx, benchEvent()); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N)
	})
	b.Run("goroutines=50", func(b *testing.B) {
		c, prefix := redistest.Shared(b)
		bus := newBus(b, c, prefix, nil)
		ctx := context.Background()
		b.ReportAllocs()
		publishParallel(b, ctx, bus, 50)
		reportRate(b, b.N)
	})
}

func BenchmarkPublishBatch100(b *testing.B) {
	c, prefix := redistest.Shared(b)
	bus := newBus(b, c, prefix, nil)
	ctx := context.Background()
	batch := make([]eventbus.Event, 100)
	for i := range batch {
		batch[i] = benchEvent()
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bus.PublishBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N*len(batch))
}

// publishParallel publishes b.N events from at least goroutines
// goroutines, one event per call.
func publishParallel(b *testing.B, ctx context.Context, bus *eventbus.Bus, goroutines int) {
	b.SetParallelism(parallelismFor(goroutines))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := bus.Publish(ctx, benchEvent()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// parallelismFor returns the RunParallel parallelism that gives at least
// n goroutines (RunParallel starts parallelism × GOMAXPROCS).
func parallelismFor(n int) int {
	p := runtime.GOMAXPROCS(0)
	return (n + p - 1) / p
}
