package eventbus

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Tracing (README, "Tracing"): Publish starts a producer span and writes
// its W3C trace context into the envelope's traceContext key; each
// handler run starts a consumer span whose parent is that context, with a
// link to it as well for retries and replayed copies. The library uses the
// global TracerProvider and TextMapPropagator and installs no exporter:
// with OpenTelemetry's default (no-op) provider it starts no spans and
// only carries the trace context along (see cachedTracer).

// TracerName is the instrumentation scope of the bus's spans.
const TracerName = "github.com/hyvve/eventbus"

// Span attribute values and keys (OpenTelemetry messaging semantic
// conventions, plus the bus's own under eventbus.*).
const (
	messagingSystem       = "redis_streams"
	attrSystem            = attribute.Key("messaging.system")
	attrDestination       = attribute.Key("messaging.destination.name")
	attrMessageID         = attribute.Key("messaging.message.id")
	attrOperationType     = attribute.Key("messaging.operation.type")
	attrOperationName     = attribute.Key("messaging.operation.name")
	attrBatchCount        = attribute.Key("messaging.batch.message_count")
	attrConsumerGroup     = attribute.Key("messaging.consumer.group.name")
	attrClientID          = attribute.Key("messaging.client.id")
	attrConversationID    = attribute.Key("messaging.message.conversation_id")
	attrTenant            = attribute.Key("eventbus.tenant_id")
	attrEventType         = attribute.Key("eventbus.event_type")
	attrHandler           = attribute.Key("eventbus.handler")
	attrAttempt           = attribute.Key("eventbus.attempt")
	attrStreamID          = attribute.Key("eventbus.stream_id")
	attrReplayJob         = attribute.Key("eventbus.replay_job")
	attrDuplicate         = attribute.Key("eventbus.duplicate")
	attrLinkReason        = attribute.Key("eventbus.link")
	maxTraceparentLength  = 256 // generous for future versions; version 00 is 55
	maxTracestateLength   = 512 // the W3C limit on what a vendor must propagate
	traceparentV00Length  = 55
	traceparentHeaderName = "traceparent"
)

var (
	producerStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}
	consumerStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)}
	// A run without a trace context is a root span, even when the
	// context given to Consumer.Run carries a span.
	consumerRootStart = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithNewRoot()}
)

// cachedTracer is the bus's tracer for one global TracerProvider: the
// provider is read on every span (a test or a program may replace it), the
// tracer looked up and probed only when it changed.
type cachedTracer struct {
	tp trace.TracerProvider
	tr trace.Tracer
	// passThrough: the tracer makes no spans of its own; it hands back
	// the parent's span context (OpenTelemetry's default global provider
	// before an SDK is installed, and the no-op provider). The bus then
	// skips starting spans and only carries the trace context along.
	passThrough bool
}

var tracerCache atomic.Pointer[cachedTracer]

// probeParent is the parent of the probe span: not sampled, so that an
// SDK with the default sampler does not even record the probe.
var probeParent = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID: trace.TraceID{0xeb, 1}, SpanID: trace.SpanID{0xeb, 1}, Remote: true})

// tracer returns the bus's tracer from the current global provider, and
// whether it is pass-through.
func tracer() (trace.Tracer, bool) {
	tp := otel.GetTracerProvider()
	if c := tracerCache.Load(); c != nil && c.tp == tp {
		return c.tr, c.passThrough
	}
	tr := tp.Tracer(TracerName)
	// A span the tracer starts under probeParent tells: an SDK makes a
	// new span id (the probe is never ended, so never exported), a
	// pass-through tracer returns the parent's context.
	_, probe := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), probeParent), "eventbus.probe")
	c := &cachedTracer{tp: tp, tr: tr, passThrough: !probe.IsRecording() && probe.SpanContext().Equal(probeParent)}
	// Only a provider of a comparable type is cached: comparing the next
	// one with it can then never panic.
	if reflect.TypeOf(tp).Comparable() {
		tracerCache.Store(c)
	}
	return c.tr, c.passThrough
}

// noSpan is the span of a publish or handler run that records nothing.
var noSpan = trace.SpanFromContext(context.Background())

// propagator returns the global propagator when it carries traceparent,
// else the W3C one: with OpenTelemetry's default (no-op) propagator the
// trace context still travels with the event.
func propagator() propagation.TextMapPropagator {
	p := otel.GetTextMapPropagator()
	if slices.Contains(p.Fields(), traceparentHeaderName) {
		return p
	}
	return propagation.TraceContext{}
}

// traceCarrier adapts a TraceContext to propagation.TextMapCarrier; keys
// other than traceparent and tracestate (baggage) are not carried.
type traceCarrier struct{ tc *TraceContext }

func (c traceCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.tc.Traceparent
	case "tracestate":
		return c.tc.Tracestate
	}
	return ""
}

