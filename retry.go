package eventbus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hyvve/eventbus/internal/rdb"
)

// DefaultRetryDelays are the delays before the three retries that follow
// a failed first attempt: 60 s, 5 min, 30 min. After the last retry fails
// the event goes to the DLQ.
var DefaultRetryDelays = []time.Duration{time.Minute, 5 * time.Minute, 30 * time.Minute}

// RetryPolicy says when a failed handler runs again.
type RetryPolicy struct {
	// Delays before each retry; len(Delays) retries follow the first
	// attempt. Empty: no retries (the first failure goes to the DLQ).
	Delays []time.Duration
	// Jitter spreads each delay by up to ±Jitter of itself (0 to 1).
	Jitter float64
}

// DefaultRetryPolicy returns 60 s, 5 min, 30 min without jitter.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{Delays: slices.Clone(DefaultRetryDelays)}
}

func (p RetryPolicy) validate() error {
	for i, d := range p.Delays {
		if d <= 0 {
			return fmt.Errorf("retry delay %d is %v: must be positive", i+1, d)
		}
	}
	if p.Jitter < 0 || p.Jitter > 1 {
		return fmt.Errorf("retry jitter %v: want 0 to 1", p.Jitter)
	}
	return nil
}

// retryData is what a scheduled retry carries to the retries stream.
type retryData struct {
	Event            string         `json:"event"` // the envelope as it was on the wire
	Handler          string         `json:"handler"`
	Attempt          int            `json:"attempt"` // the attempt this retry makes (2 for the first retry)
	Stream           string         `json:"stream"`  // where the event was delivered from
	OriginalStreamID string         `json:"originalStreamId"`
	EventID          string         `json:"eventId"`
	Type             string         `json:"type"`
	TenantID         string         `json:"tenantId"`
	Errors           []AttemptError `json:"errors"`
	// StatusID names the event's status hash (see task.statusID).
	StatusID string `json:"statusId,omitempty"`
	// Redrives counts how often this event and handler were redriven from
	// the DLQ (Inspector.Redrive); a dead letter written for this retry
	// carries it, so that the redrive limit (Config.MaxRedrives) counts
	// per event and handler and outlives the status hash.
	Redrives int `json:"redrives,omitempty"`
	// WaitingSince is when a consumer without this handler first passed
	// the due retry back (see ConsumerConfig.UnknownHandlerTimeout).
	WaitingSince *time.Time `json:"waitingSince,omitempty"`
}

// deadLetterStatusID is the DeadLetter.StatusID of an event whose status
// hash is statusID: empty when that is the event's scoped id.
func deadLetterStatusID(statusID, tenantID, eventID string) string {
	if statusID == rdb.ScopedID(tenantID, eventID) {
		return ""
	}
	return statusID
}

func (d *retryData) statusID() string {
	if d.StatusID != "" {
		return d.StatusID
	}
	return rdb.ScopedID(d.TenantID, d.EventID)
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
		Kind: rdb.OpRetry, Handler: data.Handler, Record: rec, Due: due,
		Member: rdb.RetryMember(data.Handler, data.OriginalStreamID, data.EventID), Data: payload, Flag: false,
	}), data.EventID)
}

// minHandBackDelay is the shortest delay before a retry handed back by a
// consumer without its handler is due again.
const minHandBackDelay = 100 * time.Millisecond
