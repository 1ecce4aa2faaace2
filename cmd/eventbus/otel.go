package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// defaultServiceName is service.name when OTEL_SERVICE_NAME is unset.
const defaultServiceName = "eventbus"

// otelShutdownTimeout bounds the flush of the last spans on exit.
const otelShutdownTimeout = 5 * time.Second

// setupTracing installs an OTLP/HTTP trace exporter as the global
// TracerProvider, with the W3C TraceContext and Baggage propagators, when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
// set; otherwise it does nothing (the library's spans stay no-ops, while
// trace context still travels with the events). The exporter reads the
// other standard OTEL_EXPORTER_OTLP_* variables itself (headers, timeout,
// compression, TLS). service.name is OTEL_SERVICE_NAME, default
// "eventbus"; OTEL_RESOURCE_ATTRIBUTES adds attributes. The returned
// function flushes the spans still queued and shuts the provider down.
func setupTracing(ctx context.Context, getenv func(string) string, logger *slog.Logger) (shutdown func(), err error) {
	endpoint := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if endpoint == "" {
		endpoint = getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if endpoint == "" {
		return func() {}, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	name := getenv("OTEL_SERVICE_NAME")
	if name == "" {
		name = defaultServiceName
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithFromEnv(),
		resource.WithAttributes(attribute.String("service.name", name), attribute.String("service.version", version)))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("otel resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("opentelemetry", slog.String("error", err.Error()))
	}))
	logger.Info("tracing: exporting spans over OTLP/HTTP", slog.String("endpoint", redactURL(endpoint)), slog.String("service", name))
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), otelShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			logger.Warn("tracing: shutdown", slog.String("error", err.Error()))
		}
	}, nil
}

// redactURL drops a user and password from u; "(unparsable)" when it is
// not a URL.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable)"
	}
	p.User = nil
	return p.String()
}
