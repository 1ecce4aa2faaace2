package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

func approved(tenant string) eventbus.Event {
	ev, err := eventbus.NewEvent("approval.item.approved", tenant, "user-1", map[string]any{"itemId": "item-7"})
	if err != nil {
		panic(err) // a fixed, valid event: only a bug in NewEvent gets here
	}
	return ev
}

// rawEvent reads an entry the way the platform's other consumers do: a
// plain JSON parse of the `event` field.
func rawEvent(t *testing.T, c redis.UniversalClient, stream, id string) map[string]any {
	t.Helper()
	msgs, err := c.XRange(context.Background(), stream, id, id).Result()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("XRANGE %s %s: %v %v", stream, id, msgs, err)
	}
	s, ok := msgs[0].Values[rdb.FieldEvent].(string)
	if !ok {
		t.Fatalf("entry %s has no string field event: %v", id, msgs[0].Values)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("entry %s: event is not JSON: %v", id, err)
	}
	return m
}

func TestPublishWritesEnvelopeReadableByPlainConsumers(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	p, err := b.Publish(ctx, approved("tenant-a"))
	if err != nil {
		t.Fatal(err)
	}
	if p.ID == "" || p.StreamID == "" || p.Duplicate {
		t.Fatalf("published %+v", p)
	}
	m := rawEvent(t, c, testKeys(prefix).Main(), p.StreamID)
	if m["id"] != p.ID || m["type"] != "approval.item.approved" || m["tenantId"] != "tenant-a" ||
		m["source"] != "platform" || m["version"] != "1.0" || m["correlationId"] == "" {
		t.Errorf("envelope %v", m)
	}
	if ts, _ := m["timestamp"].(string); len(ts) != len("2026-01-02T03:04:05.000Z") || !strings.HasSuffix(ts, "Z") {
		t.Errorf("timestamp %q", ts)
	}
	if d, _ := m["data"].(map[string]any); d["itemId"] != "item-7" {
		t.Errorf("data %v", m["data"])
	}
}

func TestEntriesOfOtherProducersDecode(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	main := testKeys(prefix).Main()
	raw := `{"id":"evt_123","type":"approval.item.approved","source":"approvals","timestamp":"2025-12-03T10:00:00.000Z",` +
		`"correlationId":"corr-1","tenantId":"t1","userId":"u1","version":"1.0","data":{"itemId":"i1"}}`
	id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: main, Values: []string{rdb.FieldEvent, raw}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	msgs := c.XRange(ctx, main, id, id).Val()
	ev, err := eventbus.DecodeEvent([]byte(msgs[0].Values[rdb.FieldEvent].(string)), eventbus.DefaultMaxEventSize)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "evt_123" || ev.Source != "approvals" || ev.CorrelationID != "corr-1" ||
		!ev.Timestamp.Equal(time.Date(2025, 12, 3, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("decoded %+v", ev)
	}
	var data struct{ ItemID string }
	if err := ev.Bind(&data); err != nil || data.ItemID != "i1" {
		t.Errorf("bind: %+v %v", data, err)
	}
}

func TestPublishRejectsInvalidAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.MaxEventSize = 4096 })
	bad := approved("")
	if _, err := b.Publish(ctx, bad); !errors.Is(err, eventbus.ErrInvalidEvent) || !strings.Contains(err.Error(), "tenantId") {
		t.Errorf("empty tenant: %v", err)
	}
	big := approved("t")
	big.Data = json.RawMessage(`{"blob":"` + strings.Repeat("x", 5000) + `"}`)
	if _, err := b.Publish(ctx, big); !errors.Is(err, eventbus.ErrEventTooLarge) {
		t.Errorf("big event: %v", err)
	}
	if n := c.XLen(ctx, testKeys(prefix).Main()).Val(); n != 0 {
		t.Errorf("%d entries written for invalid events", n)
	}
}

