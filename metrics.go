package eventbus

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hyvve/eventbus/internal/rdb"
)

// DefaultMetricsMaxTypes is how many distinct event types get their own
// label value in the metrics of one Bus; later types count under
// MetricsOtherType.
const DefaultMetricsMaxTypes = 100

// MetricsOtherType is the type label of events whose type came after the
// cap of Config.MetricsMaxTypes. It is never a valid event type.
const MetricsOtherType = "other"

// Label values of eventbus_events_published_total's outcome.
const (
	PublishWritten   = "written"   // written to the main stream
	PublishDuplicate = "duplicate" // an idempotent repeat: nothing written
	PublishFailed    = "failed"    // not written
	PublishUnknown   = "unknown"   // sent, no reply: may have been written
)

// Label values of eventbus_handler_runs_total's outcome.
const (
	RunSuccess   = "success"
	RunFailure   = "failure"   // an error: a retry is scheduled, or the DLQ when retries are spent
	RunPermanent = "permanent" // an error wrapping ErrPermanent
	RunTimeout   = "timeout"   // past the handler's timeout
	RunPanic     = "panic"
)

// Histogram buckets, in seconds.
var (
	publishBuckets  = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	handlerBuckets  = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	deliveryBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}
)

// metrics is a Bus's Prometheus metrics, registered on Config.Registerer.
// A nil *metrics (no Registerer) records nothing and costs a nil check.
// Label children are resolved once per event type and handler and kept:
// recording is then an atomic add.
type metrics struct {
	published      *prometheus.CounterVec
	publishLatency *prometheus.HistogramVec
	publishOne     prometheus.Observer
	publishBatch   prometheus.Observer
	runs           *prometheus.CounterVec
	runDuration    *prometheus.HistogramVec
	deliveryDelay  prometheus.Histogram
	retries        *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	redrives       prometheus.Counter
	replayCopies   prometheus.Counter

	maxTypes int
	typesMu  sync.Mutex // serialises adding a type
	// types maps event types to their counters; it is replaced (copied)
	// when a type is added, so that lookups take no lock and allocate
	// nothing.
	types atomic.Pointer[map[string]*publishCounters]
	other *publishCounters

	handlers sync.Map // handler name -> *handlerMetrics
}

// publishCounters are one event type's publish outcome counters.
type publishCounters struct {
	written, duplicate, failed, unknown prometheus.Counter
}

// handlerMetrics are one handler's resolved metrics.
type handlerMetrics struct {
	runs        [5]prometheus.Counter // by runOutcome
	duration    prometheus.Observer
	retries     prometheus.Counter
	deadLetters prometheus.Counter
}

// runOutcome indexes handlerMetrics.runs.
type runOutcome int

const (
	runSuccess runOutcome = iota
	runFailure
	runPermanent
	runTimeout
	runPanic
)

var runOutcomeNames = [...]string{RunSuccess, RunFailure, RunPermanent, RunTimeout, RunPanic}

