package eventbus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// runCtx is the context of one handler run. Its deadline is enforced by
// the watchdog rather than a timer per run, and its Done channel is made
// only if the handler asks for it: the common, quick handler costs
// neither. It expires at most one watchdog interval after the deadline.
//
// It answers Value(deliveryKey{}) with itself, and DeliveryFromContext
// builds the Delivery from its task and subscription only when asked: a
// run whose middleware does not ask costs nothing, and one that does costs
// no allocation.
type runCtx struct {
	parent   context.Context
	deadline time.Time
	// The run, for DeliveryFromContext.
	c *Consumer
	t *task
	s *subscription

	mu   sync.Mutex
	done chan struct{}
	err  error
}

func (r *runCtx) Deadline() (time.Time, bool) { return r.deadline, true }

func (r *runCtx) Value(key any) any {
	if _, ok := key.(deliveryKey); ok {
		return r
	}
	return r.parent.Value(key)
}

func (r *runCtx) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		r.done = make(chan struct{})
		if r.err != nil {
			close(r.done)
		}
	}
	return r.done
}

func (r *runCtx) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// expire ends the context with err (once) and reports whether it was
// still live.
func (r *runCtx) expire(err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return false
	}
	r.err = err
	if r.done != nil {
		close(r.done)
	}
	return true
}

// watchdog checks running handlers every few milliseconds. A handler past
// its timeout has its context expired; if it is still running one more
// interval later (it ignores its context), its worker is abandoned: the
// worker's task goes on in a new worker with a timeout failure for that
// handler, and the stuck goroutine exits whenever its handler returns.
// Once the shutdown deadline cancelled the handlers' context, running
// handlers are told at once and abandoned a tick later, their entries
// left pending.
func (c *Consumer) watchdog(stop <-chan struct{}) {
	interval := watchdogInterval(c.subs)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		now := time.Now()
		shutdown := c.handlerCtx.Err() != nil
		c.wmu.Lock()
		var stuck []*worker
		for w := range c.workerSet {
			w.mu.Lock()
			if r := w.run; r != nil && !w.abandoned {
				switch {
				case shutdown:
					if !r.expire(context.Canceled) {
						w.abandoned = true
						stuck = append(stuck, w)
					}
				case now.After(r.deadline):
					if !r.expire(context.DeadlineExceeded) && now.After(r.deadline.Add(2*interval)) {
						w.abandoned = true
						stuck = append(stuck, w)
					}
				}
			}
			w.mu.Unlock()
		}
		for _, w := range stuck {
			delete(c.workerSet, w)
		}
		c.wmu.Unlock()
		for _, w := range stuck {
			if shutdown {
				// The entry stays pending for other consumers.
				c.workers.Done()
				continue
			}
			c.log.LogAttrs(context.Background(), slog.LevelError, "handler ignored its timeout; abandoned",
				slog.String("handler", w.sub.name), slog.String("event_id", w.task.ev.ID), slog.Duration("timeout", w.sub.timeout))
			c.startWorker(w.task, w.sub, runResult{err: fmt.Errorf("handler %s timed out after %v", w.sub.name, w.sub.timeout)})
			c.workers.Done() // the stuck goroutine no longer counts
		}
	}
}

// watchdogInterval: a tenth of the shortest handler timeout, within
// [5 ms, 1 s].
func watchdogInterval(subs []*subscription) time.Duration {
	d := time.Second
	for _, s := range subs {
		d = min(d, s.timeout/10)
	}
	return max(d, 5*time.Millisecond)
}
