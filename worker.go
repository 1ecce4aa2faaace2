package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/rdb"
)

// errShutdown marks a handler run cut short by the shutdown deadline: the
// entry stays pending, nothing is recorded.
var errShutdown = errors.New("eventbus: consumer shutting down")

// runResult is the outcome of one handler run.
type runResult struct {
	err   error
	stack string
}

// task is one entry being handled. It outlives its worker when a handler
// overruns its timeout: the watchdog hands it to a new worker.
type task struct {
	stream string
	m      redis.XMessage
	raw    string // the envelope as delivered
	ev     Event
	// statusID names the event's status hash: the tenant-scoped event id
	// (rdb.ScopedID), or for a replayed copy "replay:<job>:<scoped id>", so
	// that a replay never touches the original delivery's record.
	statusID string

	todo      []*subscription // handlers to run, in priority order
	next      int
	succeeded []*subscription
	failures  []failure
	statusKey string // the status hash to delete on ack, if any

	retry *retryData // set for an entry of the retries stream
}

type failure struct {
	s   *subscription
	res runResult
}

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

// runCtx is the context of one handler run. Its deadline is enforced by
// the watchdog rather than a timer per run, and its Done channel is made
// only if the handler asks for it: the common, quick handler costs
// neither. It expires at most one watchdog interval after the deadline.
type runCtx struct {
	parent   context.Context
	deadline time.Time

	mu   sync.Mutex
	done chan struct{}
	err  error
}

func (r *runCtx) Deadline() (time.Time, bool) { return r.deadline, true }
func (r *runCtx) Value(key any) any           { return r.parent.Value(key) }

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

// invoke runs handler s on the worker's goroutine. owner is false when the
// watchdog abandoned the worker meanwhile: the caller must drop everything
// and return.
func (c *Consumer) invoke(w *worker, t *task, s *subscription) (res runResult, owner bool) {
	ctx := &runCtx{parent: c.handlerCtx, deadline: time.Now().Add(s.timeout)}
	if c.handlerCtx.Err() != nil {
		ctx.err = c.handlerCtx.Err()
	}
	w.mu.Lock()
	w.run, w.task, w.sub = ctx, t, s
	w.mu.Unlock()
	res = callHandler(ctx, s.handler, t.ev)
	w.mu.Lock()
	abandoned := w.abandoned
	w.run = nil
	w.mu.Unlock()
	if abandoned {
		return res, false
	}
	switch {
	case c.handlerCtx.Err() != nil && res.err != nil:
		res.err = errShutdown
	case res.err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		res.err = fmt.Errorf("handler %s timed out after %v: %w", s.name, s.timeout, res.err)
	}
	return res, true
}

// callHandler runs h, turning a panic into an error with its stack.
func callHandler(ctx context.Context, h Handler, ev Event) (res runResult) {
	defer func() {
		if r := recover(); r != nil {
			res = runResult{err: fmt.Errorf("panic: %v", r), stack: string(debug.Stack())}
		}
	}()
	return runResult{err: h.Handle(ctx, ev)}
}

// process handles one entry. It reports false when the worker was
// abandoned (the task and its slot moved to another worker).
func (c *Consumer) process(w *worker, j job) bool {
	if time.Since(j.readAt) > c.cfg.ClaimIdle/2 && !c.stillOwned(j) {
		return true
	}
	var t *task
	if j.stream == c.retryStream {
		t = c.retryTask(j)
	} else {
		t = c.entryTask(j)
	}
	if t == nil {
		return true // settled without a handler run
	}
	return c.continueTask(w, t)
}

// stillOwned checks, for an entry that waited long since it was read (a
// long local queue, or this process was paused, e.g. SIGSTOP or a VM
// freeze), that it is still pending at this consumer before any handler
// runs: another consumer may have claimed it after ClaimIdle and already
// handled it. Entries read recently skip the check (no extra round trip on
// the hot path).
//
// The remaining window: a pause that begins after this check (or after
// the read, for an entry younger than ClaimIdle/2) and lasts past
// ClaimIdle lets another consumer claim and run the entry while this one
// runs it too; the outcome is then recorded once (settling checks
// ownership), but the handler may run twice. Handlers must stay
// idempotent: delivery is at least once.
func (c *Consumer) stillOwned(j job) bool {
	var p map[string]rdb.PendingEntry
	if !c.retryRedis(func(ctx context.Context) (err error) {
		p, err = c.bus.rdb.Pending(ctx, j.stream, c.bus.cfg.Group, []string{j.msg.ID})
		return err
	}) {
		return false // shutting down: left pending
	}
	if owner := p[j.msg.ID].Consumer; owner != c.cfg.Name {
		c.log.LogAttrs(context.Background(), slog.LevelInfo, "entry taken over by another consumer while this one waited; not run",
			slog.String("stream", j.stream), slog.String("stream_id", j.msg.ID), slog.String("owner", owner),
			slog.Duration("waited", time.Since(j.readAt)))
		return false
	}
	return true
}

