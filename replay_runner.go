package eventbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/backoff"
	"github.com/hyvve/eventbus/internal/rdb"
)

// Replay runner tuning.
const (
	// replayPollInterval is how often the runner looks for jobs to take.
	replayPollInterval = 500 * time.Millisecond
	// replayScanMax is the most active jobs one look reads.
	replayScanMax = 100
	// replayPageSize is the most main stream entries one page reads (and
	// one script writes copies of); with a rate limit, at most the rate.
	replayPageSize = 200
	// replayPageBytes bounds the copies of one page: a page of large
	// events is cut short (the rest goes in the next page).
	replayPageBytes = 4 << 20
	// replayKeepMax is the longest time between two renewals of a lease;
	// each renewal also reads the job's cancel flag.
	replayKeepMax = 250 * time.Millisecond
	// replayMaxFailures is how many consecutive errors other than Redis
	// being unavailable fail a job.
	replayMaxFailures = 10
)

// replayRunner executes replay jobs: every replayPollInterval (and at
// once when a job starts in this process) it looks for active jobs whose
// lease is free, takes a lease (at most
// Config.ReplayRunners jobs at once) and runs each job in its own
// goroutine, renewing the lease. It is owned by Bus.Run, which stops it
// with its context: run returns after every job goroutine has stopped
// (each releases its lease so that another process resumes the job at
// once).
type replayRunner struct {
	b     *Bus
	log   *slog.Logger
	slots chan struct{}

	mu      sync.Mutex
	running map[string]bool
	jobs    sync.WaitGroup
}

func newReplayRunner(b *Bus) *replayRunner {
	return &replayRunner{b: b, log: b.log, slots: make(chan struct{}, b.cfg.ReplayRunners), running: map[string]bool{}}
}

// run takes and runs jobs until ctx is cancelled.
func (r *replayRunner) run(ctx context.Context) {
	defer r.jobs.Wait()
	t := time.NewTicker(replayPollInterval)
	defer t.Stop()
	for {
		if err := r.poll(ctx); err != nil && ctx.Err() == nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "looking for replay jobs failed", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.b.replayWake:
		}
	}
}

// wakeReplayRunner tells this process's runner that a job started, so
// that it looks at once instead of at its next poll. It never blocks.
func (b *Bus) wakeReplayRunner() {
	select {
	case b.replayWake <- struct{}{}:
	default:
	}
}

// poll takes the free jobs it has room for.
func (r *replayRunner) poll(ctx context.Context) error {
	if len(r.slots) == cap(r.slots) {
		return nil
	}
	b := r.b
	ids, free, err := b.rdb.ActiveReplayJobs(ctx, replayScanMax)
	if err != nil {
		return err
	}
	for i, id := range ids {
		r.mu.Lock()
		mine := r.running[id]
		r.mu.Unlock()
		if !free[i] || mine {
			continue
		}
		select {
		case r.slots <- struct{}{}:
		default:
			return nil // full
		}
		token := newLeaseToken()
		out, err := b.rdb.ClaimReplay(ctx, id, token, b.cfg.ReplayLease, time.Now(), b.cfg.ReplayJobRetention)
		if err != nil || out != rdb.ReplayClaimed {
			<-r.slots
			if err != nil {
				return err
			}
			if out == rdb.ReplayCancelled {
				r.log.LogAttrs(ctx, slog.LevelInfo, "replay job cancelled before it ran", slog.String("job", id))
			}
			continue
		}
		r.mu.Lock()
		r.running[id] = true
		r.mu.Unlock()
		r.jobs.Go(func() {
			defer func() {
				r.mu.Lock()
				delete(r.running, id)
				r.mu.Unlock()
				<-r.slots
			}()
			r.runJob(ctx, id, token)
		})
	}
	return nil
}

