package eventbus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/backoff"
	"github.com/hyvve/eventbus/internal/rdb"
)

// claimLoop claims entries left pending by dead consumers (longer than
// ClaimIdle) every ClaimInterval, acknowledges pending entries whose body
// is gone, and removes dead consumers once they hold nothing. While a
// stream cannot be read (Redis, or on a Cluster its partition's master,
// away) the others are still claimed and rounds back off up to
// maxForwardBackoff.
func (c *Consumer) claimLoop(ctx context.Context) {
	bo := backoff.Backoff{Min: c.cfg.ClaimInterval, Max: max(c.cfg.ClaimInterval, maxForwardBackoff)}
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

// claimOnce runs one claim round over every stream; it returns the first
// error of a stream it could not read, after trying the others.
func (c *Consumer) claimOnce(ctx context.Context) error {
	cfg := c.bus.cfg
	var first error
	for _, gs := range c.groupStreams {
		stream := gs.name
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
				if first == nil {
					first = err
				}
				break // the next stream (another partition may answer)
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
					c.dispatch(ctx, job{stream: stream, part: gs.part, retries: gs.retries, msg: m, claimed: true, deliveries: n, readAt: readAt})
				}
			}
			if res.Next == "0-0" || res.Next == "" {
				break
			}
			cursor = res.Next
		}
	}
	return first
}

// overDelivered reports whether a claimed entry has been delivered more
// than MaxDeliveries times, and the dead-letter reason.
func (c *Consumer) overDelivered(j job) (string, bool) {
	if !j.claimed || c.cfg.MaxDeliveries < 0 || j.deliveries <= int64(c.cfg.MaxDeliveries) {
		return "", false
	}
	return fmt.Sprintf("delivered %d times without an outcome (consumer crash or hang)", j.deliveries-1), true
}

// deadLetterPoison sends an entry that kept killing (or hanging) its
// consumers to the DLQ, acknowledged in the same step: one DLQ entry that
// names every handler still to run (the first was running when its
// consumers died), each marked dead-lettered in the status.
func (c *Consumer) deadLetterPoison(t *task, reason string) {
	cfg := c.bus.cfg
	now := time.Now().UTC()
	args := rdb.SettleArgs{
		Partition: t.part, Stream: t.stream, Group: cfg.Group, Consumer: c.cfg.Name, EntryID: t.m.ID, EventID: t.statusID, EventStreamID: t.m.ID,
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
		StatusID: deadLetterStatusID(t.statusID, t.ev.TenantID, t.ev.ID),
	})
	args.Ops = append(args.Ops, rdb.SettleOp{Kind: rdb.OpDLQ, Handler: names[0], Record: rec, Payload: t.raw, Meta: meta})
	for _, name := range names[1:] {
		// The status record only: the one DLQ entry above covers them.
		args.Ops = append(args.Ops, rdb.SettleOp{Kind: rdb.OpDone, Handler: name, Record: rec})
	}
	c.settle(args, t.ev.ID)
}
