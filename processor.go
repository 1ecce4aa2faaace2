package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/rdb"
)

// task is one entry being handled. It outlives its worker when a handler
// overruns its timeout: the watchdog hands it to a new worker.
type task struct {
	stream string
	part   int // the partition of its stream
	m      redis.XMessage
	raw    string // the envelope as delivered
	ev     Event
	// statusID names the event's status hash: the tenant-scoped event id
	// (rdb.ScopedID), or for a replayed copy an rdb.ReplayStatusID, so
	// that a replay never touches the original delivery's record.
	statusID string

	todo      []*subscription // handlers to run, in priority order
	next      int
	succeeded []*subscription
	failures  []failure
	statusKey string // the status hash to delete on ack, if any

	retry *retryData // set for an entry of the retries stream
	// runStart is when the current handler run started (for its
	// duration, also when the watchdog abandons it).
	runStart time.Time
}

type failure struct {
	s   *subscription
	res runResult
}

// runResult is the outcome of one handler run.
type runResult struct {
	err   error
	stack string
	// timedOut: the run overran its timeout (it returned an error after
	// its deadline, or the watchdog abandoned it).
	timedOut bool
}

// outcome classifies the run for the metrics.
func (r runResult) outcome() runOutcome {
	switch {
	case r.err == nil:
		return runSuccess
	case r.stack != "":
		return runPanic
	case r.timedOut:
		return runTimeout
	case errors.Is(r.err, ErrPermanent):
		return runPermanent
	}
	return runFailure
}

// errShutdown marks a handler run cut short by the shutdown deadline: the
// entry stays pending, nothing is recorded.
var errShutdown = errors.New("eventbus: consumer shutting down")