// overDelivered reports whether a claimed entry has been delivered more
// than MaxDeliveries times, and the dead-letter reason.
func (c *Consumer) overDelivered(j job) (string, bool) {
	if !j.claimed || c.cfg.MaxDeliveries < 0 || j.deliveries <= int64(c.cfg.MaxDeliveries) {
		return "", false
	}
	return fmt.Sprintf("delivered %d times without an outcome (consumer crash or hang)", j.deliveries-1), true
}

// resume finishes a task taken over from an abandoned worker.
func (c *Consumer) resume(w *worker, t *task, s *subscription, res runResult) bool {
	if !c.record(t, s, res) {
		return true
	}
	return c.continueTask(w, t)
}

// continueTask runs the task's remaining handlers, then settles it.
func (c *Consumer) continueTask(w *worker, t *task) bool {
	for t.next < len(t.todo) {
		s := t.todo[t.next]
		res, owner := c.invoke(w, t, s)
		if !owner {
			return false
		}
		if errors.Is(res.err, errShutdown) {
			return true // left pending
		}
		if !c.record(t, s, res) {
			return true // shutting down: left pending
		}
	}
	c.finish(t)
	return true
}

// entryTask decodes an entry of the main or replay stream and picks its
// handlers. Entries that need no handler run are settled here (nil).
func (c *Consumer) entryTask(j job) *task {
	cfg := c.bus.cfg
	raw, ok := j.msg.Values["event"].(string)
	if !ok {
		c.deadLetterEntry(j.stream, j.msg, "entry has no event field", entryAsJSON(j.msg))
		return nil
	}
	ev, err := decodeEvent(raw, cfg.MaxEventSize)
	if err != nil {
		c.deadLetterEntry(j.stream, j.msg, err.Error(), raw)
		return nil
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp, _ = rdb.IDTime(j.msg.ID)
	}
	t := &task{stream: j.stream, m: j.msg, raw: raw, ev: ev, statusID: rdb.ScopedID(ev.TenantID, ev.ID)}
	if j.stream == c.replayStream && ev.Replay != nil {
		t.statusID = "replay:" + ev.Replay.JobID + ":" + t.statusID
	}
	subs := c.matching(j.stream, ev)
	var done map[string]bool
	if j.claimed && len(subs) > 0 {
		// A redelivery: skip the handlers whose outcome is recorded. If
		// that cannot be read, the entry stays pending rather than
		// running a handler twice.
		var h map[string]string
		if !c.retryRedis(func(ctx context.Context) (err error) {
			h, err = c.bus.rdb.StatusHash(ctx, cfg.Group, t.statusID)
			return err
		}) {
			return nil
		}
		if len(h) > 0 {
			t.statusKey = c.bus.rdb.Keys().Status(cfg.Group, t.statusID)
			done = map[string]bool{}
			for _, s := range subs {
				var rec handlerRecord
				if json.Unmarshal([]byte(h["h:"+s.name]), &rec) == nil && rec.State != "" {
					done[s.name] = true
				}
			}
		}
	}
	for _, s := range subs {
		if !done[s.name] {
			t.todo = append(t.todo, s)
		}
	}
	if len(t.todo) == 0 {
		c.ack(j.stream, j.msg.ID, t.statusKey)
		return nil
	}
	if reason, over := c.overDelivered(j); over {
		c.deadLetterPoison(t, reason)
		return nil
	}
	return t
}

// deadLetterPoison sends an entry that kept killing (or hanging) its
// consumers to the DLQ, acknowledged in the same step: one DLQ entry that
// names every handler still to run (the first was running when its
// consumers died), each marked dead-lettered in the status.
func (c *Consumer) deadLetterPoison(t *task, reason string) {
	cfg := c.bus.cfg
	now := time.Now().UTC()
	args := rdb.SettleArgs{
		Stream: t.stream, Group: cfg.Group, Consumer: c.cfg.Name, EntryID: t.m.ID, EventID: t.statusID, EventStreamID: t.m.ID,
		Type: t.ev.Type, Tenant: t.ev.TenantID, OpenTTL: cfg.Retention.Main, ResolvedTTL: c.cfg.StatusTTL,
		DLQMinID: rdb.MinIDFor(now, cfg.Retention.DLQ),
	}
	names := make([]string, len(t.todo))
	for i, s := range t.todo {
		names[i] = s.name
	}
	errs := []AttemptError{{Attempt: 1, At: now, Message: reason}}
	rec, _ := json.Marshal(handlerRecord{State: handlerDLQ, Attempts: 1, LastError: reason, UpdatedAt: now})
	meta, _ := json.Marshal(DeadLetter{
		EventID: t.ev.ID, Type: t.ev.Type, TenantID: t.ev.TenantID, Handler: names[0], Handlers: names,
		Group: cfg.Group, Stream: t.stream, OriginalStreamID: t.m.ID,
		Attempts: 1, Errors: errs, MovedAt: now, Reason: reason,
	})
	args.Ops = append(args.Ops, rdb.SettleOp{Kind: "dlq", Handler: names[0], Record: rec, Payload: t.raw, Meta: meta})
	for _, name := range names[1:] {
		// The status record only: the one DLQ entry above covers them.
		args.Ops = append(args.Ops, rdb.SettleOp{Kind: "done", Handler: name, Record: rec})
	}
	c.settle(args, t.ev.ID)
}

