package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// partitionLayout is a Redis set-up for the partition tests: the shared
// single node, or a 3-master Redis Cluster.
type partitionLayout struct {
	name    string
	cluster bool
}

var partitionLayouts = []partitionLayout{{"single-node", false}, {"cluster", true}}

// layoutClient returns a client and a fresh prefix for layout.
func layoutClient(t *testing.T, l partitionLayout) (redis.UniversalClient, string) {
	t.Helper()
	if !l.cluster {
		return redistest.Shared(t)
	}
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster; run without -short")
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: redistest.StartCluster(t, 3)})
	t.Cleanup(func() { c.Close() })
	return c, redistest.Prefix(t)
}

// partitionedBus is a fast bus with 8 partitions on layout.
func partitionedBus(t *testing.T, l partitionLayout, mutate func(*eventbus.Config)) (*eventbus.Bus, redis.UniversalClient, rdb.Keys) {
	t.Helper()
	c, prefix := layoutClient(t, l)
	b := fastBus(t, c, prefix, func(cfg *eventbus.Config) {
		cfg.Cluster, cfg.Partitions = l.cluster, 8
		if mutate != nil {
			mutate(cfg)
		}
	})
	if err := b.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := b.Config()
	return b, c, rdb.NewPartitionedKeys(prefix, l.cluster, cfg.Partitions, cfg.PreviousPartitions)
}

// tenantEvent is an approval event of tenant with a sequence number.
func tenantEvent(tenant string, seq int) eventbus.Event {
	return eventbus.Event{Type: "approval.item.approved", TenantID: tenant, UserID: "u1", Data: json.RawMessage(fmt.Sprintf(`{"seq":%d}`, seq))}
}

