package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/auth"
	"github.com/hyvve/eventbus/internal/httpapi"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// recordSpans installs an in-memory span recorder as the global
// TracerProvider (and prop as the global propagator, when not nil) until
// the test ends. Tests calling it must not run in parallel.
func recordSpans(t *testing.T, prop propagation.TextMapPropagator) *tracetest.SpanRecorder {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	oldTP, oldProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	if prop != nil {
		otel.SetTextMapPropagator(prop)
	}
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		// The default global provider cannot be set back once replaced;
		// a no-op provider behaves the same.
		if _, sdk := oldTP.(*sdktrace.TracerProvider); sdk {
			otel.SetTracerProvider(oldTP)
		} else {
			otel.SetTracerProvider(noop.NewTracerProvider())
		}
		if prop != nil {
			// Likewise the default propagator: an empty composite is a no-op.
			if len(oldProp.Fields()) > 0 {
				otel.SetTextMapPropagator(oldProp)
			} else {
				otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
			}
		}
	})
	return rec
}

// tracePubKey is traceServer's API key of a tenant-a publisher.
const tracePubKey = "trace-publisher-key-0123456789"

// traceServer serves the HTTP API of b until the test ends.
func traceServer(t *testing.T, b *eventbus.Bus) *httptest.Server {
	t.Helper()
	keys, err := auth.ParseAPIKeys(tracePubKey + "=tenant-a:publisher")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(b, httpapi.Options{Auth: auth.New("a-test-secret-of-at-least-32-bytes!!", keys)}))
	t.Cleanup(srv.Close)
	return srv
}

// spansOf returns the ended spans of trace id.
func spansOf(rec *tracetest.SpanRecorder, id trace.TraceID) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanContext().TraceID() == id {
			out = append(out, s)
		}
	}
	return out
}

// attr returns span s's attribute key ("" when absent).
func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// spanIDs records the span each handler run saw in its context, by
// handler and attempt.
type spanIDs struct {
	mu  sync.Mutex
	ids map[string]trace.SpanContext
}

func (s *spanIDs) note(ctx context.Context) {
	d, _ := eventbus.DeliveryFromContext(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]trace.SpanContext{}
	}
	s.ids[fmt.Sprintf("%s#%d", d.Handler, d.Attempt)] = trace.SpanContextFromContext(ctx)
}

func (s *spanIDs) get(key string) trace.SpanContext {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[key]
}

