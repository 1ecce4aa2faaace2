package eventbus_test

import (
	"context"
	"testing"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// BenchmarkPublishStats is the publish path with the stats counting on
// and off, with one goroutine and with 50, in one run (compare with
// benchstat over -count 6). The bus runs, so that the flush loop adds its
// counts to Redis every second as in production.
func BenchmarkPublishStats(b *testing.B) {
	for _, mode := range []string{"on", "off"} {
		b.Run(mode, func(b *testing.B) {
			setup := func(b *testing.B) *eventbus.Bus {
				c, prefix := redistest.Shared(b)
				bus := newBus(b, c, prefix, nil)
				if mode == "off" {
					eventbus.DisableStats(bus)
				}
				if err := bus.SetUp(context.Background()); err != nil {
					b.Fatal(err)
				}
				runBus(b, bus)
				return bus
			}
			b.Run("1g", func(b *testing.B) {
				bus := setup(b)
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if _, err := bus.Publish(ctx, benchEvent()); err != nil {
						b.Fatal(err)
					}
				}
				reportRate(b, b.N)
			})
			b.Run("50g", func(b *testing.B) {
				bus := setup(b)
				b.ReportAllocs()
				publishParallel(b, context.Background(), bus, 50)
				reportRate(b, b.N)
			})
		})
	}
}
