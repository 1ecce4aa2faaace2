package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
)

// TestPartitionsHealthStatsMetrics checks the read side on 8 partitions
// (single node and 3-master cluster): health, stats, metrics and the
// consumers view report totals over every partition plus a breakdown per
// partition; a partition whose main stream is gone is a warning naming
// it and makes the report unhealthy.
func TestPartitionsHealthStatsMetrics(t *testing.T) {
	for _, l := range partitionLayouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			b, c, k := partitionedBus(t, l, nil)
			in := b.Inspector()
			group := b.Config().Group
			parts := k.Partitions() // 8 and the shared one

			// 40 events of 20 tenants, nothing consumed: lag 40.
			const events = 40
			perPart := make([]int64, parts)
			for i := range events {
				p, err := b.Publish(ctx, tenantEvent(fmt.Sprintf("t%02d", i%20), i))
				if err != nil {
					t.Fatal(err)
				}
				perPart[partitionOfEvent(t, c, k, p.ID)]++
			}
			used := 0
			for _, n := range perPart {
				if n > 0 {
					used++
				}
			}
			if used < 3 {
				t.Fatalf("events in %d partitions only: %v", used, perPart)
			}
			// Two entries of one partition delivered and left pending.
			busy := 0
			for p, n := range perPart {
				if n >= 2 {
					busy = p
					break
				}
			}
			if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "manual",
				Streams: []string{k.Partition(busy).Main(), ">"}, Count: 2, Block: -1}).Err(); err != nil {
				t.Fatal(err)
			}

			h := b.Health(ctx)
			if !h.Healthy || len(h.Warnings) > 0 {
				t.Fatalf("healthy %v, warnings %q", h.Healthy, h.Warnings)
			}
			m := h.Streams.Main
			if m.Name != k.Main() || !m.Exists || m.Length != events {
				t.Errorf("main %s exists %v length %d, want %s, true, %d", m.Name, m.Exists, m.Length, k.Main(), events)
			}
			if len(m.Groups) != 1 || m.Groups[0].Name != group || m.Groups[0].Pending != 2 ||
				m.Groups[0].Lag == nil || *m.Groups[0].Lag != events-2 || m.Groups[0].OldestPendingID == nil {
				t.Errorf("main groups %+v, want %s with pending 2, lag %d", m.Groups, group, events-2)
			}
			if len(h.Partitions) != parts {
				t.Fatalf("%d partitions in the report, want %d", len(h.Partitions), parts)
			}
			for p, ph := range h.Partitions {
				wantPending, wantLag := int64(0), perPart[p]
				if p == busy {
					wantPending, wantLag = 2, perPart[p]-2
				}
				role := eventbus.PartitionWrite
				if p == k.SharedPartition() {
					role = eventbus.PartitionShared
				}
				if ph.Index != p || ph.Role != role || ph.Stream != k.Partition(p).Main() || !ph.Exists ||
					ph.Length != perPart[p] || ph.Pending != wantPending || ph.Lag == nil || *ph.Lag != wantLag || ph.DLQ != 0 {
					t.Errorf("partition %d: %+v (lag %v), want role %s, length %d, pending %d, lag %d", p, ph, deref(ph.Lag), role, perPart[p], wantPending, wantLag)
				}
				if l.cluster != (ph.Node != "") {
					t.Errorf("partition %d: node %q on cluster=%v", p, ph.Node, l.cluster)
				}
			}

			st, err := in.Stats(ctx, eventbus.AllTenants())
			if err != nil {
				t.Fatal(err)
			}
			if st.MainStream == nil || st.MainStream.Length != events || st.ConsumerGroup.Pending != 2 ||
				st.ConsumerGroup.Lag == nil || *st.ConsumerGroup.Lag != events-2 || len(st.Partitions) != parts {
				t.Fatalf("stats main %+v group %+v partitions %d", st.MainStream, st.ConsumerGroup, len(st.Partitions))
			}
			for p, ps := range st.Partitions {
				if ps.Index != p || ps.Length != perPart[p] || ps.Stream != k.Partition(p).Main() {
					t.Errorf("stats partition %d: %+v, want length %d", p, ps, perPart[p])
				}
			}
			tenantSt, err := in.Stats(ctx, eventbus.TenantScope("t01"))
			if err != nil || tenantSt.Partitions != nil || tenantSt.MainStream != nil {
				t.Errorf("tenant stats: partitions %v main %v err %v", tenantSt.Partitions, tenantSt.MainStream, err)
			}

			reg := prometheus.NewRegistry()
			reg.MustRegister(in.Collector(eventbus.CollectorOptions{TTL: time.Nanosecond}))
			fams := scrape(t, reg)
			if v, ok := metricValue(fams, "eventbus_stream_length", "stream", "main"); !ok || v != events {
				t.Errorf("eventbus_stream_length{main} = %v (%v), want %d", v, ok, events)
			}
			if v, ok := metricValue(fams, "eventbus_group_lag", "group", group); !ok || v != events-2 {
				t.Errorf("eventbus_group_lag = %v (%v), want %d", v, ok, events-2)
			}
			for p := range parts {
				idx := strconv.Itoa(p)
				if v, ok := metricValue(fams, "eventbus_partition_stream_length", "partition", idx, "stream", "main"); !ok || v != float64(perPart[p]) {
					t.Errorf("eventbus_partition_stream_length{%d,main} = %v (%v), want %d", p, v, ok, perPart[p])
				}
			}
			if v, ok := metricValue(fams, "eventbus_partition_group_pending", "group", group, "partition", strconv.Itoa(busy)); !ok || v != 2 {
				t.Errorf("eventbus_partition_group_pending{%d} = %v (%v), want 2", busy, v, ok)
			}

			// Partition 3's main stream deleted: a warning naming it,
			// unhealthy, the partition marked missing.
			gone := k.Partition(3).Main()
			if err := c.Del(ctx, gone).Err(); err != nil {
				t.Fatal(err)
			}
			h = b.Health(ctx)
			named := false
			for _, w := range h.Warnings {
				named = named || strings.HasPrefix(w, "partition 3: ") && strings.Contains(w, gone)
			}
			if h.Healthy || !named || h.Partitions[3].Exists || h.Streams.Main.Exists || h.Partitions[2].Exists != true {
				t.Fatalf("after deleting %s: healthy %v, warnings %q, partition 3 exists %v, main exists %v",
					gone, h.Healthy, h.Warnings, h.Partitions[3].Exists, h.Streams.Main.Exists)
			}
			if h.Streams.Main.Length != events-perPart[3] || h.Streams.Main.Groups[0].Lag != nil {
				t.Errorf("main after the deletion: length %d lag %v, want %d and unknown", h.Streams.Main.Length,
					deref(h.Streams.Main.Groups[0].Lag), events-perPart[3])
			}
			if err := b.SetUp(ctx); err != nil {
				t.Fatal(err)
			}
			if h = b.Health(ctx); !h.Healthy {
				t.Fatalf("after set-up: warnings %q", h.Warnings)
			}
		})
	}
}

