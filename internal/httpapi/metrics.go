package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hyvve/eventbus/internal/auth"
)

// metricsHandler serves GET /metrics: the Prometheus exposition of g. It
// requires a valid bearer token of any role (SPEC §7) unless public is
// set, for scrapers inside a trusted network. A collector that fails
// leaves its metrics out and the rest is served (the bus's Redis gauges
// report eventbus_redis_up 0 rather than failing).
func (s *Server) metricsHandler(g prometheus.Gatherer, public bool) http.Handler {
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      promLogger{s.log},
		ErrorHandling: promhttp.ContinueOnError,
	})
	if public {
		return h
	}
	return s.authenticated(func(w http.ResponseWriter, r *http.Request, _ auth.Principal) {
		h.ServeHTTP(w, r)
	})
}

// promLogger routes promhttp's error messages to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn("metrics exposition error", slog.String("error", fmt.Sprint(v...)))
}
