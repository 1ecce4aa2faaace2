package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
)

// envelopeJSON is a valid envelope of tenant and type with event id id.
func envelopeJSON(id, typ, tenant string) string {
	return fmt.Sprintf(`{"id":%q,"type":%q,"tenantId":%q,"userId":"u1","timestamp":"2026-01-01T00:00:00Z","data":{}}`, id, typ, tenant)
}

// TestBrowsePartitions: on 8 partitions (plus the shared one), on a
// single node and on a 3-master Redis Cluster, Events merges every
// partition's main stream oldest first and its cursor pages every entry
// exactly once, with the same stream ids in every partition, across
// DLQReadMax-bounded pages, with tenant scopes and type filters.
func TestBrowsePartitions(t *testing.T) {
	for _, l := range partitionLayouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			b, c, k := partitionedBus(t, l, nil)
			in := b.Inspector()
			base := time.Now().Add(-time.Hour).UnixMilli()
			const perPartition = 120 // 1,080 entries: more than BrowseReadMax
			type entry struct{ cursor, tenant, typ string }
			var want []entry // in merge order: stream id, then partition name
			for p := range k.Partitions() {
				pipe := c.Pipeline()
				for i := range perPartition {
					tenant := []string{"t-a", "t-b", "t-c"}[(i+p)%3]
					typ := []string{"order.created", "user.created"}[i%2]
					id := fmt.Sprintf("%d-0", base+int64(i))
					pipe.XAdd(ctx, &redis.XAddArgs{Stream: k.MainPartition(p), ID: id, Values: []any{rdb.FieldEvent, envelopeJSON(fmt.Sprintf("e-%d-%d", p, i), typ, tenant)}})
				}
				if _, err := pipe.Exec(ctx); err != nil {
					t.Fatal(err)
				}
			}
			names := make([]string, k.Partitions())
			for p := range names {
				names[p] = k.PartitionName(p)
			}
			for i := range perPartition {
				ps := make([]int, k.Partitions())
				for p := range ps {
					ps[p] = p
				}
				// partition names ascending
				for x := range ps {
					for y := x + 1; y < len(ps); y++ {
						if names[ps[y]] < names[ps[x]] {
							ps[x], ps[y] = ps[y], ps[x]
						}
					}
				}
				for _, p := range ps {
					want = append(want, entry{
						cursor: rdb.FormatRef(names[p], fmt.Sprintf("%d-0", base+int64(i))),
						tenant: []string{"t-a", "t-b", "t-c"}[(i+p)%3],
						typ:    []string{"order.created", "user.created"}[i%2],
					})
				}
			}
			for _, tc := range []struct {
				name  string
				scope eventbus.Scope
				types []string
				limit int
			}{
				{"all", eventbus.AllTenants(), nil, 7},
				{"all max limit", eventbus.AllTenants(), nil, eventbus.MaxBrowseLimit},
				{"tenant", eventbus.TenantScope("t-b"), nil, 13},
				{"type", eventbus.AllTenants(), []string{"user.*"}, 50},
				{"nothing matches", eventbus.AllTenants(), []string{"none.*"}, 10},
			} {
				var exp []string
				for _, e := range want {
					if tc.scope.Includes(e.tenant) && (tc.types == nil || tc.types[0] == "user.*" && e.typ == "user.created") {
						exp = append(exp, e.cursor)
					}
				}
				var got []string
				cursor, pages := "", 0
				for {
					p, err := in.Events(ctx, tc.scope, eventbus.EventFilter{Types: tc.types, Cursor: cursor, Limit: tc.limit})
					if err != nil {
						t.Fatalf("%s: %v", tc.name, err)
					}
					for _, it := range p.Items {
						got = append(got, it.Cursor())
						if it.Event == nil || !tc.scope.Includes(it.Event.TenantID) {
							t.Fatalf("%s: item %+v", tc.name, it)
						}
					}
					pages++
					if p.NextCursor == "" {
						break
					}
					if pages > 10000 {
						t.Fatalf("%s: listing never ended", tc.name)
					}
					cursor = p.NextCursor
				}
				if fmt.Sprint(got) != fmt.Sprint(exp) {
					t.Fatalf("%s: %d items, want %d in merge order", tc.name, len(got), len(exp))
				}
				if tc.name == "nothing matches" && pages < 2 {
					t.Errorf("one page over %d entries: BrowseReadMax not applied", len(want))
				}
			}
			// A window (from/to) across partitions.
			from, to := time.UnixMilli(base+10), time.UnixMilli(base+19)
			p, err := in.Events(ctx, eventbus.AllTenants(), eventbus.EventFilter{From: from, To: to, Limit: 100})
			if err != nil || len(p.Items) != 10*k.Partitions() || p.NextCursor != "" {
				t.Fatalf("window: %d items, cursor %q, %v", len(p.Items), p.NextCursor, err)
			}
			var bad *eventbus.FilterError
			if _, err := in.Events(ctx, eventbus.AllTenants(), eventbus.EventFilter{Cursor: "p-3-1-1"}); !errors.As(err, &bad) || bad.Field != "cursor" {
				t.Errorf("bad cursor: %v", err)
			}
		})
	}
}