// TestPartitionsDelivery runs the delivery guarantees on 8 partitions, on
// a single node and on a 3-master Redis Cluster: every event handled once
// by three consumers, each tenant's events in one partition in publish
// order, batches split per partition, idempotency, retries of the failed
// handler only, dead letters in the event's partition, status lookups.
func TestPartitionsDelivery(t *testing.T) {
	for _, l := range partitionLayouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			b, c, k := partitionedBus(t, l, nil)
			if k.WritePartitions() != 8 || k.Partitions() != 9 {
				t.Fatalf("partitions %d/%d", k.WritePartitions(), k.Partitions())
			}
			runs := newCounter()
			flakyRuns := newCounter()
			var consumers []*eventbus.Consumer
			for i := range 3 {
				cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) { cfg.Name = fmt.Sprintf("c%d", i) })
				mustHandle(t, cons, "ok", "*", func(_ context.Context, ev eventbus.Event) error { runs.add(ev.ID); return nil })
				mustHandle(t, cons, "flaky", "approval.item.*", func(_ context.Context, ev eventbus.Event) error {
					if ev.TenantID == "t-flaky" && flakyRuns.add(ev.ID) <= 2 {
						return errors.New("not yet")
					}
					return nil
				})
				mustHandle(t, cons, "poison", "approval.poison", func(context.Context, eventbus.Event) error {
					return eventbus.Permanent(errors.New("cannot handle"))
				})
				consumers = append(consumers, cons)
				runConsumer(t, cons)
			}

			// 20 tenants x 25 events each, published one by one from 4
			// goroutines per tenant group, plus cross-tenant batches.
			const tenants, perTenant = 20, 25
			var mu sync.Mutex
			var ids []string
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for tn := g; tn < tenants; tn += 4 {
						for s := range perTenant {
							p, err := b.Publish(ctx, tenantEvent(fmt.Sprintf("t%02d", tn), s))
							if err != nil {
								t.Error(err)
								return
							}
							mu.Lock()
							ids = append(ids, p.ID)
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			batch := []eventbus.Event{tenantEvent("b1", 0), tenantEvent("b2", 0), tenantEvent("b1", 1), tenantEvent("b3", 0), tenantEvent("b2", 1)}
			res, err := b.PublishBatch(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				ids = append(ids, r.ID)
			}
			// Idempotency: the same id twice writes once.
			withID := tenantEvent("t-idem", 0)
			withID.ID = "order-1"
			if _, err := b.Publish(ctx, withID); err != nil {
				t.Fatal(err)
			}
			if again, err := b.Publish(ctx, withID); err != nil || !again.Duplicate {
				t.Fatalf("repeat: %+v %v", again, err)
			}
			ids = append(ids, withID.ID)
			flaky, err := b.Publish(ctx, tenantEvent("t-flaky", 0))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, flaky.ID)
			poisonEv := tenantEvent("t-poison", 0)
			poisonEv.Type = "approval.poison"
			poison, err := b.Publish(ctx, poisonEv)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, poison.ID)

			waitFor(t, 30*time.Second, "every event handled", func() bool { return runs.distinct() == len(ids) })
			for _, id := range ids {
				if n := runs.get(id); n != 1 {
					t.Errorf("event %s handled %d times by ok", id, n)
				}
			}
			waitFor(t, 10*time.Second, "the flaky event completed", func() bool {
				st, err := b.Status(ctx, "t-flaky", flaky.ID)
				return err == nil && st.State == eventbus.StateCompleted
			})
			if n := flakyRuns.get(flaky.ID); n != 3 {
				t.Errorf("flaky ran %d times, want 3", n)
			}
			if n := runs.get(flaky.ID); n != 1 {
				t.Errorf("retries re-ran the handler that succeeded: ok ran %d times", n)
			}
			waitFor(t, 10*time.Second, "the poison event in the DLQ", func() bool {
				st, err := b.Status(ctx, "t-poison", poison.ID)
				return err == nil && st.State == eventbus.StateDLQ
			})
			// The dead letter is in the poison event's partition's DLQ.
			var dlqs []int
			for p := range k.Partitions() {
				if n := c.XLen(ctx, k.Partition(p).DLQ()).Val(); n > 0 {
					dlqs = append(dlqs, p)
				}
			}
			pp := partitionOfEvent(t, c, k, poison.ID)
			if !slices.Equal(dlqs, []int{pp}) {
				t.Errorf("dead letters in partitions %v, want [%d]", dlqs, pp)
			}
			// Status by id without tenant (platform scope) finds any partition.
			if st, err := b.Status(ctx, "", res[3].ID); err != nil || st.State != eventbus.StateCompleted || st.TenantID != "b3" {
				t.Errorf("status of a batch event: %+v %v", st, err)
			}

			// Placement: each tenant in one partition, in publish order;
			// events spread over several partitions.
			used := map[int]bool{}
			for tn := range tenants {
				tenant := fmt.Sprintf("t%02d", tn)
				var seen []int
				part := -1
				for p := range k.WritePartitions() {
					for _, m := range c.XRange(ctx, k.Partition(p).Main(), "-", "+").Val() {
						var ev eventbus.Event
						if json.Unmarshal([]byte(m.Values["event"].(string)), &ev) != nil || ev.TenantID != tenant {
							continue
						}
						if part >= 0 && part != p {
							t.Fatalf("tenant %s in partitions %d and %d", tenant, part, p)
						}
						part = p
						var d struct{ Seq int }
						_ = json.Unmarshal(ev.Data, &d)
						seen = append(seen, d.Seq)
					}
				}
				used[part] = true
				if len(seen) != perTenant || !slices.IsSorted(seen) {
					t.Errorf("tenant %s: sequence %v", tenant, seen)
				}
			}
			if len(used) < 4 {
				t.Errorf("20 tenants used only %d of 8 partitions", len(used))
			}
			if n := c.XLen(ctx, k.Main()).Val(); n != 0 {
				t.Errorf("the un-partitioned main stream holds %d entries", n)
			}
			for _, cons := range consumers {
				if st := cons.Stats(); st.Handled == 0 {
					t.Errorf("a consumer handled nothing: %+v", st)
				}
			}
			waitFor(t, 10*time.Second, "nothing pending", func() bool {
				for p := range k.Partitions() {
					if pendingCount(t, c, k.Partition(p).Main(), eventbus.DefaultGroup) != 0 {
						return false
					}
				}
				return true
			})
			if h := b.Health(ctx); !h.Healthy && l.cluster {
				t.Logf("health: %v", h.Warnings)
			}
			if _, err := b.Trim(ctx); err != nil {
				t.Errorf("trim: %v", err)
			}
		})
	}
}

