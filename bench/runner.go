package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// counts are the sizes of one mode's cells. Every count is a multiple of
// 100 (batches of 100).
type counts struct {
	Publish1         int           `json:"publish1"`         // publish, 1 goroutine
	Publish50        int           `json:"publish50"`        // publish, 50 (Watermill 16) goroutines
	Batch            int           `json:"batch"`            // publish in batches of 100
	Idempotent       int           `json:"idempotent"`       // eventbus, caller-supplied ids
	Backlog          int           `json:"backlog"`          // consume a backlog
	BacklogWatermill int           `json:"backlogWatermill"` // Watermill's backlog (it is ~10x slower)
	EndToEnd         int           `json:"endToEnd"`         // publish and consume at once
	EndToEndWM       int           `json:"endToEndWatermill"`
	LatencyRate      int           `json:"latencyRate"` // events/s
	LatencyDuration  time.Duration `json:"latencyDurationNs"`
	Memory           int           `json:"memory"` // events retained
	cellTimeout      time.Duration
}

var fullCounts = counts{
	Publish1: 30_000, Publish50: 100_000, Batch: 300_000, Idempotent: 100_000,
	Backlog: 200_000, BacklogWatermill: 200_000, EndToEnd: 100_000, EndToEndWM: 100_000,
	LatencyRate: 2000, LatencyDuration: 20 * time.Second, Memory: 1_000_000,
	cellTimeout: 5 * time.Minute,
}

var quickCounts = counts{
	Publish1: 5_000, Publish50: 20_000, Batch: 20_000, Idempotent: 20_000,
	Backlog: 30_000, BacklogWatermill: 10_000, EndToEnd: 20_000, EndToEndWM: 10_000,
	LatencyRate: 2000, LatencyDuration: time.Second, Memory: 100_000,
	cellTimeout: time.Minute,
}

// The systems, in the table's column order.
const (
	sysEventbus  = "eventbus"
	sysRaw       = "raw go-redis"
	sysWatermill = "Watermill"
)

var systems = []string{sysEventbus, sysRaw, sysWatermill}

// selectSystems parses -systems: eventbus, raw, watermill.
func selectSystems(list string) ([]string, error) {
	names := map[string]string{"eventbus": sysEventbus, "raw": sysRaw, "watermill": sysWatermill}
	want := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		sys, ok := names[strings.ToLower(strings.TrimSpace(s))]
		if !ok {
			return nil, fmt.Errorf("-systems: unknown system %q (known: eventbus,raw,watermill)", s)
		}
		want[sys] = true
	}
	var out []string
	for _, sys := range systems {
		if want[sys] {
			out = append(out, sys)
		}
	}
	return out, nil
}

// cell is one measurement of one system: a key prefix of its own on the
// target Redis.
type cell struct {
	url    string
	prefix string
}

func (c *cell) key(name string) string { return c.prefix + ":" + name }

// cellFunc measures once; it returns one value per row of its
// measurement.
type cellFunc func(ctx context.Context, c *cell) ([]float64, error)

// row is one line of the table.
type row struct {
	Key         string `json:"key"`
	Label       string `json:"label"`
	Unit        string `json:"unit"`
	LowerBetter bool   `json:"lowerIsBetter"`
	// Baseline is the key of the row whose raw go-redis median the ratios
	// use ("" = this row's).
	Baseline string `json:"baseline,omitempty"`
}

// measurement is one kind of cell, run for each system that takes part.
type measurement struct {
	key   string
	rows  []row
	cells map[string]cellFunc // by system; absent = n/a
	notes map[string]string   // by system: shown next to its figures
}

// sample is one run's outcome of one cell.
type sample struct {
	values []float64
	err    error
}

// results: measurement key -> system -> samples.
type results map[string]map[string][]sample

type runner struct {
	target      *target
	runs        int
	runID       string
	cellTimeout time.Duration
	systems     []string // the systems to run, in column order
	seq         int
}

// runPlan runs every measurement runs times per system, interleaving the
// systems (their order rotates from run to run).
func (r *runner) runPlan(ctx context.Context, plan []measurement) (results, error) {
	res := results{}
	for _, m := range plan {
		res[m.key] = map[string][]sample{}
		for run := 0; run < r.runs; run++ {
			for k := range r.systems {
				sys := r.systems[(k+run)%len(r.systems)]
				f := m.cells[sys]
				if f == nil {
					continue
				}
				start := time.Now()
				vals, err := r.cell(ctx, f)
				if ctx.Err() != nil {
					return nil, fmt.Errorf("interrupted: %w", context.Cause(ctx))
				}
				res[m.key][sys] = append(res[m.key][sys], sample{vals, err})
				logf("  %-22s %-13s run %d/%d  %s  (%.1f s)", m.key, sys, run+1, r.runs, describe(m.rows, vals, err), time.Since(start).Seconds())
			}
		}
	}
	return res, nil
}

// cell gives f a clean keyspace: a flushed server when this process owns
// it, else a fresh key prefix deleted afterwards.
func (r *runner) cell(ctx context.Context, f cellFunc) ([]float64, error) {
	r.seq++
	c := &cell{url: r.target.url, prefix: fmt.Sprintf("bench-%s-%d", r.runID, r.seq)}
	if r.target.owned {
		if err := r.target.admin.FlushAll(ctx).Err(); err != nil {
			return nil, fmt.Errorf("FLUSHALL: %w", err)
		}
	}
	runtime.GC()
	cctx, cancel := context.WithTimeoutCause(ctx, r.cellTimeout, fmt.Errorf("cell timed out after %v", r.cellTimeout))
	vals, err := f(cctx, c)
	cancel()
	if !r.target.owned {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		if derr := deletePrefix(dctx, r.target.admin, c.prefix); derr != nil && err == nil {
			err = fmt.Errorf("delete keys %s:*: %w", c.prefix, derr)
		}
		cancel()
	}
	return vals, err
}

