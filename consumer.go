package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/backoff"
	"github.com/hyvve/eventbus/internal/rdb"
)

// Consumer defaults.
const (
	DefaultConcurrency           = 10
	DefaultClaimIdle             = 60 * time.Second
	DefaultClaimInterval         = 15 * time.Second
	DefaultRetryPollInterval     = time.Second
	DefaultShutdownTimeout       = 30 * time.Second
	DefaultDeadConsumerIdle      = time.Hour
	DefaultStatusTTL             = 24 * time.Hour
	DefaultMaxDeliveries         = 10
	DefaultUnknownHandlerTimeout = time.Hour
)

// ConsumerConfig configures a Consumer. Zero fields take their defaults.
type ConsumerConfig struct {
	// Name is this consumer's name in the group. Default the bus's
	// Config.Consumer. Several consumers of one bus need distinct names.
	Name string
	// Concurrency is how many events are handled at once. Default 10.
	Concurrency int
	// Retry is the retry policy of handlers without their own. Default
	// DefaultRetryPolicy (60 s, 5 min, 30 min, no jitter).
	Retry *RetryPolicy
	// ClaimIdle: entries pending longer than this (their consumer died)
	// are claimed by a live consumer. Default 60 s; must exceed every
	// handler timeout.
	ClaimIdle time.Duration
	// ClaimInterval is how often pending entries are checked. Default 15 s.
	ClaimInterval time.Duration
	// RetryPollInterval is how often due retries are forwarded. Default 1 s.
	RetryPollInterval time.Duration
	// ShutdownTimeout bounds how long Run waits for in-flight handlers
	// after its context ends. Default 30 s.
	ShutdownTimeout time.Duration
	// DeadConsumerIdle: a consumer whose heartbeat is older than this (or
	// missing), idle this long by Redis's count and holding no pending
	// entries is removed from the group. Running consumers refresh their
	// heartbeat every few seconds (every quarter of DeadConsumerIdle, at
	// most 5 s), so a live consumer blocked on a quiet stream is never
	// removed. Default 1 h.
	DeadConsumerIdle time.Duration
	// MaxDeliveries: an entry delivered this many times without an outcome
	// (each delivery killed or hung its consumer past ClaimIdle) goes to the
	// DLQ, acknowledged, instead of being claimed again. Default 10; -1
	// disables the limit.
	MaxDeliveries int
	// UnknownHandlerTimeout bounds how long a due retry whose handler this
	// consumer does not have (a rolling deploy, or consumers of one group
	// with different handler sets) is passed back for another consumer of
	// the group. Past it, the retry goes to the DLQ once no live consumer
	// of the group (by the heartbeat registry) has the handler. Default 1 h.
	UnknownHandlerTimeout time.Duration
	// StatusTTL is how long the status of an event that had a failure is
	// kept once it is resolved (succeeded on retry, or dead-lettered).
	// Default 24 h.
	StatusTTL time.Duration
}

// ConsumerStats counts what a consumer did since it started.
type ConsumerStats struct {
	Handled        int64 // handler runs that succeeded
	Failed         int64 // handler runs that failed (retry scheduled or DLQ)
	DeadLettered   int64 // DLQ entries written (failed handlers and bad entries)
	Claimed        int64 // entries claimed from dead consumers
	DeletedEntries int64 // pending entries whose body was trimmed or deleted; acknowledged
	Acked          int64 // entries acknowledged after every handler succeeded
}

// Consumer reads the group's streams (main, replay and due retries) and
// runs the matching handlers. Register handlers with Handle, then call
// Run.
type Consumer struct {
	bus *Bus
	cfg ConsumerConfig
	log *slog.Logger

	mu      sync.Mutex
	subs    []*subscription
	mws     []Middleware
	running bool

	// The streams the consumer reads (see readStreams), built once.
	groupStreams []groupStream
	streamIndex  map[string]int // name -> index in groupStreams; nil for few streams
	replayStream string

	acks     *acker
	sem      chan struct{} // one token per entry queued or in flight
	inflight *inflightSet  // the entries those tokens stand for
	work     chan job      // events for the worker goroutines

	workers   sync.WaitGroup // live (not abandoned) workers
	wmu       sync.Mutex
	workerSet map[*worker]struct{}
	// handlerCtx is cancelled when the shutdown deadline passes.
	handlerCtx  context.Context
	stopHandler context.CancelFunc

	handled, failed, deadLettered, claimed, deleted, acked atomic.Int64

	// stopping is set once reading stopped: queued entries not yet started
	// are left pending for other consumers.
	stopping atomic.Bool
}

// job is one entry for a worker.
type job struct {
	stream  string
	part    int  // the partition of its stream
	retries bool // read from a retries stream
	msg     redis.XMessage
	claimed bool
	// deliveries is the entry's delivery count for a claimed entry (0 when
	// unknown, and for fresh reads, which are the first delivery).
	deliveries int64
	// readAt is when the entry was read or claimed (monotonic clock).
	readAt time.Time
}

