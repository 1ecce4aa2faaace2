package eventbus_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestStatsAndMetricsWithAnUnreadablePartition reads stats and metrics
// through a client that cannot read partition 2 (an ACL user without its
// keys, as when its Cluster master is away): both still answer, mark the
// partition, leave it out of the totals, and the metrics drop the totals
// rather than report wrong ones.
func TestStatsAndMetricsWithAnUnreadablePartition(t *testing.T) {
	ctx := context.Background()
	admin, prefix := redistest.Shared(t)
	writer := fastBus(t, admin, prefix, func(cfg *eventbus.Config) { cfg.Partitions = 4 })
	if err := writer.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		if _, err := writer.Publish(ctx, tenantEvent("t"+strings.Repeat("x", i%7), i)); err != nil {
			t.Fatal(err)
		}
	}
	k := rdb.NewPartitionedKeys(prefix, false, 4, 0)
	c := fencedClient(t, admin, k, 2, true)
	b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Partitions = 4 })

	st, err := b.Inspector().Stats(ctx, eventbus.AllTenants())
	if err != nil {
		t.Fatalf("stats with one unreadable partition: %v", err)
	}
	if !st.Incomplete || len(st.Partitions) != 5 {
		t.Fatalf("incomplete %v, %d partitions", st.Incomplete, len(st.Partitions))
	}
	var readable int64
	for _, p := range st.Partitions {
		if (p.Error != "") != (p.Index == 2) {
			t.Errorf("partition %d: error %q", p.Index, p.Error)
		}
		if p.Index != 2 {
			readable += p.Length
		}
	}
	if want := admin.XLen(ctx, k.Partition(2).Main()).Val(); readable+want != 40 || st.MainStream.Length != readable {
		t.Errorf("main total %d, readable %d, partition 2 holds %d", st.MainStream.Length, readable, want)
	}
	if st.ConsumerGroup.Lag != nil {
		t.Errorf("lag %d with a partition unread: want unknown", *st.ConsumerGroup.Lag)
	}
	if ts, err := b.Inspector().Stats(ctx, eventbus.TenantScope("t")); err != nil || !ts.Incomplete {
		t.Errorf("tenant stats: incomplete %v, %v", ts.Incomplete, err)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(b.Inspector().Collector(eventbus.CollectorOptions{}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "," + l.GetName() + "=" + l.GetValue()
			}
			got[name] = m.GetGauge().GetValue()
		}
	}
	if got["eventbus_redis_up"] != 1 || got["eventbus_partition_up,partition=2"] != 0 || got["eventbus_partition_up,partition=1"] != 1 {
		t.Errorf("up gauges: %v", got)
	}
	if _, ok := got["eventbus_stream_length,stream=main"]; ok {
		t.Errorf("a main total without partition 2: %v", got)
	}
	if _, ok := got["eventbus_partition_stream_length,partition=1,stream=main"]; !ok {
		t.Errorf("partition 1's gauges missing: %v", got)
	}
}