// TestPartitionsDLQAndConsumersViews dead-letters events of two tenants
// in different partitions and holds others in flight: the health's and
// the stats' DLQ sum every partition's DLQ (a tenant's too, through
// every partition's index), and the consumers view sums each consumer's
// pending entries over the partitions.
func TestPartitionsDLQAndConsumersViews(t *testing.T) {
	for _, l := range partitionLayouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			b, c, k := partitionedBus(t, l, nil)
			in := b.Inspector()

			// Tenants of distinct partitions: two poisoned, three blocked.
			var tenants []string
			seen := map[int]bool{}
			for i := 0; len(tenants) < 5; i++ {
				tn := fmt.Sprintf("x%03d", i)
				p, err := b.Publish(ctx, eventbus.Event{Type: "probe.only", TenantID: tn, UserID: "u"})
				if err != nil {
					t.Fatal(err)
				}
				if part := partitionOfEvent(t, c, k, p.ID); !seen[part] {
					seen[part] = true
					tenants = append(tenants, tn)
				}
			}
			release := make(chan struct{})
			var once sync.Once
			t.Cleanup(func() { once.Do(func() { close(release) }) })
			cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) { cfg.Name, cfg.ClaimIdle = "c1", 2*time.Minute })
			mustHandle(t, cons, "poison", "approval.poison", func(context.Context, eventbus.Event) error {
				return eventbus.Permanent(errors.New("cannot handle"))
			})
			mustHandle(t, cons, "slow", "approval.block", func(ctx context.Context, _ eventbus.Event) error {
				select {
				case <-release:
				case <-ctx.Done():
				}
				return nil
			}, eventbus.Timeout(time.Minute))
			runConsumer(t, cons)

			dlqPart := map[int]int64{}
			for _, tn := range tenants[:2] {
				p, err := b.Publish(ctx, eventbus.Event{Type: "approval.poison", TenantID: tn, UserID: "u"})
				if err != nil {
					t.Fatal(err)
				}
				dlqPart[partitionOfEvent(t, c, k, p.ID)]++
			}
			for _, tn := range tenants[2:] {
				if _, err := b.Publish(ctx, eventbus.Event{Type: "approval.block", TenantID: tn, UserID: "u"}); err != nil {
					t.Fatal(err)
				}
			}

			waitFor(t, 30*time.Second, "two dead letters in the health report", func() bool {
				return b.Health(ctx).Streams.DLQ.Length == 2
			})
			h := b.Health(ctx)
			if h.DLQBudget.Length != 2 {
				t.Errorf("dlq budget length %d, want 2", h.DLQBudget.Length)
			}
			for p, ph := range h.Partitions {
				if ph.DLQ != dlqPart[p] {
					t.Errorf("partition %d: dlq %d, want %d", p, ph.DLQ, dlqPart[p])
				}
			}
			st, err := in.Stats(ctx, eventbus.AllTenants())
			if err != nil {
				t.Fatal(err)
			}
			if st.DLQ.Length != 2 {
				t.Errorf("stats dlq %d, want 2", st.DLQ.Length)
			}
			var sum int64
			for _, ps := range st.Partitions {
				sum += ps.DLQ
			}
			if sum != 2 {
				t.Errorf("stats partitions' dlq sum %d, want 2", sum)
			}
			for _, tn := range tenants[:2] {
				ts, err := in.Stats(ctx, eventbus.TenantScope(tn))
				if err != nil || ts.DLQ.Length != 1 {
					t.Errorf("tenant %s: dlq %d (%v), want 1", tn, ts.DLQ.Length, err)
				}
			}

			waitFor(t, 30*time.Second, "three entries pending at c1, over three partitions", func() bool {
				list, err := in.Consumers(ctx)
				return err == nil && len(list) == 1 && list[0].Name == "c1" && list[0].Pending == 3
			})
			if st, err := in.Stats(ctx, eventbus.AllTenants()); err != nil || st.ConsumerGroup.Pending != 3 {
				t.Errorf("stats pending %v (%v), want 3", st.ConsumerGroup, err)
			}
			once.Do(func() { close(release) })
			waitFor(t, 30*time.Second, "nothing pending", func() bool {
				list, err := in.Consumers(ctx)
				return err == nil && len(list) == 1 && list[0].Pending == 0
			})
		})
	}
}
