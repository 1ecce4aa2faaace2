package eventbus_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// BenchmarkPublishTraced is BenchmarkPublish with an OpenTelemetry SDK
// installed that samples every span (and exports none): the cost of a
// recorded producer span and of the trace context in the envelope. Compare
// with BenchmarkPublish, whose default no-op provider records nothing.
func BenchmarkPublishTraced(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	old := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		if _, sdk := old.(*sdktrace.TracerProvider); sdk {
			otel.SetTracerProvider(old)
		} else {
			otel.SetTracerProvider(noop.NewTracerProvider())
		}
	})
	BenchmarkPublish(b)
}
