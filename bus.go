// Package eventbus is an event bus on Redis Streams: publish typed events,
// subscribe handlers by type pattern in consumer groups, with at-least-once
// delivery, per-handler durable retries, a dead-letter queue, replay,
// time-based retention and health reporting.
//
// A Bus owns the Redis set-up (streams and consumer groups), the retention
// janitor and the health report. Create one with New and run its background
// loops with Run.
package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/rdb"
)

// ErrNotReady is returned by Ready while the streams and groups are not set
// up yet (Redis down at start, or Redis came back empty).
var ErrNotReady = errors.New("eventbus: not ready")

// Bus is the entry point of the library. It is safe for concurrent use.
type Bus struct {
	cfg Config
	rdb *rdb.RDB
	log *slog.Logger

	pub   *coalescer[pubItem, rdb.Appended]
	stats *statsRecorder // nil: stats not counted (benchmarks only)
	met   *metrics       // nil: no Config.Registerer

	setUp   atomic.Bool
	resetup chan struct{} // wakes the set-up loop; capacity 1
	// replayWake wakes this process's replay runner when a job starts
	// here; capacity 1.
	replayWake chan struct{}

	runMu   sync.Mutex
	running bool
}

// New validates cfg, fills in defaults and returns a Bus. It does not talk
// to Redis: call Run (or SetUp) for that, so that a process can start while
// Redis is down.
func New(cfg Config) (*Bus, error) {
	cfg.setDefaults()
	err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	b := &Bus{cfg: cfg, log: cfg.Logger, resetup: make(chan struct{}, 1), replayWake: make(chan struct{}, 1)}
	b.rdb = rdb.New(cfg.Redis, rdb.NewPartitionedKeys(cfg.Prefix, cfg.Cluster, cfg.Partitions, cfg.PreviousPartitions), rdb.Options{OnNoGroup: b.requestSetUp})
	b.stats = newStatsRecorder(b.rdb, b.log)
	if b.met, err = newMetrics(cfg.Registerer, cfg.MetricsMaxTypes); err != nil {
		return nil, err
	}
	b.pub = &coalescer[pubItem, rdb.Appended]{maxLeaders: cfg.PublishPipelines, extraLeadAt: extraPipelineBacklog, maxBatch: maxCoalescedBatch, send: b.sendAppends,
		inline: honoursDeadlines(cfg.Redis)}
	return b, nil
}

// Config returns the configuration in effect, defaults filled in.
func (b *Bus) Config() Config { return b.cfg }

// Streams returns the names of the main, DLQ and replay streams.
func (b *Bus) Streams() (main, dlq, replay string) {
	k := b.rdb.Keys()
	return k.Main(), k.DLQ(), k.Replay()
}

// Run runs the background loops (set-up with retries, re-set-up when Redis
// comes back empty, the retention janitor, the flush of the stats
// counters to Redis every second, and the replay runner, which executes
// replay jobs unless Config.ReplayRunners is -1) until ctx is cancelled. It
// returns nil after a cancellation and waits for its loops to stop. Run
// may be called once per Bus.
func (b *Bus) Run(ctx context.Context) error {
	b.runMu.Lock()
	if b.running {
		b.runMu.Unlock()
		return errors.New("eventbus: Run called twice")
	}
	b.running = true
	b.runMu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { b.setupLoop(ctx) })
	wg.Go(func() { newJanitor(b).run(ctx) })
	wg.Go(func() { b.stats.run(ctx, ctx.Done()) })
	if b.cfg.ReplayRunners > 0 {
		wg.Go(func() { newReplayRunner(b).run(ctx) })
	}
	wg.Wait()
	return nil
}

// Ready returns nil when Redis answers and the streams and groups are set
// up; otherwise ErrNotReady or an error wrapping ErrUnavailable. It checks
// in Redis (one round trip, bounded by ctx) that the streams and the
// group still exist, and asks the set-up loop to run again when not.
func (b *Bus) Ready(ctx context.Context) error {
	ok, err := b.rdb.GroupReady(ctx, b.groupStreams(), b.rdb.Keys().Main(), b.cfg.Group)
	if err != nil {
		return err
	}
	if !ok {
		b.requestSetUp()
		return ErrNotReady
	}
	if !b.setUp.Load() {
		return ErrNotReady
	}
	return nil
}

// requestSetUp asks the set-up loop to run set-up again. It never blocks.
func (b *Bus) requestSetUp() {
	select {
	case b.resetup <- struct{}{}:
	default:
	}
}

// wrapOp wraps err with the name of the operation.
func wrapOp(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("eventbus: %s: %w", op, err)
}

// honoursDeadlines reports whether c bounds socket reads and writes by the
// context's deadline (go-redis ContextTimeoutEnabled): only then may a
// publishing caller send on its own goroutine and still return by its
// deadline.
func honoursDeadlines(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}