// An HTTP publish with a traceparent header and its handler runs form one
// trace: the caller's span → the producer span → one consumer span per
// handler run, a retry's as well (with a link back to the producer).
func TestTraceHTTPPublishAndRetry(t *testing.T) {
	rec := recordSpans(t, propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	if err := b.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	cons := fastConsumer(t, b, nil)
	var seen spanIDs
	var flakyRuns sync.Map
	mustHandle(t, cons, "ok", "order.*", func(ctx context.Context, ev eventbus.Event) error {
		seen.note(ctx)
		return nil
	})
	mustHandle(t, cons, "flaky", "order.*", func(ctx context.Context, ev eventbus.Event) error {
		seen.note(ctx)
		if _, again := flakyRuns.LoadOrStore(ev.ID, true); !again {
			return errors.New("first attempt fails")
		}
		return nil
	})
	runConsumer(t, cons)

	srv := traceServer(t, b)

	const remoteTrace, remoteSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/events",
		strings.NewReader(`{"type":"order.created","userId":"u1","data":{"n":1}}`))
	req.Header.Set("Authorization", "Bearer "+tracePubKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+remoteTrace+"-"+remoteSpan+"-01")
	req.Header.Set("tracestate", "vendor=abc")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish: status %d", resp.StatusCode)
	}

	traceID, _ := trace.TraceIDFromHex(remoteTrace)
	parentID, _ := trace.SpanIDFromHex(remoteSpan)
	waitFor(t, 30*time.Second, "a producer span and 3 consumer spans", func() bool { return len(spansOf(rec, traceID)) == 4 })
	var producer sdktrace.ReadOnlySpan
	var consumers []sdktrace.ReadOnlySpan
	for _, s := range spansOf(rec, traceID) {
		switch s.SpanKind() {
		case trace.SpanKindProducer:
			producer = s
		case trace.SpanKindConsumer:
			consumers = append(consumers, s)
		default:
			t.Errorf("span %q of kind %v", s.Name(), s.SpanKind())
		}
	}
	if producer == nil || len(consumers) != 3 {
		t.Fatalf("want one producer and 3 consumer spans, got %d consumer spans", len(consumers))
	}
	if producer.Name() != "publish order.created" || producer.Parent().SpanID() != parentID || !producer.Parent().IsRemote() {
		t.Errorf("producer span %q has parent %v, want publish order.created under the caller's remote span %v", producer.Name(), producer.Parent(), parentID)
	}
	if got := producer.SpanContext().TraceState().Get("vendor"); got != "abc" {
		t.Errorf("producer tracestate vendor=%q, want abc (from the request)", got)
	}
	if attr(producer, "messaging.system").AsString() != "redis_streams" || attr(producer, "eventbus.tenant_id").AsString() != "tenant-a" ||
		attr(producer, "messaging.destination.name").AsString() != testKeys(prefix).Main() || attr(producer, "messaging.message.id").AsString() == "" {
		t.Errorf("producer attributes %v", producer.Attributes())
	}
	eventID := attr(producer, "messaging.message.id").AsString()
	runs := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range consumers {
		key := fmt.Sprintf("%s#%d", attr(s, "eventbus.handler").AsString(), attr(s, "eventbus.attempt").AsInt64())
		runs[key] = s
		if s.Parent().SpanID() != producer.SpanContext().SpanID() {
			t.Errorf("%s: parent %v, want the producer span %v", key, s.Parent().SpanID(), producer.SpanContext().SpanID())
		}
		if s.Name() != "process order.created" || attr(s, "messaging.message.id").AsString() != eventID ||
			attr(s, "messaging.consumer.group.name").AsString() != b.Config().Group {
			t.Errorf("%s: span %q attributes %v", key, s.Name(), s.Attributes())
		}
		if !seen.get(key).Equal(s.SpanContext()) {
			t.Errorf("%s: the handler's ctx carried span %v, want its consumer span %v", key, seen.get(key).SpanID(), s.SpanContext().SpanID())
		}
		wantLink := key == "flaky#2"
		if got := len(s.Links()); wantLink && (got != 1 || s.Links()[0].SpanContext.SpanID() != producer.SpanContext().SpanID()) || !wantLink && got != 0 {
			t.Errorf("%s: links %+v; want a link to the producer for the retry only", key, s.Links())
		}
	}
	for key, status := range map[string]codes.Code{"ok#1": codes.Unset, "flaky#1": codes.Error, "flaky#2": codes.Unset} {
		s := runs[key]
		if s == nil {
			t.Errorf("no consumer span for %s (have %v)", key, runs)
			continue
		}
		if s.Status().Code != status {
			t.Errorf("%s: status %v, want %v", key, s.Status(), status)
		}
	}
	if s := runs["flaky#1"]; s != nil && len(s.Events()) == 0 {
		t.Errorf("flaky#1: the handler error is not recorded as a span event")
	}
}

// An entry written without a trace context, or with a malformed one, is
// handled normally, as a root consumer span.
func TestTraceRawEntriesAreRootSpans(t *testing.T) {
	rec := recordSpans(t, nil)
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	cons := fastConsumer(t, b, nil)
	ran := newCounter()
	mustHandle(t, cons, "h", "*", func(ctx context.Context, ev eventbus.Event) error {
		if ev.TraceContext != nil {
			t.Errorf("%s: handler got trace context %+v, want none (malformed ones are dropped)", ev.ID, ev.TraceContext)
		}
		ran.add(ev.ID)
		return nil
	})
	runConsumer(t, cons)
	entries := map[string]string{
		"plain":      ``,
		"garbage":    `,"traceContext":{"traceparent":"garbage","tracestate":"a=b"}`,
		"zero-trace": `,"traceContext":{"traceparent":"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}`,
		"not-object": `,"traceContext":5`,
		"bad-member": `,"traceContext":{"traceparent":7}`,
	}
	for id, tc := range entries {
		payload := `{"id":"` + id + `","type":"order.created","tenantId":"t1","userId":"u1","data":{}` + tc + `}`
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: testKeys(prefix).Main(), Values: []any{rdb.FieldEvent, payload}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "every raw entry handled", func() bool { return ran.distinct() == len(entries) })
	waitFor(t, 30*time.Second, "a consumer span per entry", func() bool {
		n := 0
		for _, s := range rec.Ended() {
			if _, ok := entries[attr(s, "messaging.message.id").AsString()]; ok && s.SpanKind() == trace.SpanKindConsumer {
				n++
			}
		}
		return n == len(entries)
	})
	for _, s := range rec.Ended() {
		id := attr(s, "messaging.message.id").AsString()
		if _, ok := entries[id]; !ok {
			continue
		}
		if s.Parent().IsValid() || len(s.Links()) != 0 || !s.SpanContext().IsValid() {
			t.Errorf("%s: span with parent %v and links %v, want a root span", id, s.Parent(), s.Links())
		}
	}
}

