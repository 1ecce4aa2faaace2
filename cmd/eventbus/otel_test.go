package main

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// setupTracing installs an exporter only when an OTLP endpoint variable
// is set.
func TestSetupTracing(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	before := otel.GetTracerProvider()
	stop, err := setupTracing(ctx, func(string) string { return "" }, logger)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if otel.GetTracerProvider() != before {
		t.Fatal("without OTEL_EXPORTER_OTLP_* variables the global TracerProvider changed")
	}

	for _, name := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{name: "http://127.0.0.1:1", "OTEL_SERVICE_NAME": "eb-test"}
			stop, err := setupTracing(ctx, func(k string) string { return env[k] }, logger)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })
			if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); !ok {
				t.Fatalf("global TracerProvider %T, want the SDK's", otel.GetTracerProvider())
			}
			fields := otel.GetTextMapPropagator().Fields()
			if len(fields) < 3 { // traceparent, tracestate, baggage
				t.Errorf("propagator fields %v, want TraceContext and Baggage", fields)
			}
			stop() // no span queued: returns at once
		})
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://user:secret@collector:4318/v1/traces": "http://collector:4318/v1/traces",
		"http://collector:4318":                       "http://collector:4318",
		"://bad":                                      "(unparsable)",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