// partitionOfEvent returns the partition whose main stream holds event id.
func partitionOfEvent(t *testing.T, c redis.UniversalClient, k rdb.Keys, id string) int {
	t.Helper()
	for p := range k.Partitions() {
		for _, m := range c.XRange(context.Background(), k.Partition(p).Main(), "-", "+").Val() {
			var ev eventbus.Event
			if json.Unmarshal([]byte(m.Values["event"].(string)), &ev) == nil && ev.ID == id {
				return p
			}
		}
	}
	t.Fatalf("event %s in no partition", id)
	return -1
}

// TestPartitionsClaimsAndShutdown checks, on 8 partitions, that a dead
// consumer's entries in every partition are claimed and handled once, that
// the dead consumer is then removed from every partition, and that a
// graceful shutdown finishes in-flight handlers.
func TestPartitionsClaimsAndShutdown(t *testing.T) {
	for _, l := range partitionLayouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			b, c, k := partitionedBus(t, l, nil)
			// Graceful shutdown: a slow handler in flight finishes.
			slow := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) { cfg.Name = "slow" })
			started := make(chan string, 1)
			var finished atomic.Int32
			mustHandle(t, slow, "slow", "slow.*", func(_ context.Context, ev eventbus.Event) error {
				started <- ev.ID
				time.Sleep(300 * time.Millisecond)
				finished.Add(1)
				return nil
			})
			sctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _ = slow.Run(sctx) }()
			ev := tenantEvent("t-slow", 0)
			ev.Type = "slow.thing"
			if _, err := b.Publish(ctx, ev); err != nil {
				t.Fatal(err)
			}
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("the slow handler never started")
			}
			cancel()
			<-done
			if finished.Load() != 1 {
				t.Error("shutdown did not wait for the in-flight handler")
			}
			var ids []string
			for tn := range 16 {
				p, err := b.Publish(ctx, tenantEvent(fmt.Sprintf("t%02d", tn), 0))
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, p.ID)
			}
			// A ghost consumer reads every partition and dies.
			ghostHeld := 0
			for p := range k.WritePartitions() {
				got := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: eventbus.DefaultGroup, Consumer: "ghost", Streams: []string{k.Partition(p).Main(), ">"}, Count: 100, Block: -1}).Val()
				for _, s := range got {
					ghostHeld += len(s.Messages)
				}
			}
			if ghostHeld != len(ids) {
				t.Fatalf("ghost holds %d of %d", ghostHeld, len(ids))
			}
			cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) {
				cfg.ClaimInterval, cfg.DeadConsumerIdle = 100*time.Millisecond, 200*time.Millisecond
			})
			runs := newCounter()
			mustHandle(t, cons, "h", "*", func(_ context.Context, ev eventbus.Event) error { runs.add(ev.ID); return nil })
			runConsumer(t, cons)
			waitFor(t, 15*time.Second, "the ghost's entries handled", func() bool { return runs.distinct() == len(ids) })
			for _, id := range ids {
				if runs.get(id) != 1 {
					t.Errorf("%s handled %d times", id, runs.get(id))
				}
			}
			waitFor(t, 15*time.Second, "the ghost removed from every partition", func() bool {
				for p := range k.Partitions() {
					for _, ci := range c.XInfoConsumers(ctx, k.Partition(p).Main(), eventbus.DefaultGroup).Val() {
						if ci.Name == "ghost" {
							return false
						}
					}
				}
				return true
			})

		})
	}
}