func (c traceCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.tc.Traceparent = value
	case "tracestate":
		c.tc.Tracestate = value
	}
}

func (c traceCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }

// spanContext returns the span context tc carries, invalid when tc is nil
// or malformed.
func (tc *TraceContext) spanContext() trace.SpanContext {
	if tc == nil || tc.Traceparent == "" {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(propagator().Extract(context.Background(), traceCarrier{tc}))
}

// validate checks tc on the publishing side.
func (tc *TraceContext) validate() error {
	if tc.Traceparent == "" {
		return errors.New("traceparent is required")
	}
	if err := validTraceparent(tc.Traceparent); err != nil {
		return fmt.Errorf("traceparent %.80q: %w", tc.Traceparent, err)
	}
	if tc.Tracestate != "" {
		if len(tc.Tracestate) > maxTracestateLength {
			return fmt.Errorf("tracestate: %d bytes, longer than %d", len(tc.Tracestate), maxTracestateLength)
		}
		if _, err := trace.ParseTraceState(tc.Tracestate); err != nil {
			return fmt.Errorf("tracestate: %w", err)
		}
	}
	return nil
}

// sanitized is tc as a consumer keeps it: nil when the traceparent is
// missing or malformed, without the tracestate when only that is (as the
// W3C specification says a receiver treats them).
func (tc *TraceContext) sanitized() *TraceContext {
	if tc == nil || validTraceparent(tc.Traceparent) != nil {
		return nil
	}
	if tc.Tracestate != "" {
		if _, err := trace.ParseTraceState(tc.Tracestate); err != nil || len(tc.Tracestate) > maxTracestateLength {
			return &TraceContext{Traceparent: tc.Traceparent}
		}
	}
	return tc
}

// validTraceparent checks the W3C traceparent syntax:
// version "-" trace-id "-" parent-id "-" flags, lowercase hex, the
// version not ff, the ids not all zero. Version 00 is exactly 55 bytes
// with flags 00 to 03 (sampled and random; OpenTelemetry's propagator
// refuses the reserved bits); a later version may append "-" and more
// fields.
func validTraceparent(s string) error {
	if len(s) < traceparentV00Length || len(s) > maxTraceparentLength {
		return errors.New("want version-traceid-parentid-flags, 55 bytes for version 00")
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return errors.New("want version-traceid-parentid-flags separated by '-'")
	}
	hex := func(from, to int) bool {
		for i := from; i < to; i++ {
			if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return false
			}
		}
		return true
	}
	zero := func(from, to int) bool {
		for i := from; i < to; i++ {
			if s[i] != '0' {
				return false
			}
		}
		return true
	}
	switch {
	case !hex(0, 2) || !hex(3, 35) || !hex(36, 52) || !hex(53, 55):
		return errors.New("not lowercase hexadecimal")
	case s[:2] == "ff":
		return errors.New("version ff is invalid")
	case s[:2] == "00" && len(s) != traceparentV00Length:
		return errors.New("version 00 is 55 bytes")
	case s[:2] == "00" && (s[53] != '0' || s[54] > '3'):
		return errors.New("version 00 defines flag bits 0 and 1 only (flags 00 to 03)")
	case len(s) > traceparentV00Length && s[traceparentV00Length] != '-':
		return errors.New("fields after the flags must follow a '-'")
	case zero(3, 35):
		return errors.New("trace id is all zero")
	case zero(36, 52):
		return errors.New("parent id is all zero")
	}
	return nil
}