// NewConsumer returns a consumer of the bus's group.
func (b *Bus) NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Name == "" {
		cfg.Name = b.cfg.Consumer
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Retry == nil {
		p := DefaultRetryPolicy()
		cfg.Retry = &p
	}
	if cfg.ClaimIdle == 0 {
		cfg.ClaimIdle = DefaultClaimIdle
	}
	if cfg.ClaimInterval == 0 {
		cfg.ClaimInterval = DefaultClaimInterval
	}
	if cfg.RetryPollInterval == 0 {
		cfg.RetryPollInterval = DefaultRetryPollInterval
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.DeadConsumerIdle == 0 {
		cfg.DeadConsumerIdle = DefaultDeadConsumerIdle
	}
	if cfg.StatusTTL == 0 {
		cfg.StatusTTL = DefaultStatusTTL
	}
	if cfg.MaxDeliveries == 0 {
		cfg.MaxDeliveries = DefaultMaxDeliveries
	}
	if cfg.UnknownHandlerTimeout == 0 {
		cfg.UnknownHandlerTimeout = DefaultUnknownHandlerTimeout
	}
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: ConsumerConfig.%s=%v: %s", ErrConfig, field, v, why)
	}
	switch {
	case cfg.MaxDeliveries < -1:
		return nil, bad("MaxDeliveries", cfg.MaxDeliveries, "must be at least 1, or -1 for no limit")
	case cfg.UnknownHandlerTimeout < 0:
		return nil, bad("UnknownHandlerTimeout", cfg.UnknownHandlerTimeout, "must not be negative")
	case cfg.Concurrency < 1:
		return nil, bad("Concurrency", cfg.Concurrency, "must be at least 1")
	case ValidateName(cfg.Name) != nil:
		return nil, bad("Name", cfg.Name, ValidateName(cfg.Name).Error())
	case cfg.ClaimIdle < 0, cfg.ClaimInterval < 0, cfg.RetryPollInterval < 0, cfg.ShutdownTimeout < 0, cfg.DeadConsumerIdle < 0, cfg.StatusTTL < 0:
		return nil, fmt.Errorf("%w: ConsumerConfig durations must not be negative", ErrConfig)
	}
	if err := cfg.Retry.validate(); err != nil {
		return nil, bad("Retry", cfg.Retry.Delays, err.Error())
	}
	k := b.rdb.Keys()
	// Slots count entries queued or in flight: up to a full read batch
	// waits while Concurrency workers run, so reads stay full-sized.
	slots := cfg.Concurrency + b.cfg.BatchSize
	c := &Consumer{bus: b, cfg: cfg, log: b.log, sem: make(chan struct{}, slots), work: make(chan job, slots),
		workerSet: map[*worker]struct{}{}, inflight: newInflightSet(),
		replayStream: k.Replay()}
	c.groupStreams = c.readStreams()
	c.indexStreams()
	c.acks = newAcker(c)
	return c, nil
}

// Use adds middleware around every handler. Call it before Run.
func (c *Consumer) Use(mw ...Middleware) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mws = append(c.mws, mw...)
}