// newLeaseToken returns a random lease token.
func newLeaseToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// replayExec is one job run by this process while it holds the lease.
type replayExec struct {
	r      *replayRunner
	id     string
	token  string
	log    *slog.Logger
	filter replayFilter
	info   ReplayInfo
	req    ReplayRequest
	// streams are the main streams the job reads, in order, fields the
	// job's field holding each one's cursor and cursors the saved
	// cursors; multi: a job over several partitions (a stream whose
	// cursor is end is done), else one stream with rdb.ReplayFieldCursor.
	streams []string
	fields  []string
	cursors []string
	multi   bool
	start   string // the window's first id
	end     string // the window's last id
	// cancel is closed by the lease keeper when a cancel is requested.
	cancel     chan struct{}
	cancelOnce sync.Once
	// ended is set once this runner ended the job (its lease is gone).
	ended atomic.Bool
	// release is set when the runner stops a job it may still hold the
	// lease of (its saved cursor is not where this runner left it, e.g.
	// after Redis lost its last writes in a crash): the lease is freed at
	// once, so that a runner resumes from the saved cursor without waiting
	// for the lease to expire.
	release atomic.Bool
	pace    pacer
}

// runJob runs job id under the lease held by token, until the job ends,
// the lease is lost or ctx is cancelled (then the lease is released: the
// job stays running for the next runner to resume).
func (r *replayRunner) runJob(ctx context.Context, id, token string) {
	b := r.b
	log := r.log.With(slog.String("job", id))
	jobCtx, stop := context.WithCancel(ctx)
	x := &replayExec{r: r, id: id, token: token, log: log, cancel: make(chan struct{})}
	var keeper sync.WaitGroup
	keeper.Go(func() { x.keepLease(jobCtx, stop) })
	defer func() {
		stop()
		keeper.Wait()
		if ctx.Err() != nil || x.release.Load() { // shutting down, or stopped: hand the job over now
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer cancel()
			_ = b.rdb.ReleaseReplayLease(rctx, id, token)
		}
	}()
	if err := x.load(jobCtx); err != nil {
		if jobCtx.Err() == nil {
			x.finish(jobCtx, ReplayFailed, err.Error())
		}
		return
	}
	log.LogAttrs(ctx, slog.LevelInfo, "replay job running", slog.Any("cursors", x.cursors), slog.Int("streams", len(x.streams)))
	x.loop(jobCtx)
}

// keepLease renews the lease until ctx ends; a lost lease stops the job
// (stop), a cancel request closes x.cancel.
func (x *replayExec) keepLease(ctx context.Context, stop context.CancelFunc) {
	b := x.r.b
	every := min(replayKeepMax, b.cfg.ReplayLease/4)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cancel, err := b.rdb.KeepReplayLease(ctx, x.id, x.token, b.cfg.ReplayLease)
		switch {
		case errors.Is(err, rdb.ErrLeaseLost):
			if x.ended.Load() {
				return
			}
			x.log.LogAttrs(ctx, slog.LevelWarn, "replay lease lost; the job is left to the runner that holds it")
			stop()
			return
		case err != nil:
			if ctx.Err() == nil {
				x.log.LogAttrs(ctx, slog.LevelWarn, "renewing the replay lease failed", slog.String("error", err.Error()))
			}
		case cancel:
			x.cancelOnce.Do(func() { close(x.cancel) })
		}
	}
}

// load reads the job, retrying while Redis is unavailable.
func (x *replayExec) load(ctx context.Context) error {
	b := x.r.b
	var h map[string]string
	err := x.retry(ctx, func() (err error) {
		h, err = b.rdb.ReplayJob(ctx, x.id)
		return err
	})
	if err != nil {
		return err
	}
	if len(h) == 0 {
		return errors.New("the job's record is gone")
	}
	if err := json.Unmarshal([]byte(h[rdb.ReplayFieldRequest]), &x.req); err != nil {
		return fmt.Errorf("unreadable request: %v", err)
	}
	x.start, x.end = h[rdb.ReplayFieldStart], h[rdb.ReplayFieldEnd]
	streams, fields, err := replayStreamsOf(h)
	if err != nil {
		return err
	}
	x.multi = fields != nil
	if !x.multi { // one partition: the main stream
		streams, fields = []string{b.rdb.Keys().Main()}, []string{rdb.ReplayFieldCursor}
	}
	x.streams, x.fields = streams, fields
	x.cursors = make([]string, len(fields))
	for i, f := range fields {
		x.cursors[i] = h[f]
	}
	if !rdb.ValidID(x.start) || !rdb.ValidID(x.end) {
		return fmt.Errorf("unreadable window %q to %q", x.start, x.end)
	}
	for _, c := range x.cursors {
		if c != "" && !rdb.ValidID(c) {
			return fmt.Errorf("unreadable cursor %q", c)
		}
	}
	x.filter = replayFilter{types: x.req.Types, tenant: x.req.TenantID, maxSize: b.cfg.MaxEventSize}
	x.info = ReplayInfo{JobID: x.id, Group: h[rdb.ReplayFieldGroup], Handlers: x.req.Handlers}
	x.pace = pacer{rate: float64(x.req.Rate)}
	return nil
}

