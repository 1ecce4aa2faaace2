package eventbus

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"github.com/hyvve/eventbus/internal/backoff"
	"github.com/hyvve/eventbus/internal/rdb"
)

// readLoop reads new entries of streams (one of readSets) while there is
// capacity. The readers of several sets share the capacity: each reads at
// most what is free when it sends its read.
//
// After a failed read it backs off from 100 ms up to maxReadLoopBackoff,
// not further: the reader must resume soon after Redis (on a Redis
// Cluster, the node of its partition, or the replica promoted in its
// place) answers again, however long the outage. That is at most two
// reads a second per reader against a dead Redis, and fewer still reach
// it: while the breaker is open (three failures in a row) the reads are
// refused without a round trip, and the breaker itself lets one call a
// cool-down through.
func (c *Consumer) readLoop(ctx context.Context, streams []string) {
	cfg := c.bus.cfg
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: maxReadLoopBackoff}
	var failures int                 // reads failed in a row
	var failedAt, loggedAt time.Time // first failure of the run; last warning
	for ctx.Err() == nil {
		// Wait for at least one free slot, then read no more than fits.
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		free := 1 + cap(c.sem) - len(c.sem)
		<-c.sem
		res, err := c.bus.rdb.ReadGroup(ctx, cfg.Group, c.cfg.Name, streams, min(cfg.BatchSize, free), cfg.Block)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if rdb.IsNoGroup(err) {
				if serr := c.bus.SetUp(ctx); serr == nil {
					continue
				}
			}
			now := time.Now()
			if failures == 0 {
				failedAt = now
			}
			failures++
			if failures == 1 || now.Sub(loggedAt) >= readFailLogEvery {
				// One warning per outage and then one per interval: the
				// loop retries every second.
				loggedAt = now
				c.log.LogAttrs(ctx, slog.LevelWarn, "read failed, backing off", slog.String("error", err.Error()), slog.Int("failures", failures))
			}
			bo.Sleep(ctx.Done())
			continue
		}
		if failures > 0 {
			c.log.LogAttrs(ctx, slog.LevelInfo, "reads resumed", slog.Int("failures", failures), slog.Duration("after", time.Since(failedAt)))
			failures = 0
		}
		bo.Reset()
		got := 0
		readAt := time.Now()
		for _, s := range res {
			gs := c.stream(s.Stream)
			for _, m := range s.Messages {
				c.dispatch(ctx, job{stream: s.Stream, part: gs.part, retries: gs.retries, msg: m, readAt: readAt})
			}
			got += len(s.Messages)
		}
		if got <= lightRead {
			// Light load: let the workers start on what was just handed
			// over before this goroutine spends its time slice sending
			// the next XREADGROUP (p50 publish-to-handler at 2,000/s:
			// about 80 -> 60 µs). Full reads go straight on.
			runtime.Gosched()
		}
	}
}

const (
	// lightRead is the largest read after which the read loop yields to
	// the workers.
	lightRead = 4
	// maxReadLoopBackoff is the longest wait of a read loop after a failed
	// read (see readLoop).
	maxReadLoopBackoff = time.Second
	// readFailLogEvery is the least time between two warnings of a read
	// loop whose reads keep failing.
	readFailLogEvery = 30 * time.Second
)

// dispatch hands one entry to a worker once a slot is free.
func (c *Consumer) dispatch(ctx context.Context, j job) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return // left pending: claimed later by a live consumer
	}
	c.inflight.add(j.stream, j.msg.ID)
	c.work <- j // never blocks: the channel holds as many as there are tokens
}
