package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/rdb"
)

// finish acknowledges a task whose handlers all succeeded, or records its
// failures (retries scheduled, dead letters) with the ack in one step.
func (c *Consumer) finish(t *task) {
	if d := t.retry; d != nil {
		now := time.Now().UTC()
		if len(t.failures) == 0 {
			rec, _ := json.Marshal(handlerRecord{State: handlerSucceeded, Attempts: d.Attempt, UpdatedAt: now})
			c.settle(c.retrySettleArgs(t, rdb.SettleOp{Kind: rdb.OpDone, Handler: d.Handler, Record: rec, Flag: true}), d.EventID)
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
		c.ack(t.part, t.stream, t.m.ID, t.statusKey)
		return
	}
	cfg := c.bus.cfg
	now := time.Now().UTC()
	args := rdb.SettleArgs{
		Partition: t.part, Stream: t.stream, Group: cfg.Group, Consumer: c.cfg.Name, EntryID: t.m.ID, EventID: t.statusID, EventStreamID: t.m.ID,
		Type: t.ev.Type, Tenant: t.ev.TenantID, OpenTTL: cfg.Retention.Main, ResolvedTTL: c.cfg.StatusTTL,
		DLQMinID: rdb.MinIDFor(now, cfg.Retention.DLQ),
	}
	for _, s := range t.succeeded {
		rec, _ := json.Marshal(handlerRecord{State: handlerSucceeded, Attempts: 1, UpdatedAt: now})
		args.Ops = append(args.Ops, rdb.SettleOp{Kind: rdb.OpDone, Handler: s.name, Record: rec})
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
		Partition: t.part, Stream: t.stream, Group: cfg.Group, Consumer: c.cfg.Name, EntryID: t.m.ID, EventID: d.statusID(), EventStreamID: d.OriginalStreamID,
		Type: d.Type, Tenant: d.TenantID, OpenTTL: cfg.Retention.Main, ResolvedTTL: c.cfg.StatusTTL,
		DLQMinID: rdb.MinIDFor(time.Now(), cfg.Retention.DLQ), Ops: []rdb.SettleOp{op},
	}
}

// failureOp schedules the next attempt of data.Handler, or dead-letters
// the event when the error is permanent or the retries are spent.
// data.Attempt is the attempt the retry would make; data.Errors holds
// every attempt's error so far. fromRetry tells whether an open retry is
// being resolved or continued.
func (c *Consumer) failureOp(s *subscription, data retryData, err error, fromRetry bool) rdb.SettleOp {
	policy := *c.cfg.Retry
	if s.retry != nil {
		policy = *s.retry
	}
	made := data.Attempt - 1 // attempts made so far
	if errors.Is(err, ErrPermanent) {
		return c.dlqOp(data, "permanent failure", fromRetry)
	}
	if made > len(policy.Delays) {
		return c.dlqOp(data, fmt.Sprintf("failed %d attempts", made), fromRetry)
	}
	delay := policy.Delays[made-1]
	if policy.Jitter > 0 {
		delay += time.Duration((rand.Float64()*2 - 1) * policy.Jitter * float64(delay))
	}
	due := time.Now().Add(delay).UTC()
	last := data.Errors[len(data.Errors)-1]
	rec, _ := json.Marshal(handlerRecord{State: handlerRetrying, Attempts: made, LastError: last.Message, NextAttemptAt: &due, UpdatedAt: time.Now().UTC()})
	payload, _ := json.Marshal(data)
	return rdb.SettleOp{
		Kind: rdb.OpRetry, Handler: s.name, Record: rec, Due: due,
		Member: rdb.RetryMember(data.Handler, data.OriginalStreamID, data.EventID), Data: payload, Flag: !fromRetry,
	}
}

// dlqOp dead-letters data's event for its handler.
func (c *Consumer) dlqOp(data retryData, reason string, fromRetry bool) rdb.SettleOp {
	now := time.Now().UTC()
	made := len(data.Errors)
	last := ""
	if made > 0 {
		last = data.Errors[made-1].Message
	}
	rec, _ := json.Marshal(handlerRecord{State: handlerDLQ, Attempts: made, LastError: last, UpdatedAt: now})
	meta, _ := json.Marshal(DeadLetter{
		EventID: data.EventID, Type: data.Type, TenantID: data.TenantID, Handler: data.Handler,
		Group: c.bus.cfg.Group, Stream: data.Stream, OriginalStreamID: data.OriginalStreamID,
		Attempts: made, Errors: data.Errors, MovedAt: now, Reason: reason,
		StatusID: deadLetterStatusID(data.statusID(), data.TenantID, data.EventID), Redrives: data.Redrives,
	})
	return rdb.SettleOp{Kind: rdb.OpDLQ, Handler: data.Handler, Record: rec, Payload: data.Event, Meta: meta, Flag: fromRetry}
}

// settle records a delivery's outcome for event eventID, retrying while
// Redis is away.
func (c *Consumer) settle(args rdb.SettleArgs, eventID string) {
	if !c.retryRedis(func(ctx context.Context) error { return recorded(c.bus.rdb.Settle(ctx, args)) }) {
		return // left pending (shutdown), or claimed by another consumer
	}
	c.bus.met.settled(args.Ops)
	for _, op := range args.Ops {
		if op.Kind == rdb.OpRetry || op.Kind == rdb.OpDLQ {
			c.bus.stats.failed(args.Tenant, op.Handler)
		}
		if op.Kind == rdb.OpDLQ {
			c.deadLettered.Add(1)
			c.log.LogAttrs(context.Background(), slog.LevelWarn, "event dead-lettered",
				slog.String("event_id", eventID), slog.String("status_id", args.EventID), slog.String("type", args.Type),
				slog.String("tenant_id", args.Tenant), slog.String("handler", op.Handler), slog.String("stream_id", args.EventStreamID))
		}
	}
}

// deadLetterEntry moves an entry that is not a valid event to the DLQ.
func (c *Consumer) deadLetterEntry(part int, stream string, m redis.XMessage, reason, payload string) {
	now := time.Now().UTC()
	meta, _ := json.Marshal(DeadLetter{
		Group: c.bus.cfg.Group, Stream: stream, OriginalStreamID: m.ID, Attempts: 0,
		Errors: []AttemptError{{Attempt: 0, At: now, Message: reason}}, MovedAt: now, Reason: reason,
	})
	if c.retryRedis(func(ctx context.Context) error {
		return recorded(c.bus.rdb.DeadLetterEntry(ctx, part, stream, c.bus.cfg.Group, c.cfg.Name, m.ID, payload, meta, rdb.MinIDFor(now, c.bus.cfg.Retention.DLQ)))
	}) {
		c.deadLettered.Add(1)
		c.bus.met.deadLetteredEntry()
		c.log.LogAttrs(context.Background(), slog.LevelWarn, "invalid entry dead-lettered",
			slog.String("stream_id", m.ID), slog.String("stream", stream), slog.String("reason", reason))
	}
}

// entryAsJSON renders an entry's fields for the DLQ when it has no usable
// event field.
func entryAsJSON(m redis.XMessage) string {
	b, _ := json.Marshal(m.Values)
	return string(b)
}

// recorded treats ErrNotPending from a settling step as success: the entry
// is pending nowhere, so its outcome is recorded already — by an earlier
// send of this very step whose reply was lost (go-redis's or retryRedis's
// resend), or, rarely, by another consumer that claimed and finished it
// meanwhile (then this consumer's counters and logs count it too).
func recorded(err error) error {
	if errors.Is(err, rdb.ErrNotPending) {
		return nil
	}
	return err
}
