package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// The test: 1,000 events of a type with two handlers; A succeeds,
// B fails for good and dead-letters every event. Once B is fixed, a
// redrive by filter runs B exactly once more per event, A never again,
// and none is lost.
func TestRedriveThousandDeadLettersOfTwoHandlerType(t *testing.T) {
	if testing.Short() {
		t.Skip("handles 1,000 events twice: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	runsA, runsB := newCounter(), newCounter()
	var broken atomic.Bool
	broken.Store(true)
	cons := fastConsumer(t, b, nil)
	mustHandle(t, cons, "A", "order.*", func(_ context.Context, ev eventbus.Event) error {
		runsA.add(ev.ID)
		return nil
	})
	mustHandle(t, cons, "B", "order.*", func(_ context.Context, ev eventbus.Event) error {
		runsB.add(ev.ID)
		if broken.Load() {
			return fmt.Errorf("downstream rejected it: %w", eventbus.ErrPermanent)
		}
		return nil
	})
	runConsumer(t, cons)
	ids := publishN(t, b, n, "order.created")
	dlq := testKeys(prefix).DLQ()
	waitFor(t, 60*time.Second, "every event dead-lettered for B", func() bool { return c.XLen(ctx, dlq).Val() == n })
	waitFor(t, 30*time.Second, "A ran every event", func() bool { return runsA.distinct() == n })

	broken.Store(false)
	in := b.Inspector()
	sel := eventbus.DLQSelection{Filter: &eventbus.DLQFilter{Types: []string{"order.created"}, Handler: "B"}}
	dry, err := in.RedriveMany(ctx, eventbus.TenantScope("t1"), testActor, sel, false)
	if err != nil || dry.Matched != n || dry.Redriven != 0 {
		t.Fatalf("dry run %+v %v, want %d matched", dry, err, n)
	}
	res, err := in.RedriveMany(ctx, eventbus.TenantScope("t1"), testActor, sel, true)
	if err != nil || res.Matched != n || res.Redriven != n {
		t.Fatalf("redrive %+v %v, want %d redriven", res, err, n)
	}
	waitFor(t, 60*time.Second, "B ran every event again", func() bool {
		for _, id := range ids {
			if runsB.get(id) < 2 {
				return false
			}
		}
		return true
	})
	retries := testKeys(prefix).Retries(eventbus.DefaultGroup)
	waitFor(t, 30*time.Second, "every retry settled", func() bool {
		return pendingCount(t, c, retries, eventbus.DefaultGroup) == 0 &&
			c.ZCard(ctx, testKeys(prefix).RetrySchedule(eventbus.DefaultGroup)).Val() == 0
	})
	for _, id := range ids {
		if a, b := runsA.get(id), runsB.get(id); a != 1 || b != 2 {
			t.Fatalf("event %s: A ran %d times, B %d; want 1 and 2", id, a, b)
		}
	}
	if l := c.XLen(ctx, dlq).Val(); l != 0 {
		t.Errorf("dlq holds %d entries, want 0", l)
	}
	checkDLQIndex(t, c, prefix)
	for _, id := range ids[:20] {
		if st, err := b.Status(ctx, "t1", id); err != nil || st.State != eventbus.StateCompleted {
			t.Errorf("status of %s: %+v %v, want COMPLETED", id, st, err)
		}
	}
}

// A handler that keeps failing is redriven at most MaxRedrives times:
// the count travels with the event through its retries and dead letters.
func TestRedriveLimitStopsALoop(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.MaxRedrives = 2 })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	runs := newCounter()
	cons := fastConsumer(t, b, nil)
	mustHandle(t, cons, "h", "*", func(_ context.Context, ev eventbus.Event) error {
		runs.add(ev.ID)
		return eventbus.ErrPermanent
	})
	runConsumer(t, cons)
	id := publishN(t, b, 1, "order.created")[0]
	dlq := testKeys(prefix).DLQ()
	in := b.Inspector()
	for round := 1; ; round++ {
		waitFor(t, 30*time.Second, "the event dead-lettered", func() bool { return c.XLen(ctx, dlq).Val() == 1 })
		n, err := in.Redrive(ctx, eventbus.TenantScope("t1"), testActor, id)
		if round == 3 {
			if !errors.Is(err, eventbus.ErrRedriveLimit) {
				t.Fatalf("third redrive: %d %v, want ErrRedriveLimit", n, err)
			}
			break
		}
		if err != nil || n != 1 {
			t.Fatalf("redrive %d: %d %v", round, n, err)
		}
		waitFor(t, 30*time.Second, "the redriven run", func() bool { return runs.get(id) == round+1 })
	}
	ev, err := in.DeadLettersOf(ctx, eventbus.TenantScope("t1"), id)
	if err != nil || len(ev.Entries) != 1 || ev.Entries[0].Redrives != 2 || len(ev.Entries[0].Errors) != 3 {
		t.Errorf("dead letter %+v %v, want redrives 2 and 3 errors", ev, err)
	}
}

