package eventbus

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of CollectorOptions.
const (
	// DefaultCollectorTTL is how long the gauges read from Redis are
	// served from cache.
	DefaultCollectorTTL = 5 * time.Second
	// DefaultCollectorTimeout bounds one read of the gauges from Redis.
	DefaultCollectorTimeout = 2 * time.Second
)

// CollectorOptions configure the collector of Inspector.Collector.
type CollectorOptions struct {
	// TTL is how long one read of Redis is served to scrapes: scrapes
	// within it cost no Redis call. Default 5 s.
	TTL time.Duration
	// Timeout bounds one read of Redis; past it (or on any Redis error)
	// the scrape answers eventbus_redis_up 0 and no other gauge. Default
	// 2 s.
	Timeout time.Duration
}

// Collector returns a prometheus.Collector of the bus's state read from
// Redis at scrape time: stream lengths (main, DLQ, replay), the group's
// pending entries, lag, oldest pending age, retries waiting and live
// consumers, and eventbus_redis_up. Main and DLQ figures are totals over
// the partitions; with more than one partition, the eventbus_partition_*
// gauges give each partition's (label partition, its index). One read (Stats of AllTenants, plus
// the replay stream's length) serves every scrape for opts.TTL, and
// concurrent scrapes share it.
//
// These numbers are the same from every process of a bus: register the
// collector in one of them (eventbus serve does), not in every consumer.
// The collector is not registered anywhere by the library.
func (in *Inspector) Collector(opts CollectorOptions) prometheus.Collector {
	if opts.TTL <= 0 {
		opts.TTL = DefaultCollectorTTL
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultCollectorTimeout
	}
	group := in.b.cfg.Group
	gd := func(name, help string) groupDesc {
		return groupDesc{prometheus.NewDesc(name, help, []string{"group"}, nil), group}
	}
	return &redisCollector{
		in: in, ttl: opts.TTL, timeout: opts.Timeout, now: time.Now,
		up: prometheus.NewDesc("eventbus_redis_up",
			"1 when the last read of the bus's state from Redis succeeded (with several partitions, possibly without some: see eventbus_partition_up), 0 when it failed or timed out (the other eventbus gauges are then absent).", nil, nil),
		streamLen: prometheus.NewDesc("eventbus_stream_length",
			"Entries in a stream: main, dlq, replay (main and dlq summed over every partition).", []string{"stream"}, nil),
		pending: gd("eventbus_group_pending",
			"Entries delivered to the group and not yet acknowledged, over every stream it reads (every partition)."),
		lag: gd("eventbus_group_lag",
			"Main-stream entries not yet delivered to the group, summed over every partition; absent when Redis cannot tell."),
		partLen: prometheus.NewDesc("eventbus_partition_stream_length",
			"Entries in one partition's stream: main, dlq. Present only with more than one partition (their sum is eventbus_stream_length).",
			[]string{"partition", "stream"}, nil),
		partPending: prometheus.NewDesc("eventbus_partition_group_pending",
			"Entries of one partition's main stream delivered to the group and not yet acknowledged. Present only with more than one partition.",
			[]string{"group", "partition"}, nil),
		partLag: prometheus.NewDesc("eventbus_partition_group_lag",
			"Entries of one partition's main stream not yet delivered to the group; absent when Redis cannot tell. Present only with more than one partition.",
			[]string{"group", "partition"}, nil),
		partUp: prometheus.NewDesc("eventbus_partition_up",
			"1 when one partition's keys were read, 0 when they could not be (its Redis Cluster master away): the totals (eventbus_stream_length, eventbus_group_*) are then absent, the other partitions' gauges present. Present only with more than one partition.",
			[]string{"partition"}, nil),
		oldest: gd("eventbus_group_oldest_pending_age_seconds",
			"Age of the group's oldest delivered but unacknowledged entry, by its stream id; 0 when none."),
		retries: gd("eventbus_retries_waiting",
			"Retries scheduled and not yet due."),
		consumers: gd("eventbus_consumers",
			"Live consumers of the group (heartbeat younger than 30 s)."),
	}
}

// groupDesc is a Desc with the label value of its group.
type groupDesc struct {
	*prometheus.Desc
	group string
}

