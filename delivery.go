package eventbus

import "context"

// Delivery describes the handler run a context belongs to. Every handler,
// and every middleware around it, receives a context that carries it; read
// it with DeliveryFromContext (for metrics, tracing or logging
// middleware).
type Delivery struct {
	// Handler is the name the handler was registered under.
	Handler string
	// Attempt is the handler's attempt at this event: 1 for the first run,
	// 2 for the first retry, and so on. A redelivery after a consumer
	// crash is the same attempt again.
	Attempt int
	// Stream is the stream the event was delivered from (the main or the
	// replay stream; for a retry, the stream of the first attempt).
	Stream string
	// StreamID is the event's entry id in Stream; a retry keeps it.
	StreamID string
	// Group and Consumer name the consumer group and the consumer running
	// the handler.
	Group, Consumer string
	// Replay is the replay job's id for a replayed copy, "" otherwise.
	Replay string
}

// deliveryKey is the context key of a Delivery.
type deliveryKey struct{}

// DeliveryFromContext returns the delivery a handler's context belongs to,
// and false for a context that is not (or is not derived from) one a
// Consumer passed to a handler.
func DeliveryFromContext(ctx context.Context) (Delivery, bool) {
	r, ok := ctx.Value(deliveryKey{}).(*runCtx)
	if !ok || r == nil {
		return Delivery{}, false
	}
	return r.c.delivery(r.t, r.s), true
}

// delivery describes handler s's run for task t.
func (c *Consumer) delivery(t *task, s *subscription) Delivery {
	d := Delivery{Handler: s.name, Attempt: 1, Stream: t.stream, StreamID: t.m.ID, Group: c.bus.cfg.Group, Consumer: c.cfg.Name}
	if r := t.retry; r != nil {
		d.Attempt, d.Stream, d.StreamID = r.Attempt, r.Stream, r.OriginalStreamID
	}
	if d.Stream == c.replayStream && t.ev.Replay != nil {
		d.Replay = t.ev.Replay.JobID
	}
	return d
}