// dlqChildEnv selects the child role of TestBulkRedriveKilledLosesAndDuplicatesNothing.
const dlqChildEnv = "EVENTBUS_TEST_DLQ_REDRIVE_CHILD"

// A bulk redrive process killed with SIGKILL half-way leaves every entry
// either still in the DLQ (and indexed) or scheduled for its handler,
// never both, never neither.
func TestBulkRedriveKilledLosesAndDuplicatesNothing(t *testing.T) {
	if os.Getenv(dlqChildEnv) == "1" {
		bulkRedriveChild(t)
		return
	}
	if testing.Short() {
		t.Skip("seeds 20,000 dead letters and kills a process: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	const n = 20000
	seeds := make([]dlqSeed, n)
	for i := range seeds {
		dl := deadLetterOf("t1", fmt.Sprintf("e%d", i), "order.created", "h", "x")
		dl.OriginalStreamID = fmt.Sprintf("1-%d", i+1)
		seeds[i] = dlqSeed{dl: dl}
	}
	ids := seedDLQ(t, c, prefix, seeds)
	k := testKeys(prefix)

	cmd := exec.Command(os.Args[0], "-test.run=^TestBulkRedriveKilledLosesAndDuplicatesNothing$")
	cmd.Env = append(os.Environ(), dlqChildEnv+"=1", "W_REDIS="+sharedURL(), "W_PREFIX="+prefix)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(60 * time.Second)
	for c.XLen(ctx, k.DLQ()).Val() > n-1500 {
		if time.Now().After(deadline) {
			t.Fatal("the child redrove nothing in 60 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	// Redis may still be running scripts of the child's pipeline that it
	// had read before the connection closed: read every key in one MULTI,
	// a consistent snapshot (separate reads could see an entry in the DLQ
	// and, a moment later, its retry).
	var dlqMsgs []redis.XMessage
	var data map[string]string
	var sched []string
	var redrivenCounter string
	snapshot := func() {
		var x *redis.XMessageSliceCmd
		var d *redis.MapStringStringCmd
		var z *redis.StringSliceCmd
		var h *redis.StringCmd
		if _, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			x = p.XRange(ctx, k.DLQ(), "-", "+")
			d = p.HGetAll(ctx, k.RetryData(eventbus.DefaultGroup))
			z = p.ZRange(ctx, k.RetrySchedule(eventbus.DefaultGroup), 0, -1)
			h = p.HGet(ctx, k.DLQCounters(), rdb.DLQCounterRedriven)
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		dlqMsgs, data, sched, redrivenCounter = x.Val(), d.Val(), z.Val(), h.Val()
	}
	snapshot()
	left := len(dlqMsgs)
	t.Logf("killed with %d of %d entries still in the DLQ", left, n)
	if left == 0 || left == n {
		t.Fatalf("killed with %d of %d entries left: want the kill half-way (raise n if the child finishes first)", left, n)
	}

	inDLQ := map[string]bool{}
	for _, m := range dlqMsgs {
		inDLQ[m.ID] = true
	}
	scheduled := map[string]bool{}
	for _, m := range sched {
		scheduled[m] = true
	}
	redriven := 0
	for i, id := range ids {
		member := rdb.RetryMember("h", seeds[i].dl.OriginalStreamID, seeds[i].dl.EventID)
		_, hasData := data[member]
		if hasData != scheduled[member] {
			t.Fatalf("entry %s: retry data %v but scheduled %v", id, hasData, scheduled[member])
		}
		if inDLQ[id] == hasData {
			t.Fatalf("entry %s: in the DLQ %v, redriven %v: want exactly one", id, inDLQ[id], hasData)
		}
		if hasData {
			redriven++
		}
	}
	if len(data) != redriven || len(sched) != redriven {
		t.Errorf("%d retry data, %d scheduled, want %d", len(data), len(sched), redriven)
	}
	if got, _ := strconv.Atoi(redrivenCounter); got != redriven {
		t.Errorf("redriven counter %d, want %d", got, redriven)
	}
	checkDLQIndex(t, c, prefix)
}

// bulkRedriveChild redrives every dead letter of W_PREFIX, to be killed.
func bulkRedriveChild(t *testing.T) {
	opt, err := redis.ParseURL(os.Getenv("W_REDIS"))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	b, err := eventbus.New(eventbus.Config{Redis: client, Prefix: os.Getenv("W_PREFIX"), Consumer: "redriver"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Inspector().RedriveMany(context.Background(), eventbus.AllTenants(), testActor,
		eventbus.DLQSelection{Filter: &eventbus.DLQFilter{}}, true)
	t.Logf("child finished: %+v %v", res, err)
}
