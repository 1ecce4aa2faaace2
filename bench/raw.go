package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/redis/go-redis/v9"
)

// raw is the baseline: plain go-redis v9 commands on a bare stream,
// `XADD <stream> * event <305-byte json>`, read with XREADGROUP COUNT 100
// and one XACK per batch.
type raw struct {
	env *envelopes
}

// Shapes of the raw baseline.
const (
	rawReadCount      = 100  // XREADGROUP COUNT
	rawPipeline       = 100  // XADDs per pipeline (batch publish, end to end)
	rawE2EPublishers  = 4    // pipelining publishers, end to end
	rawE2EConsumers   = 4    // consumers, end to end
	rawPrefillPerPipe = 1000 // XADDs per pipeline when writing a backlog (untimed)
)

func (s *raw) xadd(stream string, payload []byte) *redis.XAddArgs {
	return &redis.XAddArgs{Stream: stream, Values: []any{"event", payload}}
}

// publish: goroutines each send one XADD per call.
func (s *raw) publish(ctx context.Context, c *cell, goroutines, n int) (float64, error) {
	rc := c.client()
	defer rc.Close()
	stream := c.key("raw")
	op := func(ctx context.Context, _ int) error { return rc.XAdd(ctx, s.xadd(stream, s.env.raw)).Err() }
	return publishRate(ctx, rc, stream, goroutines, n, op)
}

// publishBatch: one goroutine sends pipelines of 100 XADDs.
func (s *raw) publishBatch(ctx context.Context, c *cell, n int) (float64, error) {
	rc := c.client()
	defer rc.Close()
	stream := c.key("raw")
	op := func(ctx context.Context, _ int) error { return s.pipelined(ctx, rc, stream, rawPipeline) }
	if _, err := parallel(ctx, 1, warmupEvents/rawPipeline, op); err != nil {
		return 0, err
	}
	d, err := parallel(ctx, 1, n/rawPipeline, op)
	if err == nil {
		err = checkLen(ctx, rc, stream, warmupEvents+n)
	}
	return rate(n, d), err
}

// pipelined sends k XADDs of the envelope in one pipeline.
func (s *raw) pipelined(ctx context.Context, rc *redis.Client, stream string, k int) error {
	pipe := rc.Pipeline()
	for range k {
		pipe.XAdd(ctx, s.xadd(stream, s.env.raw))
	}
	_, err := pipe.Exec(ctx)
	return err
}

// prefill writes n entries (untimed) after creating the group at 0.
func (s *raw) prefill(ctx context.Context, rc *redis.Client, stream string, n int) error {
	if err := createGroup(ctx, rc, stream); err != nil {
		return err
	}
	for done := 0; done < n; done += rawPrefillPerPipe {
		if err := s.pipelined(ctx, rc, stream, min(rawPrefillPerPipe, n-done)); err != nil {
			return fmt.Errorf("prefill: %w", err)
		}
	}
	return nil
}

// consume reads with XREADGROUP COUNT 100 (BLOCK) and acknowledges each
// batch with one XACK, until ctx ends. handle, when set, sees every entry
// before its batch is acknowledged.
func (s *raw) consume(ctx context.Context, rc *redis.Client, stream, consumer string, handle func(redis.XMessage)) error {
	ids := make([]string, 0, rawReadCount)
	for ctx.Err() == nil {
		res, err := rc.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: group, Consumer: consumer, Streams: []string{stream, ">"}, Count: rawReadCount, Block: readBlock,
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("XREADGROUP: %w", err)
		}
		ids = ids[:0]
		for _, st := range res {
			for _, m := range st.Messages {
				if handle != nil {
					handle(m)
				}
				ids = append(ids, m.ID)
			}
		}
		if len(ids) > 0 {
			if err := rc.XAck(context.WithoutCancel(ctx), stream, group, ids...).Err(); err != nil {
				return fmt.Errorf("XACK: %w", err)
			}
		}
	}
	return nil
}

// startConsumers starts k consumers, each in its own goroutine with its
// own consumer name, on one client.
func (s *raw) startConsumers(ctx context.Context, rc *redis.Client, stream string, k int, handle func(redis.XMessage)) *crew {
	cr := newCrew(ctx)
	for i := range k {
		name := fmt.Sprintf("c%d", i+1)
		cr.Go(func(ctx context.Context) error { return s.consume(ctx, rc, stream, name, handle) })
	}
	return cr
}