// Handle subscribes h under a stable name to events whose type matches
// pattern: "*" (all), "prefix.*" (any depth below prefix) or an exact
// type. The name is the handler's identity for retries, the DLQ and
// status: keep it stable across deploys. Call it before Run.
func (c *Consumer) Handle(name, pattern string, h Handler, opts ...SubscribeOption) error {
	s := &subscription{name: name, pattern: pattern, priority: DefaultPriority, timeout: DefaultHandlerTimeout, handler: h}
	for _, o := range opts {
		o(s)
	}
	switch {
	case h == nil:
		return fmt.Errorf("%w: handler %q is nil", ErrConfig, name)
	case name == "" || ValidateName(name) != nil || len(name) > 100:
		return fmt.Errorf("%w: handler name %q: want 1-100 characters without spaces, control characters or braces", ErrConfig, name)
	case s.timeout <= 0:
		return fmt.Errorf("%w: handler %q: timeout %v must be positive", ErrConfig, name, s.timeout)
	case s.timeout >= c.cfg.ClaimIdle:
		return fmt.Errorf("%w: handler %q: timeout %v must stay below ClaimIdle %v, or a slow run is taken for a dead consumer", ErrConfig, name, s.timeout, c.cfg.ClaimIdle)
	}
	if err := validPattern(pattern); err != nil {
		return fmt.Errorf("%w: handler %q: %v", ErrConfig, name, err)
	}
	if s.retry != nil {
		if err := s.retry.validate(); err != nil {
			return fmt.Errorf("%w: handler %q: %v", ErrConfig, name, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return fmt.Errorf("%w: Handle called after Run", ErrConfig)
	}
	for _, o := range c.subs {
		if o.name == name {
			return fmt.Errorf("%w: handler name %q registered twice", ErrConfig, name)
		}
	}
	s.met = c.bus.met.handler(name)
	c.subs = append(c.subs, s)
	slices.SortStableFunc(c.subs, func(a, b *subscription) int { return a.priority - b.priority })
	return nil
}

// Stats returns counters since the consumer started.
func (c *Consumer) Stats() ConsumerStats {
	return ConsumerStats{
		Handled: c.handled.Load(), Failed: c.failed.Load(), DeadLettered: c.deadLettered.Load(),
		Claimed: c.claimed.Load(), DeletedEntries: c.deleted.Load(), Acked: c.acked.Load(),
	}
}

// Run consumes until ctx is cancelled, then shuts down gracefully: it
// stops reading, lets in-flight handlers finish within ShutdownTimeout,
// and leaves unfinished entries pending for other consumers. Redis errors
// never stop it: reads back off exponentially up to 1 s (claims and retry
// forwarding up to 5 s, going on with the partitions that answer) and resume within about a second once Redis (on
// a Redis Cluster, the node that serves the partition) answers again; a
// dead Redis is not sent more than about two reads a second per reader,
// fewer while the circuit breaker refuses them. Run returns nil after a
// cancellation.
func (c *Consumer) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("eventbus: Consumer.Run called twice")
	}
	if len(c.subs) == 0 {
		c.mu.Unlock()
		return fmt.Errorf("%w: no handlers registered", ErrConfig)
	}
	c.running = true
	for _, s := range c.subs {
		for i := len(c.mws) - 1; i >= 0; i-- {
			s.handler = c.mws[i](s.handler)
		}
		// Tracing is outermost: user middleware sees the run's span.
		s.handler = c.tracing(s.handler)
	}
	c.mu.Unlock()

	c.handlerCtx, c.stopHandler = context.WithCancel(context.WithoutCancel(ctx))
	defer c.stopHandler()

	stopAcks := make(chan struct{})
	ackDone := make(chan struct{})
	go func() { defer close(ackDone); c.acks.run(stopAcks) }()

	// Long-lived workers handle the entries (their stacks grow once, not
	// once per event); handlers run on them, watched for overruns.
	for range c.cfg.Concurrency {
		c.startWorker(nil, nil, runResult{})
	}
	// The heartbeat goes first: a consumer is registered (with its
	// handlers) before it reads.
	if err := c.beat(ctx); err != nil && ctx.Err() == nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "heartbeat failed", slog.String("error", err.Error()))
	}
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	beatDone := make(chan struct{})
	go func() { defer close(beatDone); c.heartbeatLoop(stopWatch) }()
	go func() { defer close(watchDone); c.watchdog(stopWatch) }()
	touchDone := make(chan struct{})
	go func() { defer close(touchDone); c.touchLoop(stopWatch) }()
	// The stats counters go to Redis every second, and once more after
	// the last handler finished (a process may run consumers only).
	statsDone := make(chan struct{})
	go func() { defer close(statsDone); c.bus.stats.run(ctx, stopWatch) }()
	var loops sync.WaitGroup
	for _, set := range c.readSets() {
		loops.Go(func() { c.readLoop(ctx, set) })
	}
	loops.Go(func() { c.claimLoop(ctx) })
	loops.Go(func() { c.retryLoop(ctx) })
	loops.Wait()
	c.stopping.Store(true)
	close(c.work)

	// Stopped reading: give in-flight handlers their deadline.
	done := make(chan struct{})
	go func() { c.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.cfg.ShutdownTimeout):
		c.log.LogAttrs(context.Background(), slog.LevelWarn, "shutdown deadline passed; unfinished entries stay pending for other consumers")
		c.stopHandler() // the watchdog abandons handlers that ignore it
		<-done
	}
	close(stopWatch)
	<-watchDone
	<-touchDone
	<-beatDone
	<-statsDone
	// Flush the last acknowledgements.
	close(stopAcks)
	<-ackDone
	return nil
}

// retryRedis runs op until it succeeds, backing off while Redis is
// unreachable. It gives up (false) when the shutdown deadline passes, on
// any other error, or when another consumer claimed the entry: the entry
// then stays pending (or with its new owner).
func (c *Consumer) retryRedis(op func(ctx context.Context) error) bool {
	bo := backoff.Backoff{Min: 50 * time.Millisecond, Max: 5 * time.Second}
	for {
		err := op(c.handlerCtx)
		if err == nil {
			return true
		}
		if c.handlerCtx.Err() != nil {
			return false
		}
		if errors.Is(err, rdb.ErrNotOwner) || errors.Is(err, rdb.ErrNotPending) {
			c.log.LogAttrs(context.Background(), slog.LevelInfo, "entry claimed by another consumer; its outcome is theirs", slog.String("error", err.Error()))
			return false
		}
		if !errors.Is(err, ErrUnavailable) {
			c.log.LogAttrs(context.Background(), slog.LevelError, "recording outcome failed; entry left pending", slog.String("error", err.Error()))
			return false
		}
		c.log.LogAttrs(context.Background(), slog.LevelWarn, "recording outcome failed, retrying", slog.String("error", err.Error()))
		if !bo.Sleep(c.handlerCtx.Done()) {
			return false
		}
	}
}