// retry runs op until it succeeds, backing off on errors: while Redis is
// unavailable for as long as ctx lasts (a lost lease ends ctx), other
// errors up to replayMaxFailures times in a row.
func (x *replayExec) retry(ctx context.Context, op func() error) error {
	bo := backoff.Backoff{Min: 50 * time.Millisecond, Max: 5 * time.Second}
	failures := 0
	for {
		err := op()
		var sr *stopRetry
		if err == nil || ctx.Err() != nil || errors.As(err, &sr) {
			return err
		}
		if !errors.Is(err, ErrUnavailable) {
			if failures++; failures >= replayMaxFailures {
				return err
			}
		}
		x.log.LogAttrs(ctx, slog.LevelWarn, "replay step failed, retrying", slog.String("error", err.Error()))
		if !bo.Sleep(ctx.Done()) {
			return ctx.Err()
		}
	}
}

// loop copies page after page until the job ends or ctx ends: the
// streams one after the other, each from its cursor in stream order.
func (x *replayExec) loop(ctx context.Context) {
	b := x.r.b
	count := int64(replayPageSize)
	if x.req.Rate > 0 {
		count = int64(max(1, min(replayPageSize, x.req.Rate)))
	}
	part := 0
	for {
		select {
		case <-x.cancel:
			x.finish(ctx, ReplayCancelled, "")
			return
		default:
		}
		if ctx.Err() != nil {
			return
		}
		// A stream done (its cursor at the window's end) is skipped; the
		// last stream is read even then (its page ends the job).
		for x.multi && part < len(x.streams)-1 && x.cursors[part] == x.end {
			part++
		}
		from := x.start
		if c := x.cursors[part]; c != "" {
			from = rdb.After(c)
		}
		var msgs []redis.XMessage
		err := x.retry(ctx, func() (err error) {
			msgs, err = b.rdb.Range(ctx, x.streams[part], from, x.end, count)
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				x.finish(ctx, ReplayFailed, "reading the main stream: "+err.Error())
			}
			return
		}
		page := x.page(part, msgs, count)
		if !x.req.DryRun && !x.pace.wait(ctx, x.cancel, len(page.Copies)) {
			continue // cancelled (handled above) or stopping
		}
		page.MinID = rdb.MinIDFor(time.Now(), b.cfg.Retention.Replay)
		page.Keep = b.cfg.ReplayJobRetention
		done, ok := x.write(ctx, part, page)
		if !ok {
			return
		}
		if done {
			x.log.LogAttrs(ctx, slog.LevelInfo, "replay job completed")
			return
		}
	}
}

// page builds the page of copies of msgs (read with COUNT count from
// stream part). The page that reads a stream to the window's end is the
// job's last when the stream is its last; in a job over several
// partitions it moves the stream's cursor to the window's end (done).
func (x *replayExec) page(part int, msgs []redis.XMessage, count int64) rdb.ReplayPage {
	cur := x.cursors[part]
	p := rdb.ReplayPage{ID: x.id, Token: x.token, Cursor: x.fields[part], From: cur, To: cur}
	size := 0
	cut := false
	for _, m := range msgs {
		p.Scanned++
		p.To = m.ID
		matched, ev := x.filter.match(m)
		if !matched {
			continue
		}
		p.Matched++
		if ev == nil {
			p.Errors++
			continue
		}
		if x.req.DryRun {
			continue
		}
		info := x.info
		if x.multi {
			info.OriginalStream = x.streams[part]
		}
		c, ok := replayCopy(*ev, m.ID, info, x.r.b.cfg.MaxEventSize)
		if !ok {
			p.Errors++
			continue
		}
		p.Copies = append(p.Copies, c)
		if size += len(c); size >= replayPageBytes {
			cut = true
			break
		}
	}
	streamDone := !cut && int64(len(msgs)) < count
	if streamDone && x.multi {
		p.To = x.end
	}
	p.Last = streamDone && part == len(x.streams)-1
	return p
}

