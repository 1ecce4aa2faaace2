package eventbus

import (
	"context"
	"slices"
	"sync"
)

// call is one caller's request waiting in a coalescer.
type call[In, Out any] struct {
	in      In
	out     Out
	done    chan struct{} // closed once out is set
	promote chan struct{} // this caller must lead the queue (capacity 1)

	promoted bool // guarded by coalescer.mu: promote was sent
}

func newCall[In, Out any](in In) *call[In, Out] {
	return &call[In, Out]{in: in, done: make(chan struct{}), promote: make(chan struct{}, 1)}
}

// coalescer batches concurrent calls without a background goroutine and
// without a linger: callers queue their request; up to maxLeaders of them
// become leaders that take everything queued and send it as one batch,
// again while the queue is not empty. The first leader starts at once;
// further ones only when at least extraLeadAt requests are queued (a lead
// then passes from caller to caller until the queue is empty), so that a
// light load keeps one deep batch in flight and a backlog gets
// overlapping round trips. A leader whose own request is done
// hands the lead to the oldest waiting caller, so no caller serves others
// for long. send must set out and close done of every call it is given.
type coalescer[In, Out any] struct {
	maxLeaders  int
	extraLeadAt int // queued requests needed to start a leader beyond the first
	maxBatch    int
	send        func(ctx context.Context, calls []*call[In, Out])

	mu      sync.Mutex
	queue   []*call[In, Out]
	leaders int
}

// do queues req and returns when it was sent (req.out holds the outcome),
// or with ctx's error if ctx ended while req was still queued (then
// nothing was sent).
func (c *coalescer[In, Out]) do(ctx context.Context, req *call[In, Out]) error {
	c.mu.Lock()
	c.queue = append(c.queue, req)
	lead := c.leaders == 0 || c.leaders < c.maxLeaders && len(c.queue) >= c.extraLeadAt
	if lead {
		c.leaders++
	}
	c.mu.Unlock()
	if lead {
		c.lead(ctx, req)
	}
	for {
		select {
		case <-req.done:
			c.keepLead(ctx, req)
			return nil
		case <-req.promote:
			c.lead(ctx, req)
		case <-ctx.Done():
			c.mu.Lock()
			if i := slices.Index(c.queue, req); i >= 0 {
				c.queue = slices.Delete(c.queue, i, i+1)
				if req.promoted {
					// The lead came to this caller: pass it on.
					c.handOffLocked()
				}
				c.mu.Unlock()
				return ctx.Err()
			}
			c.mu.Unlock()
			// Already taken by a leader (or promoted): wait for the
			// outcome, which go-redis's timeouts bound.
			select {
			case <-req.done:
				c.keepLead(context.WithoutCancel(ctx), req)
				return nil
			case <-req.promote:
				c.lead(context.WithoutCancel(ctx), req)
				<-req.done
				return nil
			}
		}
	}
}

// keepLead honours a promotion that arrived while req was being sent by
// another leader: the lead must not be lost, so it is passed on.
// Promotions only target queued requests, so once req is done any
// promotion is already buffered.
func (c *coalescer[In, Out]) keepLead(ctx context.Context, req *call[In, Out]) {
	select {
	case <-req.promote:
		c.lead(ctx, req) // req is done: lead hands off at once
	default:
	}
}

// lead sends queued batches until own is done, then hands the lead on (or
// gives it up when the queue is empty).
func (c *coalescer[In, Out]) lead(ctx context.Context, own *call[In, Out]) {
	// Other callers' requests must not fail because this caller's context
	// ends.
	sendCtx := context.WithoutCancel(ctx)
	for {
		c.mu.Lock()
		select {
		case <-own.done:
			c.handOffLocked()
			c.mu.Unlock()
			return
		default:
		}
		if len(c.queue) == 0 {
			c.leaders--
			c.mu.Unlock()
			return
		}
		n := min(len(c.queue), c.maxBatch)
		batch := slices.Clone(c.queue[:n])
		c.queue = slices.Delete(c.queue, 0, n)
		c.mu.Unlock()
		c.send(sendCtx, batch)
	}
}

// handOffLocked gives up one lead: to the oldest queued caller that is not
// leading yet, or, when there is none, by counting one leader less. The
// caller holds c.mu.
func (c *coalescer[In, Out]) handOffLocked() {
	for _, r := range c.queue {
		if !r.promoted {
			r.promoted = true
			r.promote <- struct{}{} // capacity 1, sent at most once
			return
		}
	}
	c.leaders--
}
