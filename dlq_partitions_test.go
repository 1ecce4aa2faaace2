package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
)

// partDLQSeed is a dead letter to write into one partition's DLQ.
type partDLQSeed struct {
	part int
	id   string // stream id; "" for a new one
	dl   eventbus.DeadLetter
}

// seedPartitionDLQ writes dead letters into the DLQs of their partitions
// (indexed, as the consumers write them) and returns their ids as the
// Inspector names them.
func seedPartitionDLQ(t testing.TB, c redis.UniversalClient, k rdb.Keys, seeds []partDLQSeed) []string {
	t.Helper()
	r := rdb.New(c, k, rdb.Options{})
	items := make([]rdb.DLQAdd, len(seeds))
	for i, s := range seeds {
		if s.dl.Group == "" {
			s.dl.Group = eventbus.DefaultGroup
		}
		if s.dl.Stream == "" {
			s.dl.Stream = k.MainPartition(s.part)
		}
		meta, err := json.Marshal(s.dl)
		if err != nil {
			t.Fatal(err)
		}
		p := fmt.Sprintf(`{"id":%q,"type":%q,"tenantId":%q,"userId":"u1","timestamp":"2026-01-01T00:00:00Z","data":{}}`, s.dl.EventID, s.dl.Type, s.dl.TenantID)
		items[i] = rdb.DLQAdd{Partition: s.part, ID: s.id, Payload: p, Meta: meta}
	}
	ids, err := r.AddDLQ(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ids {
		ids[i] = rdb.FormatRef(k.PartitionName(seeds[i].part), ids[i])
	}
	return ids
}

// checkPartitionDLQIndexes fails unless each partition's DLQ index holds
// exactly the members of that partition's DLQ entries.
func checkPartitionDLQIndexes(t testing.TB, c redis.UniversalClient, k rdb.Keys) {
	t.Helper()
	ctx := context.Background()
	for p := range k.Partitions() {
		pk := k.Partition(p)
		want := []string{}
		for _, m := range c.XRange(ctx, pk.DLQ(), "-", "+").Val() {
			var dl eventbus.DeadLetter
			s, _ := m.Values[rdb.FieldDLQ].(string)
			_ = json.Unmarshal([]byte(s), &dl)
			want = append(want, rdb.DLQTenantMember(dl.TenantID, m.ID))
			if dl.EventID != "" {
				want = append(want, rdb.DLQEventMember(dl.EventID, m.ID))
			}
		}
		got := c.ZRange(ctx, pk.DLQIndex(), 0, -1).Val()
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Fatalf("partition %d: dlq index (%d members) does not match its DLQ (%d members)", p, len(got), len(want))
		}
	}
}

// checkDescending fails unless ids (DLQ entry ids) are strictly newest
// first in the merge order: stream id, then partition name.
func checkDescending(t testing.TB, ids []string) {
	t.Helper()
	for i := 1; i < len(ids); i++ {
		an, aid, _ := rdb.ParseRef(ids[i-1])
		bn, bid, _ := rdb.ParseRef(ids[i])
		if rdb.CompareRefs(an, aid, bn, bid) <= 0 {
			t.Fatalf("listing out of order at %d: %s then %s", i, ids[i-1], ids[i])
		}
	}
}