func TestPublishBatchIsAtomicAndContiguous(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	main := testKeys(prefix).Main()

	// One bad event: nothing written, the error names its index and field.
	evs := make([]eventbus.Event, 5)
	for i := range evs {
		evs[i] = approved(fmt.Sprintf("t%d", i))
	}
	evs[3].Type = "Not.Valid"
	_, err := b.PublishBatch(ctx, evs)
	var ve *eventbus.ValidationError
	if !errors.As(err, &ve) || ve.Index != 3 || ve.Field != "type" {
		t.Fatalf("err = %v, want index 3 field type", err)
	}
	if n := c.XLen(ctx, main).Val(); n != 0 {
		t.Fatalf("%d entries written after a failed batch", n)
	}

	// Concurrent single publishes cannot interleave with a batch.
	evs[3].Type = "approval.item.approved"
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					if _, err := b.Publish(ctx, approved("noise")); err != nil {
						t.Errorf("concurrent publish: %v", err)
						return
					}
				}
			}
		})
	}
	var res []eventbus.Published
	for range 20 {
		if res, err = b.PublishBatch(ctx, evs); err != nil {
			break
		}
		all := c.XRange(ctx, main, res[0].StreamID, res[len(res)-1].StreamID).Val()
		if len(all) != len(evs) {
			t.Errorf("batch not contiguous: %d entries between its first and last id", len(all))
			break
		}
		for i, m := range all {
			if m.ID != res[i].StreamID {
				t.Errorf("entry %d is %s, want %s", i, m.ID, res[i].StreamID)
			}
			if got := rawEvent(t, c, main, m.ID)["tenantId"]; got != fmt.Sprintf("t%d", i) {
				t.Errorf("entry %d has tenant %v: order lost", i, got)
			}
		}
	}
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
}