// retryTask reads an entry of the retries stream: one handler, one event.
func (c *Consumer) retryTask(j job) *task {
	raw, _ := j.msg.Values["retry"].(string)
	var data retryData
	if err := json.Unmarshal([]byte(raw), &data); err != nil || data.Handler == "" || data.Event == "" {
		c.deadLetterEntry(j.stream, j.msg, "unreadable retry entry", entryAsJSON(j.msg))
		return nil
	}
	t := &task{stream: j.stream, m: j.msg, raw: data.Event, retry: &data, statusID: data.statusID()}
	now := time.Now().UTC()
	if reason, over := c.overDelivered(j); over {
		data.Errors = append(data.Errors, AttemptError{Attempt: data.Attempt, At: now, Message: reason})
		c.settle(c.retrySettleArgs(t, c.dlqOp(data, reason, true)), data.EventID)
		return nil
	}
	s := c.subscription(data.Handler)
	if s == nil {
		c.handlerMissing(t, data, now)
		return nil
	}
	ev, err := decodeEvent(data.Event, 0)
	if err != nil {
		data.Errors = append(data.Errors, AttemptError{Attempt: data.Attempt, At: now, Message: err.Error()})
		c.settle(c.retrySettleArgs(t, c.dlqOp(data, err.Error(), true)), data.EventID)
		return nil
	}
	t.ev = ev
	t.todo = []*subscription{s}
	return t
}

// handlerMissing passes a due retry whose handler this consumer does not
// have back to the schedule, due again shortly, so that a consumer of the
// group that has the handler reads it. Past UnknownHandlerTimeout (since
// the first pass-back), it goes to the DLQ, but only when no live
// consumer of the group (by the heartbeat registry) has the handler.
func (c *Consumer) handlerMissing(t *task, data retryData, now time.Time) {
	if data.WaitingSince == nil {
		data.WaitingSince = &now
	}
	if now.Sub(*data.WaitingSince) >= c.cfg.UnknownHandlerTimeout {
		var live []rdb.ConsumerBeat
		if !c.retryRedis(func(ctx context.Context) (err error) {
			live, err = c.bus.rdb.LiveConsumers(ctx, c.bus.cfg.Group, c.cfg.DeadConsumerIdle)
			return err
		}) {
			return // left pending
		}
		if !slices.ContainsFunc(live, func(b rdb.ConsumerBeat) bool { return slices.Contains(b.Handlers, data.Handler) }) {
			reason := fmt.Sprintf("no consumer of the group has handler %s", data.Handler)
			data.Errors = append(data.Errors, AttemptError{Attempt: data.Attempt, At: now, Message: reason})
			c.settle(c.retrySettleArgs(t, c.dlqOp(data, reason, true)), data.EventID)
			return
		}
	}
	due := now.Add(max(c.cfg.RetryPollInterval, minHandBackDelay))
	var last string
	if n := len(data.Errors); n > 0 {
		last = data.Errors[n-1].Message
	}
	rec, _ := json.Marshal(handlerRecord{State: handlerRetrying, Attempts: data.Attempt - 1, LastError: last, NextAttemptAt: &due, UpdatedAt: now})
	payload, _ := json.Marshal(data)
	c.log.LogAttrs(context.Background(), slog.LevelInfo, "retry for a handler this consumer does not have; handed back for another consumer",
		slog.String("handler", data.Handler), slog.String("event_id", data.EventID), slog.Time("waiting_since", *data.WaitingSince))
	c.settle(c.retrySettleArgs(t, rdb.SettleOp{
		Kind: "retry", Handler: data.Handler, Record: rec, Due: due,
		Member: data.Handler + "|" + data.OriginalStreamID + "|" + data.EventID, Data: payload, Flag: false,
	}), data.EventID)
}