// backlog: consume and acknowledge n already-published entries with k
// consumers; timed until XINFO GROUPS shows all read and none pending.
func (s *raw) backlog(ctx context.Context, c *cell, consumers, n int) (float64, error) {
	rc, mon := c.client(), c.client()
	defer rc.Close()
	defer mon.Close()
	stream := c.key("raw")
	if err := s.prefill(ctx, rc, stream, n); err != nil {
		return 0, err
	}
	runtime.GC()
	start := time.Now()
	cr := s.startConsumers(ctx, rc, stream, consumers, nil)
	err := waitDrained(cr.ctx, mon, stream, n)
	d := time.Since(start)
	if serr := cr.stop(); err == nil {
		err = serr
	}
	return rate(n, d), err
}

// endToEnd: pipelining publishers and consumers at once; timed from the
// first publish until all n are acknowledged.
func (s *raw) endToEnd(ctx context.Context, c *cell, n int) (float64, error) {
	pub, sub, mon := c.client(), c.client(), c.client()
	defer pub.Close()
	defer sub.Close()
	defer mon.Close()
	stream := c.key("raw")
	if err := createGroup(ctx, mon, stream); err != nil {
		return 0, err
	}
	cr := s.startConsumers(ctx, sub, stream, rawE2EConsumers, nil)
	start := time.Now()
	_, err := parallel(cr.ctx, rawE2EPublishers, n/rawPipeline, func(ctx context.Context, _ int) error {
		return s.pipelined(ctx, pub, stream, rawPipeline)
	})
	if err == nil {
		err = waitDrained(cr.ctx, mon, stream, n)
	}
	d := time.Since(start)
	if serr := cr.stop(); err == nil {
		err = serr
	}
	return rate(n, d), err
}

// latency: one XADD per event at a steady rate; one consumer blocking in
// XREADGROUP records now minus the scheduled time, then XACKs the batch.
func (s *raw) latency(ctx context.Context, c *cell, perSecond int, dur time.Duration) ([]float64, error) {
	pub, sub := c.client(), c.client()
	defer pub.Close()
	defer sub.Close()
	stream := c.key("raw")
	if err := createGroup(ctx, pub, stream); err != nil {
		return nil, err
	}
	n := int(dur.Seconds() * float64(perSecond))
	rec := newLatencyRecorder(n)
	var parseErr error
	cr := s.startConsumers(ctx, sub, stream, 1, func(m redis.XMessage) {
		payload, _ := m.Values["event"].(string)
		st, err := parseEnvelopeStamp([]byte(payload))
		if err != nil {
			parseErr = err
			return
		}
		rec.record(st)
	})
	err := schedule(cr.ctx, n, perSecond, 20, func(ctx context.Context, i int, at time.Time) error {
		return pub.XAdd(ctx, s.xadd(stream, s.env.withData(s.env.latencyData(i, at)))).Err()
	})
	var pct []float64
	if err == nil {
		pct, err = rec.wait(cr.ctx)
	}
	if serr := cr.stop(); err == nil {
		err = serr
	}
	if err == nil && parseErr != nil {
		err = parseErr
	}
	return pct, err
}

// memory: used_memory delta per entry after n bare entries were written,
// consumed and acknowledged.
func (s *raw) memory(ctx context.Context, c *cell, n int) (float64, error) {
	rc, mon := c.client(), c.client()
	defer mon.Close()
	stream := c.key("raw")
	before, err := usedMemory(ctx, mon)
	if err != nil {
		rc.Close()
		return 0, err
	}
	if err := s.prefill(ctx, rc, stream, n); err != nil {
		rc.Close()
		return 0, err
	}
	cr := s.startConsumers(ctx, rc, stream, memoryConsumers, nil)
	err = waitDrained(cr.ctx, mon, stream, n)
	if serr := cr.stop(); err == nil {
		err = serr
	}
	rc.Close()
	if err != nil {
		return 0, err
	}
	return memoryDelta(ctx, mon, before, n)
}
