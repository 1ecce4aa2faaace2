package eventbus

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCoalescerServesEveryone: many callers, some cancelling at random,
// with a slow sender: every caller returns, every request not cancelled is
// sent exactly once, cancelled ones are never sent, and batches form.
func TestCoalescerServesEveryone(t *testing.T) {
	for _, leaders := range []int{1, 2, 4} {
		var sent, batches atomic.Int64
		seen := sync.Map{}
		c := &coalescer[int, int]{maxLeaders: leaders, maxBatch: 16, send: func(_ context.Context, reqs []*call[int, int]) {
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
		var cancelled atomic.Int64
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
				if err := c.do(ctx, req); err != nil {
					cancelled.Add(1)
					if _, ok := seen.Load(req); ok {
						t.Errorf("cancelled request was sent")
					}
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

// TestCoalescerLoneCallerNotDelayed: a single caller is sent at once.
func TestCoalescerLoneCallerNotDelayed(t *testing.T) {
	var batches int
	c := &coalescer[int, int]{maxLeaders: 2, maxBatch: 16, send: func(_ context.Context, reqs []*call[int, int]) {
		batches++
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
	if batches != 100 {
		t.Errorf("%d batches for 100 sequential calls", batches)
	}
}