func describe(rows []row, vals []float64, err error) string {
	if err != nil {
		return "ERROR: " + err.Error()
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = formatValue(v) + " " + rows[i].Unit
	}
	return strings.Join(parts, ", ")
}

// medians returns the median of each row over the successful samples,
// NaN when none succeeded.
func medians(samples []sample, nrows int) []float64 {
	out := make([]float64, nrows)
	for i := range out {
		var vs []float64
		for _, s := range samples {
			if s.err == nil && i < len(s.values) {
				vs = append(vs, s.values[i])
			}
		}
		out[i] = median(vs)
	}
	return out
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return math.NaN()
	}
	vs = slices.Clone(vs)
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}

// rate is events per second.
func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// publishRate runs op for warmupEvents untimed calls, then n timed ones,
// on the given number of goroutines; it checks that stream then holds
// every entry and returns the timed rate.
func publishRate(ctx context.Context, rc *redis.Client, stream string, goroutines, n int, op func(ctx context.Context, i int) error) (float64, error) {
	if _, err := parallel(ctx, goroutines, warmupEvents, op); err != nil {
		return 0, err
	}
	d, err := parallel(ctx, goroutines, n, op)
	if err == nil {
		err = checkLen(ctx, rc, stream, warmupEvents+n)
	}
	return rate(n, d), err
}

// parallel runs op for i in [0, n) on the given number of goroutines, each
// taking the next index, and returns the elapsed time. The first error
// stops it.
func parallel(ctx context.Context, goroutines, n int, op func(ctx context.Context, i int) error) (time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range goroutines {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := op(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return elapsed, context.Cause(ctx)
	}
	return elapsed, nil
}

// crew runs long-lived goroutines (consumers); the first error cancels
// the crew's context.
type crew struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup
}

var errStopped = errors.New("stopped")

func newCrew(ctx context.Context) *crew {
	c := &crew{}
	c.ctx, c.cancel = context.WithCancelCause(ctx)
	return c
}

func (c *crew) Go(f func(ctx context.Context) error) {
	c.wg.Go(func() {
		if err := f(c.ctx); err != nil && c.ctx.Err() == nil {
			c.cancel(err)
		}
	})
}

// stop cancels the crew, waits for it and returns the first error.
func (c *crew) stop() error {
	cause := context.Cause(c.ctx)
	c.cancel(errStopped)
	c.wg.Wait()
	return cause
}

// latencyRecorder keeps publish-to-handler latencies indexed by event.
type latencyRecorder struct {
	lat     []time.Duration
	handled atomic.Int64
}

func newLatencyRecorder(n int) *latencyRecorder {
	return &latencyRecorder{lat: make([]time.Duration, n)}
}

// record stores now minus the scheduled send time of event s.I.
func (l *latencyRecorder) record(s stamp) {
	if s.I < 0 || s.I >= len(l.lat) {
		return // warm-up
	}
	l.lat[s.I] = time.Since(time.Unix(0, s.At))
	l.handled.Add(1)
}

// wait waits until every event was handled, then returns p50, p99 and
// p99.9 in microseconds (nearest rank).
func (l *latencyRecorder) wait(ctx context.Context) ([]float64, error) {
	for l.handled.Load() < int64(len(l.lat)) {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d events handled: %w", l.handled.Load(), len(l.lat), context.Cause(ctx))
		case <-time.After(time.Millisecond):
		}
	}
	sorted := slices.Clone(l.lat)
	slices.Sort(sorted)
	pct := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(sorted)))) - 1
		return float64(sorted[max(0, i)]) / float64(time.Microsecond)
	}
	return []float64{pct(0.50), pct(0.99), pct(0.999)}, nil
}

// schedule publishes n events at a steady rate: event i is due at
// t0 + i/rate, and publish gets that scheduled time (so a stalled
// publisher shows up as latency: no coordinated omission). Warm-up events
// (i < 0) go first, unscheduled.
func schedule(ctx context.Context, n, perSecond, warmup int, publish func(ctx context.Context, i int, at time.Time) error) error {
	for i := -warmup; i < 0; i++ {
		if err := publish(ctx, i, time.Now()); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now().Add(10 * time.Millisecond)
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Second / time.Duration(perSecond))
		sleepUntil(at)
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if err := publish(ctx, i, at); err != nil {
			return err
		}
	}
	return nil
}

// Shapes shared by every system.
const (
	readBlock       = 100 * time.Millisecond // XREADGROUP BLOCK of every consumer
	warmupEvents    = 200                    // untimed publishes before a timed publish loop
	memoryConsumers = 4                      // consume the retained events before used_memory is read
)

// memoryDelta reads used_memory once the consumers' connections are gone
// and returns the growth since before per event.
func memoryDelta(ctx context.Context, mon *redis.Client, before int64, n int) (float64, error) {
	time.Sleep(100 * time.Millisecond) // closed connections are freed by the server
	after, err := usedMemory(ctx, mon)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(n), nil
}
