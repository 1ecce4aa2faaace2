package httpapi

import (
	"context"
	"net/http"
	"slices"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
)

// traceContext returns the request's context with the trace context of
// its W3C traceparent and tracestate headers (and whatever else the
// global propagator reads, such as baggage), so that the publish span is
// a child of the caller's span. With OpenTelemetry's default (no-op)
// propagator the W3C one reads the headers: the trace context reaches the
// event whether or not the server exports spans. A malformed traceparent
// is ignored, as the W3C specification says.
func traceContext(r *http.Request) context.Context {
	ctx := r.Context()
	if r.Header.Get("traceparent") == "" {
		return ctx
	}
	p := otel.GetTextMapPropagator()
	if !slices.Contains(p.Fields(), "traceparent") {
		p = propagation.TraceContext{}
	}
	return p.Extract(ctx, propagation.HeaderCarrier(r.Header))
}