// redisCollector implements Inspector.Collector.
type redisCollector struct {
	in           *Inspector
	ttl, timeout time.Duration
	now          func() time.Time

	up, streamLen                            *prometheus.Desc
	pending, lag, oldest, retries, consumers groupDesc
	partLen, partPending, partLag, partUp    *prometheus.Desc

	mu     sync.Mutex
	readAt time.Time
	cached []prometheus.Metric
	// reading is closed when the read in flight ends; nil when none.
	// Concurrent scrapes share one read, and a scrape that gives up at
	// the timeout leaves it to finish (and fill the cache) in the
	// background rather than starting another.
	reading chan struct{}
}

func (c *redisCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.streamLen, c.pending.Desc, c.lag.Desc, c.oldest.Desc, c.retries.Desc, c.consumers.Desc,
		c.partLen, c.partPending, c.partLag, c.partUp} {
		ch <- d
	}
}

// Collect serves the cached gauges while younger than the TTL; else it
// reads Redis, waiting at most the timeout: past it the scrape gets
// eventbus_redis_up 0. The read runs on its own goroutine, which ends when
// the read does (bounded by the timeout through its context, and by the
// Redis client's own timeouts when the client ignores contexts).
func (c *redisCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if c.cached != nil && c.now().Sub(c.readAt) < c.ttl {
		ms := c.cached
		c.mu.Unlock()
		emit(ch, ms)
		return
	}
	if c.reading == nil {
		done := make(chan struct{})
		c.reading = done
		go func() {
			ms := c.read()
			c.mu.Lock()
			c.cached, c.readAt, c.reading = ms, c.now(), nil
			c.mu.Unlock()
			close(done)
		}()
	}
	done := c.reading
	c.mu.Unlock()
	t := time.NewTimer(c.timeout)
	defer t.Stop()
	select {
	case <-done:
		c.mu.Lock()
		ms := c.cached
		c.mu.Unlock()
		emit(ch, ms)
	case <-t.C:
		ch <- c.down()
	}
}

func emit(ch chan<- prometheus.Metric, ms []prometheus.Metric) {
	for _, m := range ms {
		ch <- m
	}
}

func (c *redisCollector) down() prometheus.Metric {
	return prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
}

// read reads the gauges from Redis, bounded by the timeout; on failure
// only eventbus_redis_up 0.
func (c *redisCollector) read() []prometheus.Metric {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	down := []prometheus.Metric{c.down()}
	st, err := c.in.Stats(ctx, AllTenants())
	if err != nil {
		return down
	}
	b := c.in.b
	_, _, replayLen, err := b.rdb.StreamEnds(ctx, b.rdb.Keys().Replay())
	if err != nil {
		return down
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
		return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	out := []prometheus.Metric{gauge(c.up, 1), gauge(c.streamLen, float64(replayLen), "replay")}
	if !st.Incomplete { // totals that leave a partition out would be wrong: absent instead
		out = append(out, gauge(c.streamLen, float64(st.DLQ.Length), "dlq"))
		if ms := st.MainStream; ms != nil {
			out = append(out, gauge(c.streamLen, float64(ms.Length), "main"))
		}
		if g := st.ConsumerGroup; g != nil {
			out = append(out,
				gauge(c.pending.Desc, float64(g.Pending), c.pending.group),
				gauge(c.retries.Desc, float64(g.RetriesScheduled), c.retries.group),
				gauge(c.consumers.Desc, float64(g.Consumers), c.consumers.group))
			age := 0.0
			if g.OldestPendingAgeMs != nil {
				age = float64(*g.OldestPendingAgeMs) / 1000
			}
			out = append(out, gauge(c.oldest.Desc, age, c.oldest.group))
			if g.Lag != nil {
				out = append(out, gauge(c.lag.Desc, float64(*g.Lag), c.lag.group))
			}
		}
	}
	for _, p := range st.Partitions {
		idx := strconv.Itoa(p.Index)
		if p.Error != "" {
			out = append(out, gauge(c.partUp, 0, idx))
			continue
		}
		out = append(out, gauge(c.partUp, 1, idx),
			gauge(c.partLen, float64(p.Length), idx, "main"),
			gauge(c.partLen, float64(p.DLQ), idx, "dlq"),
			gauge(c.partPending, float64(p.Pending), c.pending.group, idx))
		if p.Lag != nil {
			out = append(out, gauge(c.partLag, float64(*p.Lag), c.lag.group, idx))
		}
	}
	return out
}
