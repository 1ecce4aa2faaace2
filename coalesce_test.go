package eventbus

import (
	"context"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCoalescerServesEveryone: many callers, some cancelling at random,
// with a slow sender: every caller returns, every request not withdrawn is
// sent exactly once, withdrawn ones (errQueued) are never sent, and
// batches form.
func TestCoalescerServesEveryone(t *testing.T) {
	for _, shape := range []struct {
		leaders, extraAt int
		inline           bool
	}{{1, 0, false}, {2, 0, false}, {4, 0, false}, {3, 16, false}, {1, 0, true}, {3, 16, true}} {
		leaders := shape.leaders
		var sent, batches atomic.Int64
		seen := sync.Map{}
		c := &coalescer[int, int]{maxLeaders: leaders, extraLeadAt: shape.extraAt, maxBatch: 16, inline: shape.inline, send: func(_ context.Context, reqs []*call[int, int]) {
			batches.Add(1)
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			for _, r := range reqs {
				if _, dup := seen.LoadOrStore(r, true); dup {
					t.Errorf("request sent twice")
				}
				sent.Add(1)
				close(r.done)
			}
		}}
		const callers = 2000
		var cancelled, inFlight atomic.Int64
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				ctx := context.Background()
				if i%7 == 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(200))*time.Microsecond)
					defer cancel()
				}
				req := newCall[int, int](i)
				switch err := c.do(ctx, req); err {
				case nil:
				case errQueued:
					cancelled.Add(1)
					if _, ok := seen.Load(req); ok {
						t.Errorf("withdrawn request was sent")
					}
				case errInFlight:
					inFlight.Add(1) // taken by a leader: it is sent
				default:
					t.Errorf("do: %v", err)
				}
			})
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("leaders=%d: callers stuck", leaders)
		}
		// Requests whose callers gave up in flight may still be sending:
		// wait for the leaders to finish.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			c.mu.Lock()
			idle := c.leaders == 0
			c.mu.Unlock()
			if idle || time.Now().After(deadline) {
				break
			}
		}
		if got := sent.Load() + cancelled.Load(); got != callers {
			t.Errorf("leaders=%d: sent %d + cancelled %d != %d", leaders, sent.Load(), cancelled.Load(), callers)
		}
		if batches.Load() >= sent.Load() {
			t.Errorf("leaders=%d: %d batches for %d requests: nothing coalesced", leaders, batches.Load(), sent.Load())
		}
		c.mu.Lock()
		if c.leaders != 0 || len(c.queue) != 0 {
			t.Errorf("leaders=%d: left %d leaders, %d queued", leaders, c.leaders, len(c.queue))
		}
		c.mu.Unlock()
	}
}

// TestCoalescerExtraLeadersNeedBacklog: a second batch goes out while the
// first is in flight only once extraLeadAt requests wait, and never more
// than maxLeaders batches are in flight.
func TestCoalescerExtraLeadersNeedBacklog(t *testing.T) {
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // a failed test must not leave senders blocked
	var inFlight, most atomic.Int64
	c := &coalescer[int, int]{maxLeaders: 2, extraLeadAt: 8, maxBatch: 64, send: func(_ context.Context, reqs []*call[int, int]) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		inFlight.Add(-1)
		for _, r := range reqs {
			close(r.done)
		}
	}}
	queued := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.queue)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	var wg sync.WaitGroup
	start := func(n int) {
		for i := range n {
			wg.Go(func() {
				if err := c.do(context.Background(), newCall[int, int](i)); err != nil {
					t.Error(err)
				}
			})
		}
	}
	start(1)
	waitFor("the first batch", func() bool { return inFlight.Load() == 1 })
	start(7)
	waitFor("7 queued", func() bool { return queued() == 7 })
	if n := inFlight.Load(); n != 1 {
		t.Fatalf("%d batches in flight with 7 queued, want 1 (extraLeadAt 8)", n)
	}
	start(10)
	waitFor("a second batch", func() bool { return inFlight.Load() == 2 })
	start(20)
	waitFor("20 more queued", func() bool { return queued() >= 20 })
	unblock()
	wg.Wait()
	if m := most.Load(); m != 2 {
		t.Errorf("at most %d batches were in flight, want 2", m)
	}
}

// TestCoalescerLoneCallerNotDelayed: a single caller is sent at once.
func TestCoalescerLoneCallerNotDelayed(t *testing.T) {
	for _, inline := range []bool{false, true} {
		var batches atomic.Int64
		c := &coalescer[int, int]{maxLeaders: 3, extraLeadAt: 16, maxBatch: 16, inline: inline, send: func(_ context.Context, reqs []*call[int, int]) {
			batches.Add(1)
			for _, r := range reqs {
				close(r.done)
			}
		}}
		for i := range 100 {
			req := newCall[int, int](i)
			if err := c.do(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		}
		if n := batches.Load(); n != 100 {
			t.Errorf("inline=%v: %d batches for 100 sequential calls", inline, n)
		}
	}
}

// TestCoalescerInlineSendsOnTheCallersGoroutine: with a client that honours
// deadlines, a lone caller's request is sent on its own goroutine (no
// switch to a leader goroutine); without, on a leader goroutine.
func TestCoalescerInlineSendsOnTheCallersGoroutine(t *testing.T) {
	gid := func() string {
		b := make([]byte, 64)
		b = b[:runtime.Stack(b, false)]
		return strings.Fields(string(b))[1] // "goroutine N [running]:"
	}
	for _, inline := range []bool{false, true} {
		var sender string
		c := &coalescer[int, int]{maxLeaders: 3, extraLeadAt: 16, maxBatch: 16, inline: inline, send: func(_ context.Context, reqs []*call[int, int]) {
			sender = gid()
			for _, r := range reqs {
				close(r.done)
			}
		}}
		if err := c.do(context.Background(), newCall[int, int](0)); err != nil {
			t.Fatal(err)
		}
		if same := sender == gid(); same != inline {
			t.Errorf("inline=%v: sent on the caller's goroutine: %v", inline, same)
		}
	}
}
