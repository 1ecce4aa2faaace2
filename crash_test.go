package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

func sharedURL() string {
	if u := os.Getenv(redistest.SharedURLEnv); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379"
}

func TestKilledConsumerLosesNothingAndCompletedHandlersDoNotRunAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("kills consumer processes and waits for recovery: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	const n = 1500
	ids := publishN(t, b, n, "approval.item.approved")

	victim := startWorker(t, sharedURL(), prefix, "victim", "W_SLEEP_MS=2")
	runs := prefix + ":runs"
	waitFor(t, 30*time.Second, "the victim to be busy", func() bool { return c.HLen(ctx, runs).Val() >= 200 })
	victim.kill()

	// Right after the kill (claims wait 2 s of idleness): what did the
	// victim hold, and which of its handlers had recorded success?
	main := testKeys(prefix).Main()
	held := map[string]bool{} // stream ids pending at the victim
	for _, p := range c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: main, Group: eventbus.DefaultGroup, Start: "-", End: "+", Count: 1000, Consumer: "victim"}).Val() {
		held[p.ID] = true
	}
	if len(held) == 0 {
		t.Fatal("the victim held no pending entries when killed: the test proves nothing")
	}
	byStream := map[string]string{} // stream id -> event id
	for _, m := range c.XRange(ctx, main, "-", "+").Val() {
		var ev struct{ ID string }
		json.Unmarshal([]byte(m.Values[rdb.FieldEvent].(string)), &ev)
		byStream[m.ID] = ev.ID
	}
	heldEvents := map[string]bool{}
	doneAtKill := map[string]bool{} // event|handler recorded as succeeded
	for sid := range held {
		id := byStream[sid]
		heldEvents[id] = true
		for field, v := range c.HGetAll(ctx, testKeys(prefix).Status(eventbus.DefaultGroup, rdb.ScopedID("t1", id))).Val() {
			if h, ok := strings.CutPrefix(field, rdb.StatusHandlerPrefix); ok && strings.Contains(v, `"succeeded"`) {
				doneAtKill[id+"|"+h] = true
			}
		}
	}
	runsAtKill := c.HGetAll(ctx, runs).Val()

	startWorker(t, sharedURL(), prefix, "survivor-1")
	startWorker(t, sharedURL(), prefix, "survivor-2")
	waitFor(t, 60*time.Second, "every event handled by both handlers", func() bool { return c.HLen(ctx, runs).Val() == 2*n })
	waitFor(t, 30*time.Second, "nothing pending", func() bool { return pendingCount(t, c, main, eventbus.DefaultGroup) == 0 })

	final := c.HGetAll(ctx, runs).Val()
	rerun := 0
	for _, id := range ids {
		for _, h := range []string{"a", "b"} {
			key := id + "|" + h
			got, _ := strconv.Atoi(final[key])
			switch {
			case got == 0:
				t.Errorf("event %s handler %s never ran: lost", id, h)
			case got > 1 && !heldEvents[id]:
				t.Errorf("event %s handler %s ran %d times but was not in flight at the kill", id, h, got)
			case got > 1 && doneAtKill[key]:
				t.Errorf("event %s handler %s ran again although its success was recorded", id, h)
			case got > 1:
				before, _ := strconv.Atoi(runsAtKill[key])
				if before != 1 {
					t.Errorf("event %s handler %s: %d runs before the kill, %d after", id, h, before, got)
				}
				rerun++
			}
		}
	}
	t.Logf("victim held %d entries (%d with a recorded handler success); %d handler runs repeated", len(held), len(doneAtKill), rerun)
}

func TestScheduledRetrySurvivesRestartOfEveryProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts every process and Redis around a scheduled retry: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	const delay = 3 * time.Second
	env := []string{"W_FLAKY=1", "W_RETRY_MS=" + strconv.Itoa(int(delay.Milliseconds()))}
	w := startWorker(t, sharedURL(), prefix, "first", env...)
	p, err := b.Publish(ctx, approved("t1"))
	if err != nil {
		t.Fatal(err)
	}
	schedule := testKeys(prefix).RetrySchedule(eventbus.DefaultGroup)
	waitFor(t, 10*time.Second, "the retry scheduled", func() bool { return c.ZCard(ctx, schedule).Val() == 1 })
	firstRun, _ := strconv.ParseInt(c.LIndex(ctx, prefix+":times:"+p.ID, -1).Val(), 10, 64)
	w.kill()

	startWorker(t, sharedURL(), prefix, "second", env...)
	runs := prefix + ":runs"
	waitFor(t, 15*time.Second, "the retry to run", func() bool { return c.HGet(ctx, runs, p.ID+"|flaky").Val() == "2" })
	times := c.LRange(ctx, prefix+":times:"+p.ID, 0, -1).Val()
	retryAt, _ := strconv.ParseInt(times[len(times)-1], 10, 64)
	late := time.Duration(retryAt-firstRun)*time.Millisecond - delay
	// The window covers starting a second process on a loaded machine.
	if late < 0 || late > 3*time.Second {
		t.Errorf("retry ran %v after its due time, want on time (within 3 s)", late)
	}
	if a, b := c.HGet(ctx, runs, p.ID+"|a").Val(), c.HGet(ctx, runs, p.ID+"|b").Val(); a != "1" || b != "1" {
		t.Errorf("handlers a and b ran %s and %s times, want once each", a, b)
	}
	waitFor(t, 5*time.Second, "status COMPLETED", func() bool {
		st, err := b.Status(ctx, "", p.ID)
		return err == nil && st.State == eventbus.StateCompleted
	})
}

func TestConsumersRideOutARedisRestartWithAOF(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts its own Redis with AOF under consumers: slow; run without -short")
	}
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	c := failFastClient(t, srv.Addr())
	b := fastBus(t, c, "aof", nil)
	ctx := context.Background()
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	cons := fastConsumer(t, b, nil)
	runs := newCounter()
	mustHandle(t, cons, "h", "*", func(_ context.Context, ev eventbus.Event) error { runs.add(ev.ID); return nil })
	runConsumer(t, cons)

	// Publish steadily; remember every event whose publish was acknowledged.
	var mu sync.Mutex
	var published []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p, err := b.Publish(ctx, approved("t1"))
			if err == nil {
				mu.Lock()
				published = append(published, p.ID)
				mu.Unlock()
			} else if !errors.Is(err, eventbus.ErrUnavailable) && !errors.Is(err, eventbus.ErrOutcomeUnknown) {
				t.Errorf("publish: %v", err)
				return
			} else {
				time.Sleep(20 * time.Millisecond) // Redis is down: pace the retries
			}
		}
	})
	waitFor(t, 10*time.Second, "events flowing", func() bool { return runs.distinct() >= 200 })
	srv.Stop() // a crash: only the AOF survives
	srv.Restart()
	waitFor(t, 30*time.Second, "events flowing again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(published) > 0 && runs.get(published[len(published)-1]) > 0
	})
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	waitFor(t, 30*time.Second, "every acknowledged publish handled", func() bool {
		for _, id := range published {
			if runs.get(id) == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("%d events published across the restart, all handled", len(published))
}