// TestDLQPartitions: on 8 partitions (plus the shared one), on a single
// node and on a 3-master Redis Cluster, dead letters are listed merged
// across partitions, newest first, every one exactly once with equal
// stream ids in every partition, while new ones arrive; tenant listings
// use each partition's index; show, redrive, delete and purge act on the
// entry's own partition.
func TestDLQPartitions(t *testing.T) {
	for _, l := range partitionLayouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			b, c, k := partitionedBus(t, l, nil)
			in := b.Inspector()
			all := eventbus.AllTenants()

			// 130 stream ids, each used in every partition (ties), so that
			// the 1,170 entries exceed DLQReadMax.
			base := time.Now().Add(-time.Hour).UnixMilli()
			var seeds []partDLQSeed
			for i := range 130 {
				for p := range k.Partitions() {
					tenant := []string{"t-a", "t-b"}[(i+p)%2]
					seeds = append(seeds, partDLQSeed{part: p, id: fmt.Sprintf("%d-1", base+int64(i)),
						dl: deadLetterOf(tenant, fmt.Sprintf("e-%d-%d", p, i), "approval.item.approved", "h", "boom")})
				}
			}
			// One event dead-lettered in three partitions (a layout change).
			for _, p := range []int{0, 5, k.SharedPartition()} {
				seeds = append(seeds, partDLQSeed{part: p, dl: deadLetterOf("t-a", "ev-many", "approval.item.approved", "h", "boom")})
			}
			ids := seedPartitionDLQ(t, c, k, seeds)
			checkPartitionDLQIndexes(t, c, k)
			for i, id := range ids {
				name, _, ok := rdb.ParseRef(id)
				if !ok || name != k.PartitionName(seeds[i].part) || (name == "") != (seeds[i].part == k.SharedPartition()) {
					t.Fatalf("id %s of partition %d", id, seeds[i].part)
				}
			}

			// Every entry exactly once, newest first, while new dead
			// letters arrive between pages.
			extra := 0
			got := listAll(t, in, all, eventbus.DLQFilter{}, 7, func() {
				extra++
				seedPartitionDLQ(t, c, k, []partDLQSeed{{part: extra % k.Partitions(), dl: deadLetterOf("t-new", fmt.Sprintf("new-%d", extra), "x.y", "h", "late")}})
			})
			checkDescending(t, got)
			seen := map[string]int{}
			for _, id := range got {
				seen[id]++
			}
			for _, id := range ids {
				if seen[id] != 1 {
					t.Fatalf("entry %s listed %d times", id, seen[id])
				}
			}
			for id, n := range seen {
				if n != 1 {
					t.Fatalf("entry %s listed %d times", id, n)
				}
			}

			// A tenant's listing (each partition's index), and a filter
			// that matches nothing (pages bounded by DLQReadMax).
			var wantA []string
			for i, s := range seeds {
				if s.dl.TenantID == "t-a" {
					wantA = append(wantA, ids[i])
				}
			}
			for _, scope := range []eventbus.Scope{eventbus.TenantScope("t-a"), all} {
				f := eventbus.DLQFilter{}
				if scope.All() {
					f.TenantID = "t-a"
				}
				gotA := listAll(t, in, scope, f, 9, nil)
				checkDescending(t, gotA)
				if !sameSet(gotA, wantA) {
					t.Fatalf("tenant listing: %d entries, want %d", len(gotA), len(wantA))
				}
			}
			pages := 0
			cursor := ""
			for {
				p, err := in.DeadLetters(ctx, all, eventbus.DLQListOptions{Filter: eventbus.DLQFilter{Query: "no such text"}, Cursor: cursor})
				if err != nil || len(p.Items) != 0 {
					t.Fatalf("page %+v %v", p, err)
				}
				pages++
				if p.NextCursor == "" {
					break
				}
				cursor = p.NextCursor
			}
			if pages < 2 {
				t.Errorf("%d pages for %d entries, want at least 2 (DLQReadMax)", pages, len(got))
			}

			// Show by entry id and by event id.
			for _, i := range []int{0, 7, 8, len(seeds) - 1} {
				e, err := in.DeadLetter(ctx, all, ids[i])
				if err != nil || e.ID != ids[i] || e.EventID != seeds[i].dl.EventID {
					t.Fatalf("DeadLetter(%s) = %s %s %v", ids[i], e.ID, e.EventID, err)
				}
			}
			if _, err := in.DeadLetter(ctx, eventbus.TenantScope("t-zzz"), ids[0]); !errors.Is(err, eventbus.ErrNotFound) {
				t.Errorf("another tenant's entry: %v", err)
			}
			if _, err := in.DeadLetter(ctx, all, "p99-1-1"); !errors.Is(err, eventbus.ErrNotFound) {
				t.Errorf("unknown partition: %v", err)
			}
			many, err := in.DeadLettersOf(ctx, all, "ev-many")
			if err != nil || len(many.Entries) != 3 {
				t.Fatalf("DeadLettersOf: %d %v", len(many.Entries), err)
			}

			// Redrive of an event dead-lettered in three partitions: each
			// entry goes back to its own partition's retry schedule.
			n, err := in.Redrive(ctx, all, eventbus.Actor{Subject: "test"}, "ev-many")
			if err != nil || n != 3 {
				t.Fatalf("Redrive = %d %v", n, err)
			}
			for _, p := range []int{0, 5, k.SharedPartition()} {
				if got := c.ZCard(ctx, k.Partition(p).RetrySchedule(eventbus.DefaultGroup)).Val(); got != 1 {
					t.Errorf("partition %d: %d retries scheduled, want 1", p, got)
				}
			}
			if _, err := in.DeadLettersOf(ctx, all, "ev-many"); !errors.Is(err, eventbus.ErrNotFound) {
				t.Errorf("after redrive: %v", err)
			}

			// Bulk by ids across partitions, delete by event id, purge by
			// filter.
			sel := []string{ids[0], ids[1], ids[2], ids[8], ids[9], "p99-1-1"}
			res, err := in.RedriveMany(ctx, all, eventbus.Actor{Subject: "test"}, eventbus.DLQSelection{IDs: sel}, true)
			if err != nil || res.Matched != 5 || res.Redriven != 5 {
				t.Fatalf("RedriveMany = %+v %v", res, err)
			}
			if d, err := in.DeleteDeadLetters(ctx, all, eventbus.Actor{Subject: "test"}, seeds[20].dl.EventID); err != nil || d != 1 {
				t.Fatalf("DeleteDeadLetters = %d %v", d, err)
			}
			dry, err := in.Purge(ctx, all, eventbus.Actor{Subject: "test"}, eventbus.DLQSelection{Filter: &eventbus.DLQFilter{TenantID: "t-b"}}, false)
			if err != nil || dry.Matched == 0 || dry.Deleted != 0 {
				t.Fatalf("dry purge %+v %v", dry, err)
			}
			pr, err := in.Purge(ctx, all, eventbus.Actor{Subject: "test"}, eventbus.DLQSelection{Filter: &eventbus.DLQFilter{TenantID: "t-b"}}, true)
			if err != nil || pr.Deleted != dry.Matched {
				t.Fatalf("purge %+v %v (dry run matched %d)", pr, err, dry.Matched)
			}
			if left := listAll(t, in, eventbus.TenantScope("t-b"), eventbus.DLQFilter{}, 100, nil); len(left) != 0 {
				t.Errorf("%d dead letters of t-b left after the purge", len(left))
			}
			checkPartitionDLQIndexes(t, c, k)
			counts, err := rdb.New(c, k, rdb.Options{}).DLQCounts(ctx)
			if err != nil || counts[rdb.DLQCounterRedriven] != 8 || counts[rdb.DLQCounterDeleted] != pr.Deleted+1 {
				t.Errorf("counters %v %v, want 8 redriven and %d deleted", counts, err, pr.Deleted+1)
			}
			var total int64
			for p := range k.Partitions() {
				total += c.XLen(ctx, k.Partition(p).DLQ()).Val()
			}
			if want := int64(len(seeds)+extra) - 8 - 1 - pr.Deleted; total != want {
				t.Errorf("%d dead letters left, want %d", total, want)
			}
		})
	}
}

