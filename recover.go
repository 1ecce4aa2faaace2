package eventbus

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/backoff"
	"github.com/hyvve/eventbus/internal/rdb"
)

// claimLoop claims entries left pending by dead consumers (longer than
// ClaimIdle) every ClaimInterval, acknowledges pending entries whose body
// is gone, and removes dead consumers once they hold nothing.
func (c *Consumer) claimLoop(ctx context.Context) {
	bo := backoff.Backoff{Min: c.cfg.ClaimInterval, Max: maxReadBackoff}
	for {
		wait := c.cfg.ClaimInterval
		if err := c.claimOnce(ctx); err != nil {
			wait = bo.Next() // Redis away: back off
		} else {
			bo.Reset()
			c.removeDeadConsumers(ctx)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (c *Consumer) claimOnce(ctx context.Context) error {
	cfg := c.bus.cfg
	for _, stream := range c.streams() {
		cursor := "0-0"
		for ctx.Err() == nil {
			res, err := c.bus.rdb.AutoClaim(ctx, stream, cfg.Group, c.cfg.Name, c.cfg.ClaimIdle, cursor, cfg.BatchSize)
			if err != nil {
				if rdb.IsNoGroup(err) {
					break // set-up is under way
				}
				if ctx.Err() == nil {
					c.log.LogAttrs(ctx, slog.LevelWarn, "claim failed", slog.String("stream", stream), slog.String("error", err.Error()))
				}
				return err
			}
			if len(res.Deleted) > 0 {
				// Trimmed or deleted while pending: nothing to deliver.
				// Redis 7 already dropped them from the pending list.
				_ = c.bus.rdb.AckDeleted(ctx, stream, cfg.Group, res.Deleted)
				c.deleted.Add(int64(len(res.Deleted)))
				c.log.LogAttrs(ctx, slog.LevelWarn, "pending entries no longer exist; acknowledged",
					slog.String("stream", stream), slog.Int("count", len(res.Deleted)))
			}
			var claimed []redis.XMessage
			var ids []string
			for _, m := range res.Messages {
				if c.inflight.has(stream, m.ID) {
					continue // ours, still being handled (XAUTOCLAIM re-took it under our name)
				}
				claimed = append(claimed, m)
				ids = append(ids, m.ID)
			}
			if len(claimed) > 0 {
				// Delivery counts (XAUTOCLAIM does not return them): one
				// round trip per claimed batch. Unknown (0) if Redis fails
				// here: the entries are handled, and counted next time.
				pend, err := c.bus.rdb.Pending(ctx, stream, cfg.Group, ids)
				if err != nil && ctx.Err() == nil {
					c.log.LogAttrs(ctx, slog.LevelWarn, "could not read delivery counts of claimed entries", slog.String("error", err.Error()))
				}
				readAt := time.Now()
				for _, m := range claimed {
					c.claimed.Add(1)
					n := pend[m.ID].Deliveries
					c.log.LogAttrs(ctx, slog.LevelInfo, "claimed pending entry", slog.String("stream", stream), slog.String("stream_id", m.ID),
						slog.Int64("deliveries", n))
					c.dispatch(ctx, job{stream: stream, msg: m, claimed: true, deliveries: n, readAt: readAt})
				}
			}
			if res.Next == "0-0" || res.Next == "" {
				break
			}
			cursor = res.Next
		}
	}
	return nil
}

// removeDeadConsumers deletes consumers of the group that have been idle
// longer than DeadConsumerIdle, only when their heartbeat is missing or
// older than DeadConsumerIdle (Redis 7.0 counts idle from the last
// delivery, so a live consumer of a quiet stream looks idle) and they hold
// no pending entry.
func (c *Consumer) removeDeadConsumers(ctx context.Context) {
	cfg := c.bus.cfg
	consumers, err := c.bus.rdb.Consumers(ctx, c.bus.rdb.Keys().Main(), cfg.Group)
	if err != nil {
		return
	}
	for _, cs := range consumers {
		if cs.Name == c.cfg.Name || cs.Idle < c.cfg.DeadConsumerIdle {
			continue
		}
		removed, err := c.bus.rdb.DeleteIdleConsumer(ctx, c.bus.groupStreams(), cfg.Group, cs.Name, c.cfg.DeadConsumerIdle)
		if err == nil && removed {
			c.log.LogAttrs(ctx, slog.LevelInfo, "removed dead consumer", slog.String("consumer", cs.Name), slog.Duration("idle", cs.Idle))
		}
	}
}

// retryLoop forwards due retries to the retries stream every
// RetryPollInterval.
func (c *Consumer) retryLoop(ctx context.Context) {
	const limit = 100
	cfg := c.bus.cfg
	bo := backoff.Backoff{Min: c.cfg.RetryPollInterval, Max: maxReadBackoff}
	wait := c.cfg.RetryPollInterval
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = c.cfg.RetryPollInterval
		for ctx.Err() == nil {
			now := time.Now()
			n, err := c.bus.rdb.ForwardDueRetries(ctx, cfg.Group, now, limit, rdb.MinIDFor(now, cfg.Retention.Main))
			if err != nil {
				wait = bo.Next() // Redis away: back off
				break
			}
			bo.Reset()
			if n < limit {
				break
			}
		}
	}
}

// touchLoop resets, every third of ClaimIdle, the idle time of the entries
// this consumer is still handling (queued or running), so that a long
// local queue or a run of slow handlers is not taken for a dead consumer.
// Entries another consumer claimed meanwhile are left to it.
func (c *Consumer) touchLoop(stop <-chan struct{}) {
	t := time.NewTicker(c.cfg.ClaimIdle / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		for stream, ids := range c.inflight.snapshot() {
			if err := c.bus.rdb.TouchOwned(c.handlerCtx, stream, c.bus.cfg.Group, c.cfg.Name, ids); err != nil && c.handlerCtx.Err() == nil {
				c.log.LogAttrs(context.Background(), slog.LevelWarn, "could not refresh entries in flight", slog.String("error", err.Error()))
			}
		}
	}
}

// inflightSet is the set of entries this consumer holds (queued or
// running), by stream.
type inflightSet struct {
	mu  sync.Mutex
	ids map[string]map[string]struct{}
}

func newInflightSet() *inflightSet { return &inflightSet{ids: map[string]map[string]struct{}{}} }

func (s *inflightSet) add(stream, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.ids[stream]
	if m == nil {
		m = map[string]struct{}{}
		s.ids[stream] = m
	}
	m[id] = struct{}{}
}

func (s *inflightSet) remove(stream, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ids[stream], id)
}

func (s *inflightSet) has(stream, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.ids[stream][id]
	return ok
}

func (s *inflightSet) snapshot() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]string, len(s.ids))
	for stream, m := range s.ids {
		for id := range m {
			out[stream] = append(out[stream], id)
		}
	}
	return out
}
