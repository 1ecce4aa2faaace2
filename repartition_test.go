package eventbus_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
)

// TestRepartitionWhilePublishing follows the README's procedure for
// changing the number of partitions of a running system while events are
// published without pause: 1 -> 4 (a rolling restart: the new processes
// read the un-partitioned stream too), then 4 -> 8 with
// PreviousPartitions 4 until the old layout is drained. Every
// acknowledged event is handled, once.
func TestRepartitionWhilePublishing(t *testing.T) {
	for _, l := range partitionLayouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			c, prefix := layoutClient(t, l)
			newBusWith := func(n, prev int) *eventbus.Bus {
				b := fastBus(t, c, prefix, func(cfg *eventbus.Config) {
					cfg.Cluster, cfg.Partitions, cfg.PreviousPartitions = l.cluster, n, prev
				})
				if err := b.SetUp(ctx); err != nil {
					t.Fatal(err)
				}
				return b
			}
			runs := newCounter()
			// startConsumer runs a consumer of b until stop is called.
			startConsumer := func(b *eventbus.Bus, name string) (stop func()) {
				cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) { cfg.Name = name })
				mustHandle(t, cons, "h", "*", func(_ context.Context, ev eventbus.Event) error { runs.add(ev.ID); return nil })
				cctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); _ = cons.Run(cctx) }()
				var once sync.Once
				stop = func() { once.Do(func() { cancel(); <-done }) }
				t.Cleanup(stop)
				return stop
			}

			one := newBusWith(1, 0)
			stopOld := startConsumer(one, "old")

			// The publisher publishes without pause through whichever bus
			// is current (the process being restarted, in real life).
			var current atomic.Pointer[eventbus.Bus]
			current.Store(one)
			var mu sync.Mutex
			var acked []string
			stopPub := make(chan struct{})
			pubDone := make(chan struct{})
			published := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
			go func() {
				defer close(pubDone)
				for i := 0; ; i++ {
					select {
					case <-stopPub:
						return
					default:
					}
					p, err := current.Load().Publish(ctx, tenantEvent(fmt.Sprintf("t%02d", i%16), i))
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					acked = append(acked, p.ID)
					mu.Unlock()
				}
			}()
			waitAtLeast := func(n int) {
				target := published() + n
				waitFor(t, 20*time.Second, "more events published", func() bool { return published() >= target })
			}
			waitAtLeast(200)

			// 1 -> 4: new processes (reading old and new layouts) start,
			// publishing moves to them, the old process stops.
			four := newBusWith(4, 0)
			stopFour := startConsumer(four, "four")
			waitAtLeast(100)
			current.Store(four)
			waitAtLeast(200)
			stopOld()
			waitAtLeast(200)

			// 4 -> 8 with the previous layout read until drained.
			eight := newBusWith(8, 4)
			startConsumer(eight, "eight")
			waitAtLeast(100)
			current.Store(eight)
			waitAtLeast(200)
			stopFour()
			waitAtLeast(200)
			close(stopPub)
			<-pubDone

			mu.Lock()
			all := append([]string(nil), acked...)
			mu.Unlock()
			waitFor(t, 30*time.Second, "every acknowledged event handled", func() bool { return runs.distinct() >= len(all) })
			twice := 0
			for _, id := range all {
				switch n := runs.get(id); {
				case n == 0:
					t.Errorf("event %s lost", id)
				case n > 1:
					twice++
				}
			}
			if twice > 0 {
				t.Errorf("%d events handled more than once", twice)
			}
			// The old layouts are drained: nothing pending, nothing unread.
			k := rdb.NewPartitionedKeys(prefix, l.cluster, 8, 4)
			for p := range k.Partitions() {
				if n := pendingCount(t, c, k.Partition(p).Main(), eventbus.DefaultGroup); n != 0 {
					t.Errorf("partition %d (%s): %d pending", p, k.Partition(p).Main(), n)
				}
			}
			if st, err := eight.Inspector().Status(ctx, eventbus.TenantScope("t01"), all[1]); err != nil || st.State != eventbus.StateCompleted {
				t.Errorf("status of an event of the first layout: %+v %v", st, err)
			}
			t.Logf("%d events published across 1 -> 4 -> 8 partitions, every one handled once", len(all))
		})
	}
}