// sameSet reports whether a and b hold the same strings, each once.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y) && len(slices.Compact(x)) == len(a)
}

// TestDLQRedrivePartitionsDelivered: a dead letter of a partition other
// than the shared one is redriven to its handler, which runs it again.
func TestDLQRedrivePartitionsDelivered(t *testing.T) {
	for _, l := range partitionLayouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			b, _, _ := partitionedBus(t, l, nil)
			var fail atomic.Bool
			fail.Store(true)
			runs := newCounter()
			cons := fastConsumer(t, b, nil)
			mustHandle(t, cons, "h", "approval.*", func(_ context.Context, ev eventbus.Event) error {
				runs.add(ev.ID)
				if fail.Load() {
					return eventbus.Permanent(errors.New("no"))
				}
				return nil
			})
			runConsumer(t, cons)
			var evs []string
			for i := range 6 {
				p, err := b.Publish(ctx, tenantEvent(fmt.Sprintf("tenant-%d", i), i))
				if err != nil {
					t.Fatal(err)
				}
				evs = append(evs, p.ID)
			}
			in := b.Inspector()
			waitFor(t, 15*time.Second, "six dead letters", func() bool {
				p, err := in.DeadLetters(ctx, eventbus.AllTenants(), eventbus.DLQListOptions{})
				return err == nil && len(p.Items) == 6
			})
			fail.Store(false)
			res, err := in.RedriveMany(ctx, eventbus.AllTenants(), eventbus.Actor{Subject: "test"}, eventbus.DLQSelection{EventIDs: evs}, true)
			if err != nil || res.Redriven != 6 {
				t.Fatalf("RedriveMany %+v %v", res, err)
			}
			waitFor(t, 15*time.Second, "every redriven event completed", func() bool {
				for i, id := range evs {
					st, err := b.Status(ctx, fmt.Sprintf("tenant-%d", i), id)
					if err != nil || st.State != eventbus.StateCompleted {
						return false
					}
				}
				return true
			})
			for _, id := range evs {
				if n := runs.get(id); n != 2 {
					t.Errorf("event %s ran %d times, want 2", id, n)
				}
			}
		})
	}
}