// TestPartitionerChoosesThePartition checks a user Partitioner (by user
// id) and its refusal of an out-of-range partition.
func TestPartitionerChoosesThePartition(t *testing.T) {
	ctx := context.Background()
	b, c, k := partitionedBus(t, partitionLayouts[0], func(cfg *eventbus.Config) {
		cfg.Partitioner = func(ev *eventbus.Event, n int) int {
			if ev.UserID == "bad" {
				return n
			}
			return int(ev.UserID[len(ev.UserID)-1]-'0') % n
		}
	})
	for u := range 8 {
		ev := tenantEvent("t1", u)
		ev.UserID = fmt.Sprintf("user%d", u)
		p, err := b.Publish(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := partitionOfEvent(t, c, k, p.ID); got != u {
			t.Errorf("user%d in partition %d", u, got)
		}
	}
	ev := tenantEvent("t1", 0)
	ev.UserID = "bad"
	if _, err := b.Publish(ctx, ev); !errors.Is(err, eventbus.ErrConfig) {
		t.Errorf("out-of-range partition: %v", err)
	}
}

// TestPublishBatchAcrossPartitionsPartialFailure makes one partition
// refuse writes (an ACL user without its keys): a batch across partitions
// is written to the others, all or none per partition, and the
// *PartialBatchError tells each event's outcome with its id.
func TestPublishBatchAcrossPartitionsPartialFailure(t *testing.T) {
	ctx := context.Background()
	admin, prefix := redistest.Shared(t)
	k := rdb.NewPartitionedKeys(prefix, false, 4, 0)
	c := fencedClient(t, admin, k, 2, false) // partition 2 is out of reach
	b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Partitions = 4 })

	// Tenants by partition, found through the bus itself.
	byPart := map[int]string{}
	for i := 0; len(byPart) < 4 && i < 1000; i++ {
		tenant := fmt.Sprintf("tenant-%d", i)
		ev := tenantEvent(tenant, 0)
		if _, err := b.Publish(ctx, ev); err != nil {
			byPart[2] = tenant // only partition 2 refuses
			continue
		}
		byPart[partitionOfTenant(t, admin, k, tenant)] = tenant
	}
	if len(byPart) != 4 {
		t.Fatalf("tenants found for partitions %v", byPart)
	}
	batch := []eventbus.Event{tenantEvent(byPart[0], 1), tenantEvent(byPart[2], 1), tenantEvent(byPart[1], 1), tenantEvent(byPart[2], 2)}
	batch[1].ID = "caller-id-1"
	_, err := b.PublishBatch(ctx, batch)
	var pb *eventbus.PartialBatchError
	if !errors.As(err, &pb) {
		t.Fatalf("want a *PartialBatchError, got %v", err)
	}
	for i, want := range []bool{true, false, true, false} {
		written := pb.Errs[i] == nil
		if written != want || pb.Published[i].ID == "" || (pb.Published[i].StreamID != "") != want {
			t.Errorf("event %d: written %v (err %v), result %+v", i, written, pb.Errs[i], pb.Published[i])
		}
	}
	if pb.Published[1].ID != "caller-id-1" {
		t.Errorf("the caller's id is not kept: %+v", pb.Published[1])
	}
	if n := admin.XLen(ctx, k.Partition(2).Main()).Val(); n != 0 {
		t.Errorf("partition 2 holds %d entries", n)
	}
	// Every partition of the batch refused: one error, no partial result.
	if _, err := b.PublishBatch(ctx, []eventbus.Event{tenantEvent(byPart[2], 3)}); err == nil || errors.As(err, &pb) && len(pb.Errs) == 1 {
		t.Errorf("a batch to the refusing partition only: %v", err)
	}
}

// partitionOfTenant returns the partition whose main stream holds an
// event of tenant.
func partitionOfTenant(t *testing.T, c redis.UniversalClient, k rdb.Keys, tenant string) int {
	t.Helper()
	for p := range k.Partitions() {
		for _, m := range c.XRange(context.Background(), k.Partition(p).Main(), "-", "+").Val() {
			var ev eventbus.Event
			if json.Unmarshal([]byte(m.Values["event"].(string)), &ev) == nil && ev.TenantID == tenant {
				return p
			}
		}
	}
	t.Fatalf("no event of tenant %s", tenant)
	return -1
}