// newMetrics registers the bus's metrics on reg; nil reg: no metrics.
func newMetrics(reg prometheus.Registerer, maxTypes int) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_events_published_total",
			Help: "Events published through this process, by event type (capped; later types count as \"other\") and outcome: written, duplicate (idempotent repeat, nothing written), failed (not written), unknown (sent, no reply).",
		}, []string{"type", "outcome"}),
		publishLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eventbus_publish_duration_seconds",
			Help:    "Time a Publish (call=\"publish\") or PublishBatch (call=\"batch\") call waited for its write, queueing included, whatever the outcome.",
			Buckets: publishBuckets,
		}, []string{"call"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_handler_runs_total",
			Help: "Handler runs in this process's consumers, by handler and outcome: success, failure, permanent, timeout, panic.",
		}, []string{"handler", "outcome"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eventbus_handler_duration_seconds",
			Help:    "Duration of handler runs, by handler (a run abandoned past its timeout counts until it was abandoned).",
			Buckets: handlerBuckets,
		}, []string{"handler"}),
		deliveryDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eventbus_delivery_delay_seconds",
			Help:    "Time from an event's timestamp to the start of its first handler run, for deliveries from the main stream (retries and replayed copies excluded).",
			Buckets: deliveryBuckets,
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_retries_scheduled_total",
			Help: "Retries scheduled after a failed handler run, by handler.",
		}, []string{"handler"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventbus_dead_letters_total",
			Help: "Dead letters written by this process's consumers, by handler (empty for entries that are not valid events).",
		}, []string{"handler"}),
		redrives: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventbus_redrives_total",
			Help: "Dead letters redriven (sent back to their handler) through this process.",
		}),
		replayCopies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eventbus_replay_copies_total",
			Help: "Replayed copies written to the replay stream by this process's replay runners.",
		}),
		maxTypes: maxTypes,
	}
	for _, c := range []prometheus.Collector{m.published, m.publishLatency, m.runs, m.runDuration, m.deliveryDelay,
		m.retries, m.deadLetters, m.redrives, m.replayCopies} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				err = fmt.Errorf("%w (two buses on one registry: give each its own label value with prometheus.WrapRegistererWith)", err)
			}
			return nil, fmt.Errorf("eventbus: registering metrics: %w", err)
		}
	}
	m.publishOne = m.publishLatency.WithLabelValues("publish")
	m.publishBatch = m.publishLatency.WithLabelValues("batch")
	m.other = m.newPublishCounters(MetricsOtherType)
	m.types.Store(&map[string]*publishCounters{})
	return m, nil
}

func (m *metrics) newPublishCounters(typ string) *publishCounters {
	return &publishCounters{
		written:   m.published.WithLabelValues(typ, PublishWritten),
		duplicate: m.published.WithLabelValues(typ, PublishDuplicate),
		failed:    m.published.WithLabelValues(typ, PublishFailed),
		unknown:   m.published.WithLabelValues(typ, PublishUnknown),
	}
}

// byType returns typ's publish counters: its own while fewer than
// maxTypes types have been seen, else MetricsOtherType's.
func (m *metrics) byType(typ string) *publishCounters {
	types := *m.types.Load()
	if pc, ok := types[typ]; ok {
		return pc
	}
	if len(types) >= m.maxTypes {
		return m.other
	}
	m.typesMu.Lock()
	defer m.typesMu.Unlock()
	types = *m.types.Load()
	if pc, ok := types[typ]; ok {
		return pc
	}
	if len(types) >= m.maxTypes {
		return m.other
	}
	next := make(map[string]*publishCounters, len(types)+1)
	for k, v := range types {
		next[k] = v
	}
	pc := m.newPublishCounters(typ)
	next[typ] = pc
	m.types.Store(&next)
	return pc
}

// publishResult counts one event's publish outcome from the result of its
// write: written or duplicate when err is nil, unknown for an
// *rdb.OutcomeUnknown, failed otherwise.
func (m *metrics) publishResult(typ string, duplicate bool, err error) {
	if m == nil {
		return
	}
	pc := m.byType(typ)
	switch {
	case err == nil && duplicate:
		pc.duplicate.Inc()
	case err == nil:
		pc.written.Inc()
	case outcomeUnknown(err):
		pc.unknown.Inc()
	default:
		pc.failed.Inc()
	}
}

// publishResults counts the outcomes of n events (event i's type and
// result from at): like publishResult for each, but a run of events of one
// type written in a row costs one counter update, so that a coalesced
// batch of one type costs one atomic add.
func (m *metrics) publishResults(n int, at func(i int) (typ string, duplicate bool, err error)) {
	if m == nil {
		return
	}
	var runType string
	run := 0
	flush := func() {
		if run > 0 {
			m.byType(runType).written.Add(float64(run))
			run = 0
		}
	}
	for i := range n {
		typ, dup, err := at(i)
		if err != nil || dup {
			m.publishResult(typ, dup, err)
			continue
		}
		if run > 0 && typ != runType {
			flush()
		}
		runType = typ
		run++
	}
	flush()
}

