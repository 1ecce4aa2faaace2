package main

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"
)

// wm is Watermill's redisstream publisher and subscriber with their
// default marshaller: each entry holds the message UUID, empty metadata
// and the 305-byte envelope as payload.
type wm struct {
	env *envelopes
}

// Shapes of the Watermill cells: 16 publishing goroutines is its best
// configuration in the peers' figures (shared/PEERS.md).
const (
	wmPublishers     = 16
	wmE2EPublishers  = 16
	wmE2ESubscribers = 4
)

func (s *wm) topic(c *cell) string { return c.key("wm") }

func (s *wm) publisher(c *cell) (*redisstream.Publisher, *redis.Client, error) {
	rc := c.client()
	p, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: rc}, watermill.NopLogger{})
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	return p, rc, nil
}

func (s *wm) message(payload []byte) *message.Message {
	return message.NewMessage(watermill.NewUUID(), payload)
}

// publish: goroutines each publish one message per call.
func (s *wm) publish(ctx context.Context, c *cell, goroutines, n int) (float64, error) {
	p, rc, err := s.publisher(c)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	topic := s.topic(c)
	op := func(context.Context, int) error { return p.Publish(topic, s.message(s.env.raw)) }
	return publishRate(ctx, rc, topic, goroutines, n, op)
}

// prefill writes n entries exactly as Publisher.Publish writes them (its
// marshaller's fields, no MAXLEN), pipelined to save time (untimed).
func (s *wm) prefill(ctx context.Context, rc *redis.Client, topic string, n int) error {
	if err := createGroup(ctx, rc, topic); err != nil {
		return err
	}
	var m redisstream.DefaultMarshallerUnmarshaller
	for done := 0; done < n; done += rawPrefillPerPipe {
		pipe := rc.Pipeline()
		for range min(rawPrefillPerPipe, n-done) {
			values, err := m.Marshal(topic, s.message(s.env.raw))
			if err != nil {
				return err
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: values})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("prefill: %w", err)
		}
	}
	return nil
}

// subscribers subscribes k subscribers of the group (a client each,
// consumer names c1..ck) and runs handle on every message, then Acks it.
type wmSubscribers struct {
	subs []*redisstream.Subscriber
}

func (s *wm) startSubscribers(ctx context.Context, c *cell, k int, handle func(*message.Message)) (*crew, *wmSubscribers, error) {
	ws := &wmSubscribers{}
	cr := newCrew(ctx)
	for i := range k {
		sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
			Client: c.client(), Consumer: fmt.Sprintf("c%d", i+1), ConsumerGroup: group,
			BlockTime: readBlock, DisableIndefiniteInitialBlock: true, OldestId: "0",
		}, watermill.NopLogger{})
		if err != nil {
			cr.stop()
			ws.close()
			return nil, nil, err
		}
		ws.subs = append(ws.subs, sub)
		msgs, err := sub.Subscribe(cr.ctx, s.topic(c))
		if err != nil {
			cr.stop()
			ws.close()
			return nil, nil, err
		}
		cr.Go(func(ctx context.Context) error {
			for msg := range msgs {
				if handle != nil {
					handle(msg)
				}
				msg.Ack()
			}
			return nil
		})
	}
	return cr, ws, nil
}

// close closes every subscriber (and so its client).
func (ws *wmSubscribers) close() {
	for _, sub := range ws.subs {
		_ = sub.Close()
	}
}

// stopSubscribers stops the crew, then closes the subscribers.
func stopSubscribers(cr *crew, ws *wmSubscribers) error {
	err := cr.stop()
	ws.close()
	return err
}

// backlog: k subscribers in one group with a no-op handler that Acks;
// timed until XINFO GROUPS shows all read and none pending.
func (s *wm) backlog(ctx context.Context, c *cell, k, n int) (float64, error) {
	rc := c.client()
	defer rc.Close()
	topic := s.topic(c)
	if err := s.prefill(ctx, rc, topic, n); err != nil {
		return 0, err
	}
	runtime.GC()
	start := time.Now()
	cr, ws, err := s.startSubscribers(ctx, c, k, nil)
	if err != nil {
		return 0, err
	}
	err = waitDrained(cr.ctx, rc, topic, n)
	d := time.Since(start)
	if serr := stopSubscribers(cr, ws); err == nil {
		err = serr
	}
	return rate(n, d), err
}

// endToEnd: 16 publishers and 4 subscribers at once; timed from the first
// publish until all n are acknowledged.
func (s *wm) endToEnd(ctx context.Context, c *cell, n int) (float64, error) {
	p, rc, err := s.publisher(c)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	mon := c.client()
	defer mon.Close()
	topic := s.topic(c)
	if err := createGroup(ctx, mon, topic); err != nil {
		return 0, err
	}
	cr, ws, err := s.startSubscribers(ctx, c, wmE2ESubscribers, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	_, err = parallel(cr.ctx, wmE2EPublishers, n, func(context.Context, int) error {
		return p.Publish(topic, s.message(s.env.raw))
	})
	if err == nil {
		err = waitDrained(cr.ctx, mon, topic, n)
	}
	d := time.Since(start)
	if serr := stopSubscribers(cr, ws); err == nil {
		err = serr
	}
	return rate(n, d), err
}

// latency: Publish at a steady rate; one subscriber's handler records now
// minus the scheduled time, then Acks.
func (s *wm) latency(ctx context.Context, c *cell, perSecond int, dur time.Duration) ([]float64, error) {
	p, rc, err := s.publisher(c)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	topic := s.topic(c)
	if err := createGroup(ctx, rc, topic); err != nil {
		return nil, err
	}
	n := int(dur.Seconds() * float64(perSecond))
	rec := newLatencyRecorder(n)
	var parseErr error
	cr, ws, err := s.startSubscribers(ctx, c, 1, func(msg *message.Message) {
		st, err := parseEnvelopeStamp(msg.Payload)
		if err != nil {
			parseErr = err
			return
		}
		rec.record(st)
	})
	if err != nil {
		return nil, err
	}
	err = schedule(cr.ctx, n, perSecond, 20, func(_ context.Context, i int, at time.Time) error {
		return p.Publish(topic, s.message(s.env.withData(s.env.latencyData(i, at))))
	})
	var pct []float64
	if err == nil {
		pct, err = rec.wait(cr.ctx)
	}
	if serr := stopSubscribers(cr, ws); err == nil {
		err = serr
	}
	if err == nil && parseErr != nil {
		err = parseErr
	}
	return pct, err
}