func TestPublishIdempotentForCallerIDs(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	main := testKeys(prefix).Main()

	ev := approved("t1")
	ev.ID = "order-42-approved"
	first, err := b.Publish(ctx, ev)
	if err != nil || first.Duplicate {
		t.Fatalf("first: %+v %v", first, err)
	}
	again, err := b.Publish(ctx, ev)
	if err != nil || !again.Duplicate || again.StreamID != first.StreamID || again.ID != ev.ID {
		t.Fatalf("repeat: %+v %v, want duplicate of %s", again, err, first.StreamID)
	}
	if ttl := c.PTTL(ctx, testKeys(prefix).Idempotency("t1", ev.ID)).Val(); ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Errorf("idempotency key ttl %v, want the 24h window", ttl)
	}

	// Racing publishers of one id: one entry.
	ev.ID = "race-1"
	var wg sync.WaitGroup
	results := make([]eventbus.Published, 20)
	for i := range results {
		wg.Go(func() {
			var err error
			if results[i], err = b.Publish(ctx, ev); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	dups := 0
	for _, r := range results {
		if r.StreamID != results[0].StreamID {
			t.Errorf("stream ids differ: %s vs %s", r.StreamID, results[0].StreamID)
		}
		if r.Duplicate {
			dups++
		}
	}
	if dups != 19 {
		t.Errorf("%d duplicates, want 19", dups)
	}
	// Batches too, also repeated within one batch.
	batch := []eventbus.Event{approved("t"), approved("t"), approved("t")}
	batch[0].ID, batch[1].ID = "b-1", "b-1"
	res, err := b.PublishBatch(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || !res[1].Duplicate || res[1].StreamID != res[0].StreamID || res[2].Duplicate {
		t.Errorf("batch results %+v", res)
	}
	res2, err := b.PublishBatch(ctx, batch)
	if err != nil || !res2[0].Duplicate || res2[0].StreamID != res[0].StreamID || res2[2].Duplicate {
		t.Errorf("repeated batch %+v %v", res2, err)
	}
	if n := c.XLen(ctx, main).Val(); n != 1+1+2+1 {
		t.Errorf("stream holds %d entries, want 5", n)
	}
	// Bus-made ids are not remembered.
	if n := len(c.Keys(ctx, idempotencyKeys(prefix)).Val()); n != 3 {
		t.Errorf("%d idempotency keys, want 3 (caller ids only)", n)
	}
}

func TestPublishTrimsByTimeInline(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	main := testKeys(prefix).Main()
	old := time.Now().Add(-eventbus.DefaultMainRetention - time.Hour).UnixMilli()
	pipe := c.Pipeline()
	for i := range 500 {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: main, ID: fmt.Sprintf("%d-%d", old, i+1), Values: []string{rdb.FieldEvent, "{}"}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(ctx, approved("t")); err != nil {
		t.Fatal(err)
	}
	if n := c.XLen(ctx, main).Val(); n > 101 {
		t.Errorf("%d entries after a publish, want the old macro nodes trimmed (at most 101)", n)
	}
}

func TestPublishCoalescesConcurrentCalls(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	counter := &countingHook{}
	c.AddHook(counter)
	// Each pipeline takes at least 2 ms, as over a real network: while one
	// is in flight the other callers queue up behind it.
	pipelines := &pipelineCounter{delay: 2 * time.Millisecond}
	c.AddHook(pipelines)
	b := newBus(t, c, prefix, nil)
	const n = 2000
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			for j := i; j < n; j += 50 {
				p, err := b.Publish(ctx, approved("t"))
				if err != nil {
					t.Error(err)
					return
				}
				ids[j] = p.StreamID
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, id := range ids {
		if id == "" || seen[id] {
			t.Fatalf("missing or repeated stream id %q", id)
		}
		seen[id] = true
	}
	if got := c.XLen(ctx, testKeys(prefix).Main()).Val(); got != n {
		t.Errorf("%d entries, want %d", got, n)
	}
	if p := pipelines.n.Load(); p >= n/2 {
		t.Errorf("%d pipelines for %d publishes from 50 goroutines: not coalesced", p, n)
	}
}

// pipelineCounter counts pipelines and makes each take at least delay.
type pipelineCounter struct {
	countingHook
	delay time.Duration
}

func (h *pipelineCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		time.Sleep(h.delay) // simulated network latency, not synchronisation
		return next(ctx, cmds)
	}
}

func TestPublishFailsFastWhileRedisDown(t *testing.T) {
	if testing.Short() {
		t.Skip("stops its own redis-server; run without -short")
	}
	srv := redistest.Start(t)
	c := failFastClient(t, srv.Addr())
	b := newBus(t, c, "pub", nil)
	ctx := context.Background()
	if _, err := b.Publish(ctx, approved("t")); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for i := range 10 {
		start := time.Now()
		_, err := b.Publish(ctx, approved("t"))
		if !errors.Is(err, eventbus.ErrUnavailable) {
			t.Fatalf("publish %d: %v, want ErrUnavailable", i, err)
		}
		// A refused dial answers in microseconds; go-redis's default dial
		// retries would take seconds. 2s leaves room for a loaded machine.
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("publish %d took %v, want a fast failure", i, d)
		}
		if _, err := b.PublishBatch(ctx, []eventbus.Event{approved("t")}); !errors.Is(err, eventbus.ErrUnavailable) {
			t.Fatalf("batch %d: %v, want ErrUnavailable", i, err)
		}
	}
	srv.Restart()
	waitFor(t, 10*time.Second, "publish works again", func() bool {
		_, err := b.Publish(ctx, approved("t"))
		return err == nil
	})
}

// Caller-supplied ids are unique per tenant: one tenant can neither
// suppress nor look up another tenant's event by reusing its id.
func TestIdempotencyIsPerTenant(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	theirs := approved("tenant-b")
	theirs.ID = "order-42"
	ours := approved("tenant-a")
	ours.ID = "order-42"
	pb, err := b.Publish(ctx, theirs)
	if err != nil {
		t.Fatal(err)
	}
	pa, err := b.Publish(ctx, ours)
	if err != nil || pa.Duplicate || pa.StreamID == pb.StreamID {
		t.Fatalf("tenant-a's order-42 after tenant-b's: %+v %v, want a new entry", pa, err)
	}
	if n := c.XLen(ctx, testKeys(prefix).Main()).Val(); n != 2 {
		t.Errorf("%d entries, want 2", n)
	}
	for tenant, want := range map[string]string{"tenant-a": pa.StreamID, "tenant-b": pb.StreamID} {
		st, err := b.Status(ctx, tenant, "order-42")
		if err != nil || st.StreamID != want || st.TenantID != tenant {
			t.Errorf("status of %s's order-42: %+v %v, want stream id %s", tenant, st, err, want)
		}
	}
	if _, err := b.Status(ctx, "tenant-c", "order-42"); !errors.Is(err, eventbus.ErrNotFound) {
		t.Errorf("tenant-c's order-42: %v, want ErrNotFound", err)
	}
}