// TestPartitionsBadEntriesGroupsAndPanics checks, on 8 partitions: an
// entry of another producer that is not an event goes to the DLQ of its
// own partition and the loop goes on; two groups each get every event of
// every partition; a panicking handler is retried in its partition.
func TestPartitionsBadEntriesGroupsAndPanics(t *testing.T) {
	for _, l := range partitionLayouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			b, c, k := partitionedBus(t, l, nil)
			cfg := b.Config()
			other := fastBus(t, c, cfg.Prefix, func(oc *eventbus.Config) {
				oc.Cluster, oc.Partitions, oc.Group = l.cluster, 8, "other-group"
			})
			if err := other.SetUp(ctx); err != nil {
				t.Fatal(err)
			}
			runsA, runsB := newCounter(), newCounter()
			var panicked atomic.Int32
			ca := fastConsumer(t, b, nil)
			mustHandle(t, ca, "a", "*", func(_ context.Context, ev eventbus.Event) error {
				if ev.TenantID == "t-panic" && panicked.Add(1) == 1 {
					panic("boom")
				}
				runsA.add(ev.ID)
				return nil
			})
			runConsumer(t, ca)
			cb := fastConsumer(t, other, nil)
			mustHandle(t, cb, "b", "*", func(_ context.Context, ev eventbus.Event) error { runsB.add(ev.ID); return nil })
			runConsumer(t, cb)

			// Garbage written by another producer into partition 5.
			c.XAdd(ctx, &redis.XAddArgs{Stream: k.Partition(5).Main(), Values: []any{"foo", "bar"}})
			var ids []string
			for tn := range 24 {
				p, err := b.Publish(ctx, tenantEvent(fmt.Sprintf("g%02d", tn), 0))
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, p.ID)
			}
			pp, err := b.Publish(ctx, tenantEvent("t-panic", 0))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, pp.ID)
			waitFor(t, 20*time.Second, "both groups handled every event", func() bool {
				return runsA.distinct() == len(ids) && runsB.distinct() == len(ids)
			})
			for _, id := range ids {
				if runsA.get(id) != 1 || runsB.get(id) != 1 {
					t.Errorf("%s: group a %d, group b %d runs", id, runsA.get(id), runsB.get(id))
				}
			}
			if panicked.Load() != 2 {
				t.Errorf("the panicking handler ran %d times, want 2", panicked.Load())
			}
			waitFor(t, 10*time.Second, "the bad entry dead-lettered in partition 5", func() bool {
				return c.XLen(ctx, k.Partition(5).DLQ()).Val() >= 1
			})
			for p := range k.Partitions() {
				if p == 5 {
					continue
				}
				if n := c.XLen(ctx, k.Partition(p).DLQ()).Val(); n != 0 {
					t.Errorf("partition %d's DLQ holds %d entries", p, n)
				}
			}
			waitFor(t, 10*time.Second, "the bad entry acknowledged", func() bool {
				return pendingCount(t, c, k.Partition(5).Main(), eventbus.DefaultGroup) == 0
			})
		})
	}
}

// fencedClient returns a client of an ACL user (removed when the test
// ends) that may use the keys of every write partition of k but
// partition deny, and, with shared, the shared partition's keys: to
// deny its keys is how a test makes one partition fail, as its Cluster
// master being away would.
func fencedClient(t *testing.T, admin *redis.Client, k rdb.Keys, deny int, shared bool) *redis.Client {
	t.Helper()
	ctx := context.Background()
	user := fmt.Sprintf("fenced-%s-%d", t.Name(), deny)
	rules := []any{"ACL", "SETUSER", user, "reset", "on", ">pw", "+@all"}
	if shared { // its keys only: the base prefixes every partition's
		rules = append(rules, "~"+k.Partition(k.SharedPartition()).Base()+":events:*")
	}
	for p := range k.WritePartitions() {
		if p != deny {
			rules = append(rules, "~"+k.Partition(p).Base()+":*")
		}
	}
	if err := admin.Do(ctx, rules...).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", user) })
	c := redis.NewClient(&redis.Options{Addr: admin.Options().Addr, Username: user, Password: "pw"})
	t.Cleanup(func() { c.Close() })
	return c
}
