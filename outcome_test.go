package eventbus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// TestBusMadeIDs: the ids the bus generates carry its mark and their
// time; ids made elsewhere almost never do.
func TestBusMadeIDs(t *testing.T) {
	now := time.Now().Truncate(time.Millisecond)
	for range 1000 {
		id := newULID(now)
		got, ok := busMadeID(id)
		if !ok || !got.Equal(now) {
			t.Fatalf("busMadeID(%s) = %v, %v; want %v, true", id, got, ok, now)
		}
		if _, err := ulid.ParseStrict(id); err != nil {
			t.Fatalf("%s is not a ULID: %v", id, err)
		}
	}
	marked := 0
	for range 100_000 {
		if _, ok := busMadeID(ulid.Make().String()); ok {
			marked++
		}
	}
	if marked > 10 { // 1 in 65,536 expected: about 1.5
		t.Errorf("%d of 100000 foreign ULIDs look bus-made", marked)
	}
	for _, id := range []string{"", "order-1", "01ARZ3NDEKTSV4RRFFQ69G5FAV"[:25], "not a ulid at all, 26 ch"} {
		if _, ok := busMadeID(id); ok {
			t.Errorf("busMadeID(%q) = true", id)
		}
	}
	if verifyFrom("order-1") != "" {
		t.Error("verifyFrom of a caller id is set")
	}
	if got, want := verifyFrom(newULID(time.UnixMilli(10_000))), "8000-0"; got != want {
		t.Errorf("verifyFrom = %s, want %s (2s of skew)", got, want)
	}
}

// TestCoalescerCallerWaitIsBounded: a caller whose context ends while a
// send is stuck returns at once: errQueued (withdrawn, never sent) when its
// request was still queued, errInFlight when a leader had taken it.
func TestCoalescerCallerWaitIsBounded(t *testing.T) {
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) })
	taken := make(chan struct{}, 1)
	c := &coalescer[int, int]{maxLeaders: 1, extraLeadAt: 1, maxBatch: 1, send: func(_ context.Context, reqs []*call[int, int]) {
		taken <- struct{}{}
		<-stuck
		for _, r := range reqs {
			close(r.done)
		}
	}}
	ctx1, cancel1 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel1()
	first := make(chan error, 1)
	go func() { first <- c.do(ctx1, newCall[int, int](1)) }()
	<-taken
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if err := c.do(ctx2, newCall[int, int](2)); !errors.Is(err, errQueued) {
		t.Fatalf("queued caller: %v, want errQueued", err)
	}
	if err := <-first; !errors.Is(err, errInFlight) {
		t.Fatalf("taken caller: %v, want errInFlight", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("callers waited %v for a stuck send", d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) != 0 {
		t.Errorf("%d requests left queued", len(c.queue))
	}
}