// A replayed copy's consumer span is a child of the original publish's
// producer span and links to it.
func TestTraceReplayLinksToProducer(t *testing.T) {
	rec := recordSpans(t, nil) // the default (no-op) propagator: the W3C one is used
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	cons := fastConsumer(t, b, nil)
	ran := newCounter()
	mustHandle(t, cons, "h", "*", func(ctx context.Context, ev eventbus.Event) error {
		ran.add(ev.ID)
		return nil
	})
	runConsumer(t, cons)
	in := b.Inspector()
	waitFor(t, 30*time.Second, "the consumer registered", func() bool {
		cs, err := in.Consumers(ctx)
		return err == nil && len(cs) == 1
	})

	pctx, caller := otel.Tracer("test").Start(ctx, "caller")
	from := time.Now().Add(-time.Second)
	p, err := b.Publish(pctx, eventbus.Event{Type: "order.created", TenantID: "t1", UserID: "u1"})
	caller.End()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the event handled", func() bool { return ran.get(p.ID) == 1 })
	job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{From: from, To: time.Now().Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	runBus(t, b)
	waitJob(t, in, job.ID, 30*time.Second, "the job to complete", func(j eventbus.ReplayJob) bool { return j.Status == eventbus.ReplayCompleted })
	waitFor(t, 30*time.Second, "the copy handled", func() bool { return ran.get(p.ID) == 2 })

	traceID := caller.SpanContext().TraceID()
	waitFor(t, 30*time.Second, "caller, producer and 2 consumer spans", func() bool { return len(spansOf(rec, traceID)) == 4 })
	var producer trace.SpanContext
	for _, s := range spansOf(rec, traceID) {
		if s.SpanKind() == trace.SpanKindProducer {
			producer = s.SpanContext()
			if s.Parent().SpanID() != caller.SpanContext().SpanID() {
				t.Errorf("producer's parent %v, want the caller's span", s.Parent().SpanID())
			}
		}
	}
	var first, copied int
	for _, s := range spansOf(rec, traceID) {
		if s.SpanKind() != trace.SpanKindConsumer {
			continue
		}
		if s.Parent().SpanID() != producer.SpanID() {
			t.Errorf("consumer span's parent %v, want the producer %v", s.Parent().SpanID(), producer.SpanID())
		}
		if job := attr(s, "eventbus.replay_job").AsString(); job == "" {
			first++
			if len(s.Links()) != 0 {
				t.Errorf("first run links %v, want none", s.Links())
			}
		} else {
			copied++
			if len(s.Links()) != 1 || s.Links()[0].SpanContext.SpanID() != producer.SpanID() {
				t.Errorf("replayed run links %+v, want one to the producer", s.Links())
			}
		}
	}
	if first != 1 || copied != 1 {
		t.Errorf("%d first runs and %d replayed runs traced, want 1 and 1", first, copied)
	}
}

// Without an SDK (the no-op provider) a span context in ctx still travels
// with the event, and none is written when there is none.
func TestTraceContextWithoutSDK(t *testing.T) {
	old := otel.GetTracerProvider()
	if _, sdk := old.(*sdktrace.TracerProvider); sdk {
		otel.SetTracerProvider(noop.NewTracerProvider())
		t.Cleanup(func() { otel.SetTracerProvider(old) })
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled, Remote: true})
	traced, err := b.Publish(trace.ContextWithRemoteSpanContext(ctx, sc), eventbus.Event{Type: "order.created", TenantID: "t1", UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := b.Publish(ctx, eventbus.Event{Type: "order.created", TenantID: "t1", UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	given := &eventbus.TraceContext{Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	kept, err := b.Publish(ctx, eventbus.Event{Type: "order.created", TenantID: "t1", UserID: "u1", TraceContext: given})
	if err != nil {
		t.Fatal(err)
	}
	// The handler of the traced event gets its trace context in ctx (no
	// span of its own: the no-op provider starts none).
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	cons := fastConsumer(t, b, nil)
	var got sync.Map
	mustHandle(t, cons, "h", "*", func(ctx context.Context, ev eventbus.Event) error {
		got.Store(ev.ID, trace.SpanContextFromContext(ctx))
		return nil
	})
	if err := c.XGroupSetID(ctx, testKeys(prefix).Main(), b.Config().Group, "0").Err(); err != nil {
		t.Fatal(err)
	}
	runConsumer(t, cons)
	waitFor(t, 30*time.Second, "the three events handled", func() bool {
		n := 0
		got.Range(func(any, any) bool { n++; return true })
		return n == 3
	})
	if v, _ := got.Load(traced.ID); v.(trace.SpanContext).TraceID() != sc.TraceID() || v.(trace.SpanContext).SpanID() != sc.SpanID() {
		t.Errorf("traced event's handler ctx carries %v, want the publisher's span context", v)
	}
	if v, _ := got.Load(plain.ID); v.(trace.SpanContext).IsValid() {
		t.Errorf("plain event's handler ctx carries %v, want none", v)
	}
	for _, tc := range []struct {
		streamID, want string
	}{
		{traced.StreamID, `"traceContext":{"traceparent":"00-01020300000000000000000000000000-0405060000000000-01"}`},
		{plain.StreamID, ``},
		{kept.StreamID, `"traceContext":{"traceparent":"` + given.Traceparent + `"}`},
	} {
		msgs, err := c.XRange(ctx, testKeys(prefix).Main(), tc.streamID, tc.streamID).Result()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("XRANGE %s: %v %v", tc.streamID, msgs, err)
		}
		payload, _ := msgs[0].Values[rdb.FieldEvent].(string)
		if tc.want == "" && strings.Contains(payload, "traceContext") || !strings.Contains(payload, tc.want) {
			t.Errorf("entry %s: %s, want %s", tc.streamID, payload, tc.want)
		}
	}
}

// A malformed trace context is refused on publish (nothing written), with
// the batch index for PublishBatch and a 400 over HTTP.
func TestTraceContextRefusedOnPublish(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	good := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, tc := range []struct {
		name string
		tc   eventbus.TraceContext
	}{
		{"empty", eventbus.TraceContext{}},
		{"garbage", eventbus.TraceContext{Traceparent: "garbage"}},
		{"uppercase", eventbus.TraceContext{Traceparent: strings.ToUpper(good)}},
		{"version ff", eventbus.TraceContext{Traceparent: "ff" + good[2:]}},
		{"zero trace id", eventbus.TraceContext{Traceparent: "00-00000000000000000000000000000000-b7ad6b7169203331-01"}},
		{"zero parent id", eventbus.TraceContext{Traceparent: "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"}},
		{"version 00 too long", eventbus.TraceContext{Traceparent: good + "-extra"}},
		{"bad tracestate", eventbus.TraceContext{Traceparent: good, Tracestate: "not a list member"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tcv := tc.tc
			ev := eventbus.Event{Type: "order.created", TenantID: "t1", UserID: "u1", TraceContext: &tcv}
			var ve *eventbus.ValidationError
			if err := ev.Validate(); !errors.As(err, &ve) || ve.Field != "traceContext" {
				t.Errorf("Validate: %v, want a ValidationError for traceContext", err)
			}
			if _, err := b.Publish(ctx, ev); !errors.As(err, &ve) || ve.Field != "traceContext" || ve.Index != -1 || !errors.Is(err, eventbus.ErrInvalidEvent) {
				t.Errorf("Publish: %v, want a ValidationError for traceContext", err)
			}
			ok := eventbus.Event{Type: "order.created", TenantID: "t1", UserID: "u1"}
			if _, err := b.PublishBatch(ctx, []eventbus.Event{ok, ev}); !errors.As(err, &ve) || ve.Field != "traceContext" || ve.Index != 1 {
				t.Errorf("PublishBatch: %v, want a ValidationError for traceContext at index 1", err)
			}
		})
	}
	if n, err := c.XLen(ctx, testKeys(prefix).Main()).Result(); err != nil || n != 0 {
		t.Errorf("main stream holds %d entries (%v), want 0", n, err)
	}
	// Valid ones pass, a later version with more fields too.
	for _, tp := range []string{good, "01" + good[2:] + "-more"} {
		ev := eventbus.Event{Type: "order.created", TenantID: "t1", UserID: "u1", TraceContext: &eventbus.TraceContext{Traceparent: tp, Tracestate: "a=1,b=2"}}
		if err := ev.Validate(); err != nil {
			t.Errorf("Validate(%s): %v", tp, err)
		}
	}

	srv := traceServer(t, b)
	for _, body := range []string{
		`{"type":"order.created","userId":"u1","traceContext":{"traceparent":"garbage"}}`,
		`{"type":"order.created","userId":"u1","traceContext":5}`,
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tracePubKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("POST %s: status %d, want 400", body, resp.StatusCode)
		}
	}
}