// write writes page p of stream part. done reports that the job
// completed; ok false that this runner must stop (the job ended, or is
// another runner's, or ctx ended).
func (x *replayExec) write(ctx context.Context, part int, p rdb.ReplayPage) (done, ok bool) {
	b := x.r.b
	written := 0
	err := x.retry(ctx, func() error {
		p.Now = time.Now()
		n, err := b.rdb.WriteReplayPage(ctx, p)
		written = n
		if errors.Is(err, rdb.ErrLeaseLost) || errors.Is(err, rdb.ErrCursorMoved) || errors.Is(err, rdb.ErrCancelRequested) {
			return &stopRetry{err}
		}
		return err
	})
	var sr *stopRetry
	switch {
	case err == nil:
		b.met.replayed(written)
		x.cursors[part] = p.To
		if p.Last {
			x.ended.Store(true)
		}
		return p.Last, true
	case errors.As(err, &sr) && errors.Is(err, rdb.ErrCancelRequested):
		x.finish(ctx, ReplayCancelled, "")
		return false, false
	case errors.As(err, &sr) && errors.Is(err, rdb.ErrCursorMoved):
		// An earlier send of this page went through (its reply was lost)
		// when the saved cursor is the page's end; else another runner
		// wrote the job: stop.
		h, rerr := b.rdb.ReplayJob(ctx, x.id)
		if st := h[rdb.ReplayFieldStatus]; rerr == nil && h[x.fields[part]] == p.To && (st == ReplayRunning || st == ReplayCompleted) {
			b.met.replayed(len(p.Copies)) // written by the earlier send
			x.cursors[part] = p.To
			if st == ReplayCompleted {
				x.ended.Store(true)
			}
			return st == ReplayCompleted, true
		}
		x.log.LogAttrs(ctx, slog.LevelWarn, "replay cursor is not where this runner left it (another runner, or Redis lost its last writes); stopping and handing the job over")
		x.release.Store(true)
		return false, false
	case errors.As(err, &sr):
		x.log.LogAttrs(ctx, slog.LevelWarn, "replay lease lost; the job is left to the runner that holds it")
		return false, false
	case ctx.Err() != nil:
		return false, false
	}
	x.finish(ctx, ReplayFailed, "writing copies: "+err.Error())
	return false, false
}

// stopRetry marks an error retry must not retry.
type stopRetry struct{ err error }

func (e *stopRetry) Error() string { return e.err.Error() }
func (e *stopRetry) Unwrap() error { return e.err }

// finish ends the job with status (failed: with errText).
func (x *replayExec) finish(ctx context.Context, status, errText string) {
	b := x.r.b
	err := x.retry(ctx, func() error {
		err := b.rdb.FinishReplay(ctx, x.id, x.token, status, errText, time.Now(), b.cfg.ReplayJobRetention)
		if errors.Is(err, rdb.ErrLeaseLost) {
			return &stopRetry{err}
		}
		if err == nil {
			x.ended.Store(true)
		}
		return err
	})
	level := slog.LevelInfo
	if status == ReplayFailed {
		level = slog.LevelError
	}
	if err != nil {
		x.log.LogAttrs(ctx, slog.LevelWarn, "could not end the replay job", slog.String("status", status), slog.String("error", err.Error()))
		return
	}
	x.log.LogAttrs(ctx, level, "replay job ended", slog.String("status", status), slog.String("error", errText))
}

// pacer spaces pages so that copies are written at most rate per second
// (0: no limit). A page of n copies is written once the copies before it
// have had their time: the first at once, then n/rate seconds later.
type pacer struct {
	rate float64
	next time.Time
}

// wait waits for n copies' turn; it reports false when ctx ended or a
// cancel was requested meanwhile.
func (p *pacer) wait(ctx context.Context, cancel <-chan struct{}, n int) bool {
	if p.rate <= 0 || n == 0 {
		return true
	}
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	if d := p.next.Sub(now); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		case <-cancel:
			return false
		}
	}
	p.next = p.next.Add(time.Duration(float64(n) / p.rate * float64(time.Second)))
	return true
}
