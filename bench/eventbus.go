package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
)

// bus measures the library under test through its public API only.
type bus struct {
	env *envelopes
}

// Shapes of the eventbus cells.
const (
	busBatchSize      = 100                         // Config.BatchSize
	busConcurrency    = eventbus.DefaultConcurrency // ConsumerConfig.Concurrency: the default (no-op handler)
	busE2EPublishers  = 4                           // goroutines calling PublishBatch(100), end to end (as raw's pipelining publishers)
	busE2EConsumers   = 4                           // consumers (one Bus each), end to end
	busPrefillWorkers = 4                           // goroutines calling PublishBatch for a backlog
)

// newBus returns a Bus on a client of its own (the Bus installs a hook on
// its client).
func (s *bus) newBus(c *cell, consumer string) (*eventbus.Bus, *redis.Client, error) {
	// The client the README recommends for the library: context deadlines
	// bound its sockets (ContextTimeoutEnabled), so Publish's deadline
	// holds and a lone publisher sends on its own goroutine.
	rc := c.clientWith(func(o *redis.Options) { o.ContextTimeoutEnabled, o.ReadTimeout = true, 3*time.Second })
	b, err := eventbus.New(eventbus.Config{
		Redis: rc, Prefix: c.prefix, Group: group, Consumer: consumer,
		Block: readBlock, BatchSize: busBatchSize,
	})
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	return b, rc, nil
}

// mainStream is the stream the bus publishes to.
func mainStream(b *eventbus.Bus) string {
	m, _, _ := b.Streams()
	return m
}

// publisher returns a set-up Bus for publishing.
func (s *bus) publisher(ctx context.Context, c *cell) (*eventbus.Bus, *redis.Client, error) {
	b, rc, err := s.newBus(c, "publisher")
	if err != nil {
		return nil, nil, err
	}
	if err := b.SetUp(ctx); err != nil {
		rc.Close()
		return nil, nil, err
	}
	return b, rc, nil
}

// publish: goroutines each call Publish with one event (the bus generates
// the id).
func (s *bus) publish(ctx context.Context, c *cell, goroutines, n int) (float64, error) {
	b, rc, err := s.publisher(ctx, c)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	op := func(ctx context.Context, _ int) error {
		_, err := b.Publish(ctx, s.env.event)
		return err
	}
	return publishRate(ctx, rc, mainStream(b), goroutines, n, op)
}

// publishIdempotent: like publish, with a caller-supplied id on every
// event (26 characters, the length of a generated ULID), so every publish
// runs the idempotency check.
func (s *bus) publishIdempotent(ctx context.Context, c *cell, goroutines, n int) (float64, error) {
	b, rc, err := s.publisher(ctx, c)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	opWith := func(prefix string) func(ctx context.Context, i int) error {
		return func(ctx context.Context, i int) error {
			ev := s.env.event
			ev.ID = fmt.Sprintf("%s-%022d", prefix, i)
			p, err := b.Publish(ctx, ev)
			if err == nil && p.Duplicate {
				err = fmt.Errorf("event %s reported as a duplicate", ev.ID)
			}
			return err
		}
	}
	if _, err := parallel(ctx, goroutines, warmupEvents, opWith("wrm")); err != nil {
		return 0, err
	}
	d, err := parallel(ctx, goroutines, n, opWith("evt"))
	if err == nil {
		err = checkLen(ctx, rc, mainStream(b), warmupEvents+n)
	}
	return rate(n, d), err
}

// publishBatch: one goroutine calls PublishBatch with 100 events.
func (s *bus) publishBatch(ctx context.Context, c *cell, n int) (float64, error) {
	b, rc, err := s.publisher(ctx, c)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	batch := s.batch(100)
	op := func(ctx context.Context, _ int) error {
		_, err := b.PublishBatch(ctx, batch)
		return err
	}
	if _, err := parallel(ctx, 1, warmupEvents/len(batch), op); err != nil {
		return 0, err
	}
	d, err := parallel(ctx, 1, n/len(batch), op)
	if err == nil {
		err = checkLen(ctx, rc, mainStream(b), warmupEvents+n)
	}
	return rate(n, d), err
}

func (s *bus) batch(k int) []eventbus.Event {
	evs := make([]eventbus.Event, k)
	for i := range evs {
		evs[i] = s.env.event
	}
	return evs
}

// prefill publishes n events with PublishBatch (untimed).
func (s *bus) prefill(ctx context.Context, b *eventbus.Bus, n int) error {
	batch := s.batch(100)
	_, err := parallel(ctx, busPrefillWorkers, n/len(batch), func(ctx context.Context, _ int) error {
		_, err := b.PublishBatch(ctx, batch)
		return err
	})
	if err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	return nil
}

// consumers builds k consumers of the group (one Bus and client each,
// consumer names c1..ck), each with handler h under pattern "*".
type busConsumers struct {
	cons    []*eventbus.Consumer
	clients []*redis.Client
}

func (s *bus) consumers(c *cell, k int, h eventbus.HandlerFunc) (*busConsumers, error) {
	bc := &busConsumers{}
	for i := range k {
		b, rc, err := s.newBus(c, fmt.Sprintf("c%d", i+1))
		if err != nil {
			bc.close()
			return nil, err
		}
		bc.clients = append(bc.clients, rc)
		cons, err := b.NewConsumer(eventbus.ConsumerConfig{Concurrency: busConcurrency})
		if err == nil {
			err = cons.Handle("bench", "*", h, eventbus.Timeout(10*time.Second))
		}
		if err != nil {
			bc.close()
			return nil, err
		}
		bc.cons = append(bc.cons, cons)
	}
	return bc, nil
}

