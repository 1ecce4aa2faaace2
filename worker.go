package eventbus

import (
	"sync"
)

// worker runs tasks one after another; handlers run on its goroutine, so
// that the common case costs no goroutine switch. The watchdog abandons a
// worker whose handler overruns its timeout (or ignores the shutdown).
type worker struct {
	mu        sync.Mutex
	run       *runCtx // nil while no handler runs
	task      *task
	sub       *subscription
	abandoned bool
}

// startWorker starts a worker goroutine. With t set, it first finishes t
// after handler s ended with res (a task taken over from a stuck worker).
func (c *Consumer) startWorker(t *task, s *subscription, res runResult) {
	w := &worker{}
	c.wmu.Lock()
	c.workerSet[w] = struct{}{}
	c.wmu.Unlock()
	c.workers.Add(1)
	go func() {
		if t != nil {
			if !c.resume(w, t, s, res) {
				return // abandoned again: the task moved on
			}
			c.inflight.remove(t.stream, t.m.ID)
			<-c.sem
		}
		for j := range c.work {
			if !c.stopping.Load() && !c.process(w, j) {
				return
			}
			c.inflight.remove(j.stream, j.msg.ID)
			<-c.sem
		}
		c.wmu.Lock()
		delete(c.workerSet, w)
		c.wmu.Unlock()
		c.workers.Done()
	}()
}