// minHandBackDelay is the shortest delay before a retry handed back by a
// consumer without its handler is due again.
const minHandBackDelay = 100 * time.Millisecond

// record notes one handler's outcome. For an event with more handlers to
// run, a success is recorded in Redis at once (so a crash does not run it
// again) and the entry's idle time is reset. It reports false when the
// consumer is shutting down before that could be recorded.
func (c *Consumer) record(t *task, s *subscription, res runResult) bool {
	t.next++
	if res.err != nil {
		c.failed.Add(1)
		t.failures = append(t.failures, failure{s, res})
		return true
	}
	c.handled.Add(1)
	t.succeeded = append(t.succeeded, s)
	if t.retry != nil || t.next == len(t.todo) {
		return true
	}
	cfg := c.bus.cfg
	rec, _ := json.Marshal(handlerRecord{State: handlerSucceeded, Attempts: 1, UpdatedAt: time.Now().UTC()})
	if !c.retryRedis(func(ctx context.Context) error {
		return c.bus.rdb.MarkHandler(ctx, cfg.Group, t.statusID, s.name, rec, cfg.Retention.Main, t.stream, c.cfg.Name, t.m.ID)
	}) {
		return false // shutting down, or another consumer claimed the entry
	}
	t.statusKey = c.bus.rdb.Keys().Status(cfg.Group, t.statusID)
	return true
}

// finish acknowledges a task whose handlers all succeeded, or records its
// failures (retries scheduled, dead letters) with the ack in one step.
func (c *Consumer) finish(t *task) {
	if d := t.retry; d != nil {
		now := time.Now().UTC()
		if len(t.failures) == 0 {
			rec, _ := json.Marshal(handlerRecord{State: handlerSucceeded, Attempts: d.Attempt, UpdatedAt: now})
			c.settle(c.retrySettleArgs(t, rdb.SettleOp{Kind: "done", Handler: d.Handler, Record: rec, Flag: true}), d.EventID)
			return
		}
		f := t.failures[0]
		data := *d
		data.WaitingSince = nil // it reached a consumer with the handler
		data.Errors = append(data.Errors, AttemptError{Attempt: data.Attempt, At: now, Message: f.res.err.Error(), Stack: f.res.stack})
		data.Attempt++
		c.settle(c.retrySettleArgs(t, c.failureOp(f.s, data, f.res.err, true)), d.EventID)
		return
	}
	if len(t.failures) == 0 {
		c.ack(t.stream, t.m.ID, t.statusKey)
		return
	}
	cfg := c.bus.cfg
	now := time.Now().UTC()
	args := rdb.SettleArgs{
		Stream: t.stream, Group: cfg.Group, Consumer: c.cfg.Name, EntryID: t.m.ID, EventID: t.statusID, EventStreamID: t.m.ID,
		Type: t.ev.Type, Tenant: t.ev.TenantID, OpenTTL: cfg.Retention.Main, ResolvedTTL: c.cfg.StatusTTL,
		DLQMinID: rdb.MinIDFor(now, cfg.Retention.DLQ),
	}
	for _, s := range t.succeeded {
		rec, _ := json.Marshal(handlerRecord{State: handlerSucceeded, Attempts: 1, UpdatedAt: now})
		args.Ops = append(args.Ops, rdb.SettleOp{Kind: "done", Handler: s.name, Record: rec})
	}
	for _, f := range t.failures {
		errs := []AttemptError{{Attempt: 1, At: now, Message: f.res.err.Error(), Stack: f.res.stack}}
		data := retryData{Event: t.raw, Handler: f.s.name, Attempt: 2, Stream: t.stream, OriginalStreamID: t.m.ID,
			EventID: t.ev.ID, Type: t.ev.Type, TenantID: t.ev.TenantID, Errors: errs}
		data.StatusID = t.statusID
		args.Ops = append(args.Ops, c.failureOp(f.s, data, f.res.err, false))
	}
	c.settle(args, t.ev.ID)
}

// retrySettleArgs settles an entry of the retries stream with op.
func (c *Consumer) retrySettleArgs(t *task, op rdb.SettleOp) rdb.SettleArgs {
	cfg := c.bus.cfg
	d := t.retry
	return rdb.SettleArgs{
		Stream: t.stream, Group: cfg.Group, Consumer: c.cfg.Name, EntryID: t.m.ID, EventID: d.statusID(), EventStreamID: d.OriginalStreamID,
		Type: d.Type, Tenant: d.TenantID, OpenTTL: cfg.Retention.Main, ResolvedTTL: c.cfg.StatusTTL,
		DLQMinID: rdb.MinIDFor(time.Now(), cfg.Retention.DLQ), Ops: []rdb.SettleOp{op},
	}
}