// startPublishSpan starts the producer span of a publish and writes its
// context into the envelopes: first alone for Publish, every event of
// batch (first being batch[0]) for PublishBatch. Its parent is ctx's span;
// when ctx has none, the trace context the caller set on first. A caller's
// malformed trace context is refused (a *ValidationError, the span still
// started so that the refusal is traced); nothing is injected then.
func startPublishSpan(ctx context.Context, first *Event, batch []Event) (trace.Span, error) {
	var bad error
	if batch == nil {
		if first.TraceContext != nil {
			if err := first.TraceContext.validate(); err != nil {
				bad = &ValidationError{Index: -1, Field: "traceContext", Reason: err.Error()}
			}
		}
	} else {
		for i := range batch {
			if batch[i].TraceContext == nil {
				continue
			}
			if err := batch[i].TraceContext.validate(); err != nil {
				bad = &ValidationError{Index: i, Field: "traceContext", Reason: err.Error()}
				break
			}
		}
	}
	if bad == nil && !trace.SpanContextFromContext(ctx).IsValid() {
		if sc := first.TraceContext.spanContext(); sc.IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	tr, passThrough := tracer()
	if passThrough {
		// No span to start: carry ctx's span context (the caller's is
		// left as it is when ctx has none).
		sc := trace.SpanContextFromContext(ctx)
		if bad != nil || !sc.IsValid() {
			return noSpan, bad
		}
		injectInto(sc, first, batch)
		return noSpan, nil
	}
	name := "publish"
	switch {
	case batch != nil:
		name = "publish batch"
	case validType(first.Type) == nil:
		name = "publish " + first.Type
	}
	_, span := tr.Start(ctx, name, producerStart...)
	if sc := span.SpanContext(); bad == nil && sc.IsValid() {
		injectInto(sc, first, batch)
	}
	return span, bad
}

// injectInto writes sc into first alone (batch nil) or into every event
// of batch.
func injectInto(sc trace.SpanContext, first *Event, batch []Event) {
	var tc TraceContext
	propagator().Inject(trace.ContextWithSpanContext(context.Background(), sc), traceCarrier{&tc})
	if batch == nil {
		first.TraceContext = &tc
		return
	}
	for i := range batch {
		t := tc
		batch[i].TraceContext = &t
	}
}

// endPublishSpan notes the outcome of a publish on its span and ends it:
// first and batch as given to startPublishSpan (prepared, ids filled in
// unless the publish was refused), p the result of a single publish.
func (b *Bus) endPublishSpan(span trace.Span, first *Event, batch []Event, p Published, err error) {
	if span.IsRecording() {
		attrs := []attribute.KeyValue{attrSystem.String(messagingSystem), attrDestination.String(b.rdb.Keys().Main()),
			attrOperationType.String("send"), attrOperationName.String("publish")}
		if batch == nil {
			attrs = append(attrs, attrMessageID.String(first.ID), attrEventType.String(first.Type),
				attrTenant.String(first.TenantID), attrConversationID.String(first.CorrelationID))
			if err == nil {
				attrs = append(attrs, attrStreamID.String(p.StreamID), attrDuplicate.Bool(p.Duplicate))
			}
		} else {
			attrs = append(attrs, attrBatchCount.Int(len(batch)))
			if tenant := batchTenant(batch); tenant != "" {
				attrs = append(attrs, attrTenant.String(tenant))
			}
		}
		span.SetAttributes(attrs...)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// batchTenant is the tenant of every event of evs, "" when they have
// several.
func batchTenant(evs []Event) string {
	tenant := evs[0].TenantID
	for i := range evs {
		if evs[i].TenantID != tenant {
			return ""
		}
	}
	return tenant
}

// tracing is the consumer's built-in middleware, outermost (user
// middleware and the handler see its span in ctx): each handler run is a
// consumer span whose parent is the event's trace context, and for a
// retry or a replayed copy also links to it (the run is caused by the
// publish, but not right after it). A malformed or absent context makes
// a root span. A handler error sets the span's status; a panic too (the
// consumer recovers it outside this middleware).
func (c *Consumer) tracing(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, ev Event) error {
		tr, passThrough := tracer()
		parent := ev.TraceContext.spanContext()
		if passThrough {
			// No span to start: the handler's ctx carries the event's
			// trace context, for spans of its own or further publishes.
			if parent.IsValid() {
				ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
			}
			return next.Handle(ctx, ev)
		}
		d, _ := DeliveryFromContext(ctx)
		start := consumerRootStart
		sctx := ctx
		if parent.IsValid() {
			sctx = trace.ContextWithRemoteSpanContext(ctx, parent)
			start = consumerStart
			if reason := linkReason(d); reason != "" {
				start = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer),
					trace.WithLinks(trace.Link{SpanContext: parent, Attributes: []attribute.KeyValue{attrLinkReason.String(reason)}})}
			}
		}
		sctx, span := tr.Start(sctx, "process "+ev.Type, start...)
		if !span.IsRecording() {
			if !span.SpanContext().IsValid() {
				return next.Handle(ctx, ev) // nothing to carry: the handler gets the context as it was
			}
			return next.Handle(sctx, ev)
		}
		span.SetAttributes(attrSystem.String(messagingSystem), attrDestination.String(d.Stream),
			attrOperationType.String("process"), attrOperationName.String("process"),
			attrMessageID.String(ev.ID), attrConsumerGroup.String(d.Group), attrClientID.String(d.Consumer),
			attrConversationID.String(ev.CorrelationID), attrTenant.String(ev.TenantID), attrEventType.String(ev.Type),
			attrHandler.String(d.Handler), attrAttempt.Int(d.Attempt), attrStreamID.String(d.StreamID))
		if d.Replay != "" {
			span.SetAttributes(attrReplayJob.String(d.Replay))
		}
		returned := false
		defer func() {
			if !returned {
				span.SetStatus(codes.Error, "handler panicked")
			}
			span.End()
		}()
		err := next.Handle(sctx, ev)
		returned = true
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return err
	})
}

// linkReason says why a run links to its publish: "retry" for attempt 2
// on, "replay" for a replayed copy, "" for a first run.
func linkReason(d Delivery) string {
	switch {
	case d.Replay != "":
		return "replay"
	case d.Attempt > 1:
		return "retry"
	}
	return ""
}
