package eventbus

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// What coalescer.do tells a caller whose context ended before its outcome
// came.
var (
	// errQueued: the request was still queued and is withdrawn; it was
	// never sent.
	errQueued = errors.New("still queued")
	// errInFlight: a leader had taken the request; it may have been
	// applied, and its outcome is not waited for.
	errInFlight = errors.New("sent, no reply in time")
)

// call is one caller's request waiting in a coalescer.
type call[In, Out any] struct {
	in       In
	out      Out
	done     chan struct{} // closed once out is set
	deadline time.Time     // the caller stops waiting then (zero: never); set before do
}

func newCall[In, Out any](in In) *call[In, Out] {
	return &call[In, Out]{in: in, done: make(chan struct{})}
}

// coalescer batches concurrent calls without a linger: callers queue their
// request and wait; up to maxLeaders leader goroutines take everything
// queued and send it as one batch, again while the queue is not empty. The
// first leader starts at once; further ones only when at least extraLeadAt
// requests are queued, so that a light load keeps one deep batch in flight
// and a backlog gets overlapping round trips.
//
// A leader is a goroutine owned by the coalescer: it stops when the queue
// is empty, and each of its sends is bounded by the Redis client's
// timeouts. Callers never run a send themselves, so a caller's wait is
// bounded by its context alone: when it ends, a queued request is
// withdrawn (never sent), and a request already taken is left to finish in
// the background. send must set out and close done of every call it is
// given.
type coalescer[In, Out any] struct {
	maxLeaders  int
	extraLeadAt int // queued requests needed to start a leader beyond the first
	maxBatch    int
	send        func(ctx context.Context, calls []*call[In, Out])
	// inline lets the caller that starts a lead send on its own goroutine
	// until its request is answered (no goroutine switch: the lone
	// caller's latency), then hands the lead to a leader goroutine if
	// requests are still queued. Only for a client that honours context
	// deadlines on its sockets (go-redis ContextTimeoutEnabled), so that
	// the send, and thus the caller's wait, ends at the deadline.
	inline bool

	mu      sync.Mutex
	queue   []*call[In, Out]
	leaders int
}

// timers recycles the timers of callers' waits: a timer per call would
// cost three allocations on the publish path.
var timers = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}}

// do queues req and waits until it was sent and answered (nil: req.out
// holds the outcome) or until ctx ends or req.deadline passes: errQueued
// when req was still queued (it is withdrawn: nothing was sent),
// errInFlight when a leader had taken it (req.out must not be read then).
// ctx's values and the earlier of its deadline and req.deadline also go to
// the send that carries req.
func (c *coalescer[In, Out]) do(ctx context.Context, req *call[In, Out]) error {
	var expired <-chan time.Time
	if !req.deadline.IsZero() {
		t := timers.Get().(*time.Timer)
		t.Reset(time.Until(req.deadline))
		defer func() { t.Stop(); timers.Put(t) }() // Go 1.23+: Stop leaves no stale tick
		expired = t.C
	}
	// The send gets the earlier deadline; ctx.Done reports ctx's own.
	if d, ok := ctx.Deadline(); ok && (req.deadline.IsZero() || d.Before(req.deadline)) {
		req.deadline = d
	}
	c.mu.Lock()
	c.queue = append(c.queue, req)
	lead := c.leaders == 0 || c.leaders < c.maxLeaders && len(c.queue) >= c.extraLeadAt
	if lead {
		c.leaders++
	}
	c.mu.Unlock()
	if lead {
		if c.inline {
			c.leadInline(context.WithoutCancel(ctx), req)
		} else {
			go c.lead(context.WithoutCancel(ctx))
		}
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
	case <-expired:
	}
	c.mu.Lock()
	i := slices.Index(c.queue, req)
	if i >= 0 {
		c.queue = slices.Delete(c.queue, i, i+1)
	}
	c.mu.Unlock()
	if i >= 0 {
		return errQueued
	}
	select {
	case <-req.done: // answered meanwhile
		return nil
	default:
		return errInFlight
	}
}

// lead sends queued batches until the queue is empty. Other callers'
// requests must not fail because the starting caller's context ends, so
// ctx carries no cancellation; each send gets the latest deadline of its
// batch (which a client with ContextTimeoutEnabled honours).
func (c *coalescer[In, Out]) lead(ctx context.Context) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.leaders--
			c.mu.Unlock()
			return
		}
		n := min(len(c.queue), c.maxBatch)
		batch := slices.Clone(c.queue[:n])
		c.queue = slices.Delete(c.queue, 0, n)
		c.mu.Unlock()
		c.sendBatch(ctx, batch)
	}
}

// leadInline is lead on the caller's goroutine: it sends queued batches
// until own is answered, then gives the lead up (queue empty) or hands it
// to a leader goroutine. When another leader took own meanwhile and the
// queue is empty, it gives the lead up and the caller waits as usual.
func (c *coalescer[In, Out]) leadInline(ctx context.Context, own *call[In, Out]) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.leaders--
			c.mu.Unlock()
			return
		}
		select {
		case <-own.done:
			c.mu.Unlock()
			go c.lead(ctx) // the lead passes on: this caller is answered
			return
		default:
		}
		n := min(len(c.queue), c.maxBatch)
		batch := slices.Clone(c.queue[:n])
		c.queue = slices.Delete(c.queue, 0, n)
		c.mu.Unlock()
		c.sendBatch(ctx, batch)
	}
}

func (c *coalescer[In, Out]) sendBatch(ctx context.Context, batch []*call[In, Out]) {
	var last time.Time
	for _, r := range batch {
		if r.deadline.IsZero() {
			c.send(ctx, batch)
			return
		}
		if r.deadline.After(last) {
			last = r.deadline
		}
	}
	ctx, cancel := context.WithDeadline(ctx, last)
	defer cancel()
	c.send(ctx, batch)
}