// process handles one entry. It reports false when the worker was
// abandoned (the task and its slot moved to another worker).
func (c *Consumer) process(w *worker, j job) bool {
	if time.Since(j.readAt) > c.cfg.ClaimIdle/2 && !c.stillOwned(j) {
		return true
	}
	var t *task
	if j.retries {
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

// entryTask decodes an entry of the main or replay stream and picks its
// handlers. Entries that need no handler run are settled here (nil).
func (c *Consumer) entryTask(j job) *task {
	cfg := c.bus.cfg
	raw, ok := j.msg.Values[rdb.FieldEvent].(string)
	if !ok {
		c.deadLetterEntry(j.part, j.stream, j.msg, "entry has no event field", entryAsJSON(j.msg))
		return nil
	}
	ev, err := decodeEvent(raw, cfg.MaxEventSize)
	if err != nil {
		c.deadLetterEntry(j.part, j.stream, j.msg, err.Error(), raw)
		return nil
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp, _ = rdb.IDTime(j.msg.ID)
	}
	t := &task{stream: j.stream, part: j.part, m: j.msg, raw: raw, ev: ev, statusID: rdb.ScopedID(ev.TenantID, ev.ID)}
	if j.stream == c.replayStream && ev.Replay != nil {
		t.statusID = rdb.ReplayStatusID(ev.Replay.JobID, t.statusID)
	}
	subs := c.matching(j.stream, ev)
	var done map[string]bool
	if j.claimed && len(subs) > 0 {
		// A redelivery: skip the handlers whose outcome is recorded. If
		// that cannot be read, the entry stays pending rather than
		// running a handler twice.
		var h map[string]string
		if !c.retryRedis(func(ctx context.Context) (err error) {
			h, err = c.bus.rdb.StatusHashIn(ctx, t.part, cfg.Group, t.statusID)
			return err
		}) {
			return nil
		}
		if len(h) > 0 {
			t.statusKey = c.bus.rdb.Keys().Partition(t.part).Status(cfg.Group, t.statusID)
			done = map[string]bool{}
			for _, s := range subs {
				var rec handlerRecord
				if json.Unmarshal([]byte(h[rdb.StatusHandlerField(s.name)]), &rec) == nil && rec.State != "" {
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
		c.ack(j.part, j.stream, j.msg.ID, t.statusKey)
		return nil
	}
	if reason, over := c.overDelivered(j); over {
		c.deadLetterPoison(t, reason)
		return nil
	}
	return t
}

// retryTask reads an entry of the retries stream: one handler, one event.
func (c *Consumer) retryTask(j job) *task {
	raw, _ := j.msg.Values[rdb.FieldRetry].(string)
	var data retryData
	if err := json.Unmarshal([]byte(raw), &data); err != nil || data.Handler == "" || data.Event == "" {
		c.deadLetterEntry(j.part, j.stream, j.msg, "unreadable retry entry", entryAsJSON(j.msg))
		return nil
	}
	t := &task{stream: j.stream, part: j.part, m: j.msg, raw: data.Event, retry: &data, statusID: data.statusID()}
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

// resume finishes a task taken over from an abandoned worker.
func (c *Consumer) resume(w *worker, t *task, s *subscription, res runResult) bool {
	res.timedOut = true // the watchdog abandoned the run past its timeout
	if !c.record(t, s, res) {
		return true
	}
	return c.continueTask(w, t)
}

// invoke runs handler s on the worker's goroutine. owner is false when the
// watchdog abandoned the worker meanwhile: the caller must drop everything
// and return.
func (c *Consumer) invoke(w *worker, t *task, s *subscription) (res runResult, owner bool) {
	start := time.Now()
	if s.met != nil && t.next == 0 && t.retry == nil && t.stream != c.replayStream {
		c.bus.met.delivered(t.ev.Timestamp, start)
	}
	t.runStart = start
	ctx := &runCtx{parent: c.handlerCtx, deadline: start.Add(s.timeout), c: c, t: t, s: s}
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
		res.timedOut = true
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

// record notes one handler's outcome. For an event with more handlers to
// run, a success is recorded in Redis at once (so a crash does not run it
// again) and the entry's idle time is reset. It reports false when the
// consumer is shutting down before that could be recorded.
func (c *Consumer) record(t *task, s *subscription, res runResult) bool {
	t.next++
	if s.met != nil {
		s.met.ran(res.outcome(), time.Since(t.runStart))
	}
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
		return c.bus.rdb.MarkHandler(ctx, cfg.Group, t.part, t.statusID, s.name, rec, cfg.Retention.Main, t.stream, c.cfg.Name, t.m.ID)
	}) {
		return false // shutting down, or another consumer claimed the entry
	}
	t.statusKey = c.bus.rdb.Keys().Partition(t.part).Status(cfg.Group, t.statusID)
	return true
}

// handlerRecord is one handler's outcome in the status hash.
type handlerRecord struct {
	State         string     `json:"state"` // succeeded, retrying, dlq
	Attempts      int        `json:"attempts"`
	LastError     string     `json:"lastError,omitempty"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
	UpdatedAt     time.Time  `json:"updatedAt"`
}

// Handler states in the status hash.
const (
	handlerSucceeded = rdb.HandlerSucceeded
	handlerRetrying  = rdb.HandlerRetrying
	handlerDLQ       = rdb.HandlerDLQ
)

// matching returns the subscriptions for ev in priority order. Replayed
// copies go only to the handlers the replay targets, in the group it
// targets: a copy for another group matches nothing here (it is
// acknowledged without a handler run). A copy without a group (written
// before replays had one) is for every group.
func (c *Consumer) matching(stream string, ev Event) []*subscription {
	replay := stream == c.replayStream && ev.Replay != nil
	if replay && ev.Replay.Group != "" && ev.Replay.Group != c.bus.cfg.Group {
		return nil
	}
	var out []*subscription
	for _, s := range c.subs {
		if !s.matches(ev.Type, ev.TenantID) {
			continue
		}
		if replay && len(ev.Replay.Handlers) > 0 && !slices.Contains(ev.Replay.Handlers, s.name) {
			continue
		}
		out = append(out, s)
	}
	return out
}

func (c *Consumer) subscription(name string) *subscription {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}