// start runs every consumer until the crew stops.
func (bc *busConsumers) start(ctx context.Context) *crew {
	cr := newCrew(ctx)
	for _, cons := range bc.cons {
		cr.Go(cons.Run)
	}
	return cr
}

// verify checks that the handlers ran for at least n events and that
// nothing went to the DLQ (a dead-lettered entry is acknowledged too, and
// would otherwise pass for handled).
func (bc *busConsumers) verify(n int) error {
	var handled, dead int64
	for _, cons := range bc.cons {
		st := cons.Stats()
		handled += st.Handled
		dead += st.DeadLettered
	}
	if handled < int64(n) || dead > 0 {
		return fmt.Errorf("handlers ran %d times for %d events, %d dead-lettered", handled, n, dead)
	}
	return nil
}

func (bc *busConsumers) close() {
	for _, rc := range bc.clients {
		rc.Close()
	}
}

func noop(context.Context, eventbus.Event) error { return nil }

// backlog: k consumers with a no-op handler handle and acknowledge n
// already-published events; timed until XINFO GROUPS shows all read and
// none pending.
func (s *bus) backlog(ctx context.Context, c *cell, k, n int) (float64, error) {
	b, rc, err := s.publisher(ctx, c)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	if err := s.prefill(ctx, b, n); err != nil {
		return 0, err
	}
	bc, err := s.consumers(c, k, noop)
	if err != nil {
		return 0, err
	}
	defer bc.close()
	mon := c.client()
	defer mon.Close()
	runtime.GC()
	start := time.Now()
	cr := bc.start(ctx)
	err = waitDrained(cr.ctx, mon, mainStream(b), n)
	d := time.Since(start)
	if serr := cr.stop(); err == nil {
		err = serr
	}
	if err == nil {
		err = bc.verify(n)
	}
	return rate(n, d), err
}

// endToEnd: 4 goroutines PublishBatch(100) (as raw's pipelining publishers) while 4 consumers handle; timed from
// the first publish until all n are acknowledged.
func (s *bus) endToEnd(ctx context.Context, c *cell, n int) (float64, error) {
	b, rc, err := s.publisher(ctx, c)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	mon := c.client()
	defer mon.Close()
	bc, err := s.consumers(c, busE2EConsumers, noop)
	if err != nil {
		return 0, err
	}
	defer bc.close()
	cr := bc.start(ctx)
	batch := s.batch(rawPipeline)
	start := time.Now()
	_, err = parallel(cr.ctx, busE2EPublishers, n/len(batch), func(ctx context.Context, _ int) error {
		_, err := b.PublishBatch(ctx, batch)
		return err
	})
	if err == nil {
		err = waitDrained(cr.ctx, mon, mainStream(b), n)
	}
	d := time.Since(start)
	if serr := cr.stop(); err == nil {
		err = serr
	}
	if err == nil {
		err = bc.verify(n)
	}
	return rate(n, d), err
}

// latency: Publish at a steady rate; one consumer's handler records now
// minus the scheduled time carried in the data.
func (s *bus) latency(ctx context.Context, c *cell, perSecond int, dur time.Duration) ([]float64, error) {
	b, rc, err := s.publisher(ctx, c)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	n := int(dur.Seconds() * float64(perSecond))
	rec := newLatencyRecorder(n)
	bc, err := s.consumers(c, 1, func(_ context.Context, ev eventbus.Event) error {
		var st stamp
		if err := json.Unmarshal(ev.Data, &st); err != nil {
			return eventbus.Permanent(err)
		}
		rec.record(st)
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer bc.close()
	cr := bc.start(ctx)
	err = schedule(cr.ctx, n, perSecond, 20, func(ctx context.Context, i int, at time.Time) error {
		ev := s.env.event
		ev.Data = s.env.latencyData(i, at)
		_, err := b.Publish(ctx, ev)
		return err
	})
	var pct []float64
	if err == nil {
		pct, err = rec.wait(cr.ctx)
	}
	if serr := cr.stop(); err == nil {
		err = serr
	}
	return pct, err
}

// memory: used_memory delta per event after n events were published with
// PublishBatch, handled by 4 consumers and acknowledged.
func (s *bus) memory(ctx context.Context, c *cell, n int) (float64, error) {
	mon := c.client()
	defer mon.Close()
	before, err := usedMemory(ctx, mon)
	if err != nil {
		return 0, err
	}
	b, rc, err := s.publisher(ctx, c)
	if err != nil {
		return 0, err
	}
	err = s.prefill(ctx, b, n)
	rc.Close()
	if err != nil {
		return 0, err
	}
	bc, err := s.consumers(c, memoryConsumers, noop)
	if err != nil {
		return 0, err
	}
	cr := bc.start(ctx)
	err = waitDrained(cr.ctx, mon, mainStream(b), n)
	if serr := cr.stop(); err == nil {
		err = serr
	}
	if err == nil {
		err = bc.verify(n)
	}
	bc.close()
	if err != nil {
		return 0, err
	}
	return memoryDelta(ctx, mon, before, n)
}
