package eventbus

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

func TestStatsAlarms(t *testing.T) {
	lag := func(n int64) *int64 { return &n }
	type alarm struct {
		name, level string
		threshold   int64
	}
	for _, tt := range []struct {
		dlq      int64
		lag      *int64
		failures int64
		want     []alarm
	}{
		{0, nil, 0, nil},
		{99, lag(999), 9, nil},
		{100, lag(1000), 10, []alarm{{AlarmDLQ, AlarmWarning, 100}, {AlarmLag, AlarmWarning, 1000}, {AlarmFailures, AlarmWarning, 10}}},
		{499, lag(4999), 49, []alarm{{AlarmDLQ, AlarmWarning, 100}, {AlarmLag, AlarmWarning, 1000}, {AlarmFailures, AlarmWarning, 10}}},
		{500, lag(5000), 50, []alarm{{AlarmDLQ, AlarmCritical, 500}, {AlarmLag, AlarmCritical, 5000}, {AlarmFailures, AlarmCritical, 50}}},
		{10000, nil, 0, []alarm{{AlarmDLQ, AlarmCritical, 500}}}, // unknown lag: no lag alarm
		{0, lag(1_000_000), 0, []alarm{{AlarmLag, AlarmCritical, 5000}}},
		{0, lag(0), 11, []alarm{{AlarmFailures, AlarmWarning, 10}}},
	} {
		got := statsAlarms(tt.dlq, tt.lag, tt.failures)
		if got == nil {
			t.Fatalf("statsAlarms(%d, %v, %d) = nil, want a slice", tt.dlq, tt.lag, tt.failures)
		}
		if len(got) != len(tt.want) {
			t.Errorf("statsAlarms(%d, %v, %d) = %+v, want %+v", tt.dlq, tt.lag, tt.failures, got, tt.want)
			continue
		}
		for i, w := range tt.want {
			g := got[i]
			if g.Name != w.name || g.Level != w.level || g.Threshold != w.threshold || g.Message == "" {
				t.Errorf("statsAlarms(%d, %v, %d)[%d] = %+v, want %+v", tt.dlq, tt.lag, tt.failures, i, g, w)
			}
		}
	}
}

// TestStatsBucketCaps: flooding one minute with distinct types and
// tenants keeps the recorder's maps bounded; every event still counts in
// the total, and the written fields stay within the caps.
func TestStatsBucketCaps(t *testing.T) {
	bk := newStatsBucket(1)
	const n = 3 * statsMaxPairs
	for i := range n {
		bk.publish(fmt.Sprintf("tenant-%d", i), fmt.Sprintf("flood.type%d", i))
		bk.fail(fmt.Sprintf("tenant-%d", i), fmt.Sprintf("handler-%d", i))
	}
	if len(bk.published) != statsMaxPairs || len(bk.byTenant) != statsMaxPairs || bk.lost != n-2*statsMaxPairs {
		t.Errorf("pairs %d, tenants %d, lost %d", len(bk.published), len(bk.byTenant), bk.lost)
	}
	if len(bk.failed) != statsMaxFailures || bk.lostFailed != n-statsMaxFailures {
		t.Errorf("failed pairs %d, lost %d", len(bk.failed), bk.lostFailed)
	}
	add := bk.add()
	if add.All[rdb.StatsPublished] != n || add.All[rdb.StatsFailed] != n {
		t.Errorf("totals %d published, %d failed; want %d", add.All[rdb.StatsPublished], add.All[rdb.StatsFailed], n)
	}
	types, handlers, sum := 0, 0, int64(0)
	for f, v := range add.All {
		if _, ok := rdb.StatsFieldType(f); ok || f == rdb.StatsOtherTypes {
			types++
			sum += v
		}
		if len(f) > len(rdb.StatsHandlerPrefix) && f[:len(rdb.StatsHandlerPrefix)] == rdb.StatsHandlerPrefix {
			handlers++
		}
	}
	if types != statsMaxTypes+1 || handlers != statsMaxHandlers || sum != n {
		t.Errorf("%d type fields (sum %d), %d handler fields; want %d, %d, %d", types, sum, handlers, statsMaxTypes+1, n, statsMaxHandlers)
	}
	if len(add.Tenants) != 2*statsMaxPairs {
		t.Errorf("%d tenants written, want %d", len(add.Tenants), 2*statsMaxPairs)
	}
}

// TestStatsHeldBucketsBounded: with no flush, the recorder keeps at most
// statsMaxHeld minutes besides the current one.
func TestStatsHeldBucketsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := &statsRecorder{log: slog.New(slog.DiscardHandler), now: func() time.Time { return now }}
	for range 3 * statsMaxHeld {
		s.published(1, func(int) (string, string, bool) { return "t", "a.b", true })
		s.failed("t", "h")
		now = now.Add(time.Minute)
	}
	if len(s.held) != statsMaxHeld || s.cur == nil {
		t.Errorf("held %d buckets, want %d", len(s.held), statsMaxHeld)
	}
}

// TestStatsFailedFlushKeepsCounts: a flush that fails keeps its counts;
// the next one that succeeds writes them, once.
func TestStatsFailedFlushKeepsCounts(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	keys := rdb.NewKeys(prefix, false)
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { dead.Close() })

	s := newStatsRecorder(rdb.New(dead, keys, rdb.Options{}), slog.New(slog.DiscardHandler))
	s.published(3, func(i int) (string, string, bool) { return "t1", "a.b", i != 1 })
	s.failed("t1", "h")
	if err := s.flush(ctx); err == nil {
		t.Fatal("flush to a dead redis succeeded")
	}
	s.published(1, func(int) (string, string, bool) { return "t1", "a.b", true })
	s.rdb = rdb.New(c, keys, rdb.Options{})
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.flush(ctx); err != nil {
		t.Fatal(err)
	}
	read, err := s.rdb.ReadStats(ctx, rdb.StatsQuery{Minute: time.Now().Unix() / 60, Tenant: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if read.LastHour[rdb.StatsPublished] != 3 || read.LastHour[rdb.StatsTypeField("a.b")] != 3 || read.LastHour[rdb.StatsFailed] != 1 {
		t.Errorf("counts after a failed then a good flush: %v", read.LastHour)
	}
}

// BenchmarkStatsRecorderPublished is the counting that the publish path
// adds per coalesced batch (a lone publish, and a batch of 64 over 10
// tenants and 5 types), with no Redis: its cost per event against a
// publish's microseconds is the stats' share of the publish path.
func BenchmarkStatsRecorderPublished(b *testing.B) {
	tenants := make([]string, 10)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("tenant-%04d", i)
	}
	types := []string{"approval.item.approved", "approval.item.rejected", "orders.order.created", "orders.order.paid", "users.user.signed_up"}
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := &statsRecorder{log: slog.New(slog.DiscardHandler), now: time.Now}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				s.published(batch, func(i int) (string, string, bool) {
					return tenants[(n+i)%len(tenants)], types[(n+i)%len(types)], true
				})
				n += batch
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
		})
	}
	b.Run("parallel", func(b *testing.B) {
		s := &statsRecorder{log: slog.New(slog.DiscardHandler), now: time.Now}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.published(1, func(int) (string, string, bool) { return tenants[0], types[0], true })
			}
		})
	})
}
