package eventbus_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestReadsResumePromptlyAfterALongOutage: after Redis was down for 10 s
// (long enough for an uncapped exponential backoff to reach several
// seconds), an event published once it is back is delivered within about
// a second and a half (the read loop's backoff is capped at 1 s), not
// after the backoff the outage had grown.
func TestReadsResumePromptlyAfterALongOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("keeps Redis down for 10 s; run without -short")
	}
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always") // the group survives the restart
	c := failFastClient(t, srv.Addr())
	b := fastBus(t, c, "resume", nil)
	ctx := context.Background()
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	cons := fastConsumer(t, b, nil)
	var mu sync.Mutex
	deliveredAt := map[string]time.Time{}
	mustHandle(t, cons, "h", "*", func(_ context.Context, ev eventbus.Event) error {
		mu.Lock()
		defer mu.Unlock()
		deliveredAt[ev.ID] = time.Now()
		return nil
	})
	runConsumer(t, cons)
	delivered := func(id string) (time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		at, ok := deliveredAt[id]
		return at, ok
	}
	p, err := b.Publish(ctx, plain())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a delivery before the outage", func() bool { _, ok := delivered(p.ID); return ok })

	srv.Stop()
	time.Sleep(10 * time.Second) // the outage: the read loop backs off
	srv.Restart()
	var published time.Time
	waitFor(t, 10*time.Second, "a publish after Redis returned", func() bool {
		p, err = b.Publish(ctx, plain())
		published = time.Now()
		return err == nil
	})
	waitFor(t, 10*time.Second, "the delivery after the outage", func() bool { _, ok := delivered(p.ID); return ok })
	at, _ := delivered(p.ID)
	lag := at.Sub(published)
	t.Logf("delivered %v after the first publish acknowledged once Redis returned", lag.Round(time.Millisecond))
	if lag > 2500*time.Millisecond {
		t.Errorf("delivered %v after the publish, want within 2.5s (read backoff capped at 1s)", lag)
	}
}