// outcomeUnknown reports whether err is an *rdb.OutcomeUnknown (a
// function of its own: its target escapes, and the written path must not
// pay that allocation).
func outcomeUnknown(err error) bool {
	var ou *rdb.OutcomeUnknown
	return errors.As(err, &ou)
}

// publishCalled records a Publish call's latency (from start), and counts
// the event as failed when it was withdrawn before it was sent (its write
// never ran, so sendAppends did not count it).
func (m *metrics) publishCalled(typ string, start time.Time, err error) {
	if m == nil {
		return
	}
	m.publishOne.Observe(time.Since(start).Seconds())
	if err != nil && errors.Is(err, errQueued) {
		m.byType(typ).failed.Inc()
	}
}

// now is time.Now when metrics are on (the zero time otherwise: no
// clock read).
func (m *metrics) now() time.Time {
	if m == nil {
		return time.Time{}
	}
	return time.Now()
}

// batchCalled records a PublishBatch call's latency (from start).
func (m *metrics) batchCalled(start time.Time) {
	if m == nil {
		return
	}
	m.publishBatch.Observe(time.Since(start).Seconds())
}

// batchResult counts the outcome of an atomic batch write: each event
// written or duplicate, or all failed or all unknown.
func (m *metrics) batchResult(evs []Event, res []rdb.Appended, err error) {
	if m == nil {
		return
	}
	m.publishResults(len(evs), func(i int) (string, bool, error) {
		if err != nil {
			return evs[i].Type, false, err
		}
		return evs[i].Type, res[i].Duplicate, nil
	})
}

// handler returns the resolved metrics of handler name (nil when metrics
// are off).
func (m *metrics) handler(name string) *handlerMetrics {
	if m == nil {
		return nil
	}
	if v, ok := m.handlers.Load(name); ok {
		return v.(*handlerMetrics)
	}
	h := &handlerMetrics{
		duration:    m.runDuration.WithLabelValues(name),
		retries:     m.retries.WithLabelValues(name),
		deadLetters: m.deadLetters.WithLabelValues(name),
	}
	for i, o := range runOutcomeNames {
		h.runs[i] = m.runs.WithLabelValues(name, o)
	}
	v, _ := m.handlers.LoadOrStore(name, h)
	return v.(*handlerMetrics)
}

// ran records one handler run.
func (h *handlerMetrics) ran(o runOutcome, took time.Duration) {
	if h == nil {
		return
	}
	h.runs[o].Inc()
	h.duration.Observe(took.Seconds())
}

// delivered records the delay from an event's timestamp to its first
// handler run.
func (m *metrics) delivered(ts time.Time, now time.Time) {
	if m == nil || ts.IsZero() {
		return
	}
	d := now.Sub(ts).Seconds()
	if d < 0 {
		d = 0 // the publisher's clock ahead of ours
	}
	m.deliveryDelay.Observe(d)
}

// settled counts the retries scheduled and dead letters written by one
// settled entry.
func (m *metrics) settled(ops []rdb.SettleOp) {
	if m == nil {
		return
	}
	for _, op := range ops {
		switch op.Kind {
		case rdb.OpRetry:
			m.handler(op.Handler).retries.Inc()
		case rdb.OpDLQ:
			m.handler(op.Handler).deadLetters.Inc()
		}
	}
}

// deadLetteredEntry counts an entry that was not a valid event moved to
// the DLQ (no handler).
func (m *metrics) deadLetteredEntry() {
	if m == nil {
		return
	}
	m.deadLetters.WithLabelValues("").Inc()
}

// redriven counts n dead letters redriven.
func (m *metrics) redriven(n int) {
	if m == nil || n == 0 {
		return
	}
	m.redrives.Add(float64(n))
}

// replayed counts n replayed copies written.
func (m *metrics) replayed(n int) {
	if m == nil || n == 0 {
		return
	}
	m.replayCopies.Add(float64(n))
}