// TestTailPartitions: on 8 partitions (plus the shared one), on a single
// node and on a 3-master Redis Cluster, Tail delivers the new entries of
// every partition; stopped half-way and resumed from NextTailPosition, it
// delivers every entry exactly once.
func TestTailPartitions(t *testing.T) {
	for _, l := range partitionLayouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			b, c, k := partitionedBus(t, l, nil)
			in := b.Inspector()
			if _, err := b.Publish(ctx, tenantEvent("before", 0)); err != nil {
				t.Fatal(err)
			}
			start, err := in.TailStart(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Events of 40 tenants (every partition) and one written to the
			// shared (legacy) main stream by another producer.
			want := map[string]bool{}
			for i := range 40 {
				p, err := b.Publish(ctx, tenantEvent(fmt.Sprintf("tenant-%d", i), i))
				if err != nil {
					t.Fatal(err)
				}
				want[p.ID] = true
			}
			if err := c.XAdd(ctx, &redis.XAddArgs{Stream: k.Main(), Values: []any{rdb.FieldEvent, envelopeJSON("legacy-1", "order.created", "t-legacy")}}).Err(); err != nil {
				t.Fatal(err)
			}
			want["legacy-1"] = true

			seen := map[string]int{}
			parts := map[string]bool{}
			pos := start
			errStop := errors.New("stop")
			tail := func(stopAfter int) error {
				tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				n := 0
				return in.Tail(tctx, eventbus.AllTenants(), eventbus.TailFilter{After: pos}, func(it eventbus.BrowsedEvent) error {
					if it.Event == nil {
						t.Errorf("undecoded entry %+v", it)
						return nil
					}
					seen[it.Event.ID]++
					parts[it.Partition] = true
					pos = eventbus.NextTailPosition(pos, it)
					n++
					if n == stopAfter || len(seen) == len(want) {
						return errStop
					}
					return nil
				})
			}
			if err := tail(15); !errors.Is(err, errStop) {
				t.Fatalf("first tail: %v", err)
			}
			if len(seen) < len(want) {
				if err := tail(0); !errors.Is(err, errStop) {
					t.Fatalf("resumed tail: %v (%d of %d seen)", err, len(seen), len(want))
				}
			}
			for id := range want {
				if seen[id] != 1 {
					t.Errorf("event %s delivered %d times", id, seen[id])
				}
			}
			if len(seen) != len(want) {
				t.Errorf("%d events delivered, want %d", len(seen), len(want))
			}
			if len(parts) != k.Partitions() {
				t.Errorf("entries of %d partitions, want %d", len(parts), k.Partitions())
			}
		})
	}
}

// TestTailPartitionsCancel: a Tail of every partition returns nil soon
// after its context is cancelled, its readers stopped.
func TestTailPartitionsCancel(t *testing.T) {
	for _, l := range partitionLayouts {
		t.Run(l.name, func(t *testing.T) {
			b, _, _ := partitionedBus(t, l, nil)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var err error
			wg.Go(func() {
				err = b.Inspector().Tail(ctx, eventbus.AllTenants(), eventbus.TailFilter{}, func(eventbus.BrowsedEvent) error { return nil })
			})
			time.Sleep(100 * time.Millisecond) // let it block in XREAD (no condition to poll)
			began := time.Now()
			cancel()
			wg.Wait()
			if err != nil || time.Since(began) > 3*time.Second {
				t.Errorf("Tail returned %v after %v", err, time.Since(began))
			}
		})
	}
}

// TestTailPositions: positions across partitions parse, advance and
// reject garbage.
func TestTailPositions(t *testing.T) {
	for _, tc := range []struct {
		pos  string
		it   eventbus.BrowsedEvent
		want string
	}{
		{"5-0", eventbus.BrowsedEvent{StreamID: "6-1"}, "6-1"},
		{"5-0", eventbus.BrowsedEvent{StreamID: "6-1", Partition: "p2"}, "5-0,p2-6-1"},
		{"5-0,p0-4-0,p1-3-0", eventbus.BrowsedEvent{StreamID: "7-0", Partition: "p1"}, "5-0,p0-4-0,p1-7-0"},
		{"5-0,p0-4-0", eventbus.BrowsedEvent{StreamID: "9-0"}, "9-0,p0-4-0"},
		{"p0.12-4-0", eventbus.BrowsedEvent{StreamID: "9-0", Partition: "p0.12"}, "p0.12-9-0"},
	} {
		if got := eventbus.NextTailPosition(tc.pos, tc.it); got != tc.want {
			t.Errorf("NextTailPosition(%q, %s) = %q, want %q", tc.pos, tc.it.Cursor(), got, tc.want)
		}
	}
	for _, bad := range []string{"x", "5-0,", "p 1-5-0", "-5-0", "5-0-0-0"} {
		if err := (eventbus.TailFilter{After: bad}).Check(); !errors.Is(err, eventbus.ErrInvalidFilter) {
			t.Errorf("After %q: %v", bad, err)
		}
	}
}
