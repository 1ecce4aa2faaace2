// Package httpapi serves the HTTP API: health, readiness, the event
// routes and the admin routes (dead letters, stats, replay jobs, audit
// log, consumers), and the dashboard (package web) at / and /assets/. Errors are JSON {"error":{"code","message"}}; every response
// carries an X-Request-Id header, and a 500 answers only a generic message
// with that id (the error itself is logged with it).
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/auth"
	"github.com/hyvve/eventbus/internal/web"
)

// probeTimeout bounds every health probe, so a hung Redis cannot hang the
// probe.
const probeTimeout = 2 * time.Second

// Options configure the API.
type Options struct {
	// Auth checks bearer tokens on every route but the health routes. Nil
	// refuses them all (401).
	Auth *auth.Authenticator
	// Logger; default discard.
	Logger *slog.Logger
	// Limits bound connections, concurrent requests and body memory; zero
	// fields take the defaults of DefaultLimits.
	Limits Limits
	// HealthDetails shows the full health report (stream and group names,
	// Redis error text) to every caller. Without it only a token of role
	// admin or owner sees them; anonymous callers get the numbers.
	HealthDetails bool
	// Metrics, when set, is served at GET /metrics (Prometheus text
	// format). Nil: no such route.
	Metrics prometheus.Gatherer
	// MetricsPublic serves GET /metrics without a token; by default it
	// needs a valid token of any role.
	MetricsPublic bool
}

// Server holds the API's dependencies. Every read (event status, the
// health report) goes through insp, the bus's Inspector, the read side
// that the CLI and the dashboard share; bus serves the writes
// (publishing) and readiness.
type Server struct {
	bus           *eventbus.Bus
	insp          *eventbus.Inspector
	auth          *auth.Authenticator
	log           *slog.Logger
	budget        *bodyBudget
	healthDetails bool
	// hub is the live tails' shared reader (tail.go); streamWait bounds
	// each write of a live tail.
	hub        *tailHub
	streamWait time.Duration
}

// New returns the API's handler: request ids, the concurrency limits,
// request logs and the routes. Serve it with the http.Server of
// NewServer, which sets the connection timeouts and ends the live tails
// on Shutdown (with New alone, their shared reader stops when the last
// tail's connection ends).
func New(bus *eventbus.Bus, opt Options) http.Handler {
	_, h := newAPI(bus, opt)
	return h
}

// newAPI builds the Server and its handler (the front door).
func newAPI(bus *eventbus.Bus, opt Options) (*Server, http.Handler) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Auth == nil {
		opt.Auth = auth.New("", nil)
	}
	lim := opt.Limits.withDefaults()
	s := &Server{bus: bus, insp: bus.Inspector(), auth: opt.Auth, log: opt.Logger, budget: newBodyBudget(lim.MaxBodyMemory), healthDetails: opt.HealthDetails,
		hub: newTailHub(bus.Inspector(), opt.Logger), streamWait: lim.WriteTimeout}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /health/events", s.healthEvents)
	mux.Handle("POST /v1/events", s.authenticated(s.publish))
	mux.Handle("POST /v1/events/batch", s.authenticated(s.publishBatch))
	mux.Handle("GET /v1/events", s.authenticated(s.browseEvents))
	mux.Handle("GET /v1/events/{id}", s.authenticated(s.eventStatus))
	mux.Handle("GET "+streamPath, s.authenticated(s.streamEvents))
	mux.Handle("GET /v1/me", s.authenticated(s.me))
	mux.Handle("GET /admin/consumers", s.authenticated(s.consumers))
	mux.Handle("GET /admin/audit", s.authenticated(s.audit))
	mux.Handle("GET /admin/events/stats", s.authenticated(s.stats))
	mux.Handle("GET /admin/events/dlq", s.authenticated(s.dlqList))
	mux.Handle("GET /admin/events/dlq/{eventId}", s.authenticated(s.dlqShow))
	mux.Handle("GET /admin/events/dlq/entries/{id}", s.authenticated(s.dlqEntry))
	mux.Handle("POST /admin/events/dlq/{eventId}/retry", s.authenticated(s.dlqRetry))
	mux.Handle("DELETE /admin/events/dlq/{eventId}", s.authenticated(s.dlqDelete))
	mux.Handle("POST /admin/events/dlq/retry", s.authenticated(s.dlqBulkRetry))
	mux.Handle("POST /admin/events/dlq/purge", s.authenticated(s.dlqPurge))
	mux.Handle("POST /admin/events/replay", s.authenticated(s.replayStart))
	mux.Handle("GET /admin/events/replay", s.authenticated(s.replayList))
	mux.Handle("GET /admin/events/replay/{jobId}", s.authenticated(s.replayShow))
	mux.Handle("POST /admin/events/replay/{jobId}/cancel", s.authenticated(s.replayCancel))
	if opt.Metrics != nil {
		mux.Handle("GET /metrics", s.metricsHandler(opt.Metrics, opt.MetricsPublic))
	}
	// The dashboard loads without a token: its page and assets hold no
	// data, and every call it makes for data is authenticated like any
	// other. Every other unknown path keeps the JSON 404 below.
	dash := web.Handler()
	mux.Handle("GET /{$}", dash)
	mux.Handle("GET /assets/", dash)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); allow != "" {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+allow)
			return
		}
		writeError(w, http.StatusNotFound, "not_found", "no route "+r.Method+" "+r.URL.Path)
	})
	return s, newFrontDoor(mux, lim, opt.Logger)
}

// allowedMethods lists the methods the routes serve on r's path, or ""
// when the path is unknown. It runs only for requests no route matched.
func allowedMethods(mux *http.ServeMux, r *http.Request) string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}

// healthz is liveness: the process serves HTTP.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is readiness: Redis answers and the streams and group exist.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	if err := s.bus.Ready(ctx); err != nil {
		code, msg := "not_ready", "the streams and consumer group are not set up yet"
		switch {
		case errors.Is(err, eventbus.ErrUnavailable):
			code, msg = "redis_unavailable", "redis unreachable"
		case errors.Is(err, context.DeadlineExceeded):
			code, msg = "redis_unavailable", "redis did not answer within "+probeTimeout.String()
		case !errors.Is(err, eventbus.ErrNotReady):
			id := requestID(w)
			s.log.LogAttrs(r.Context(), slog.LevelWarn, "readiness check failed",
				slog.String("request_id", id), slog.String("error", err.Error()))
			code, msg = "redis_error", "redis refused the readiness check; the server logged it with request id "+id
		}
		writeError(w, http.StatusServiceUnavailable, code, msg)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the offending field of a rejected event.
	Field string `json:"field,omitempty"`
	// Index is the position of the offending event in a batch.
	Index *int `json:"index,omitempty"`
	// EventIDs are the events whose outcome is unknown (504).
	EventIDs []string `json:"eventIds,omitempty"`
	// RequestID repeats the X-Request-Id of a 500, for the logs.
	RequestID string `json:"requestId,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: msg}})
}

// writeInternal logs err with the request id and answers 500 with a
// generic message: internal error text never reaches the caller.
func (s *Server) writeInternal(w http.ResponseWriter, r *http.Request, what string, err error) {
	id := requestID(w)
	s.log.LogAttrs(r.Context(), slog.LevelError, what,
		slog.String("request_id", id), slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.String("error", err.Error()))
	writeJSON(w, http.StatusInternalServerError, errorBody{Error: errorDetail{
		Code: "internal", Message: "internal error; the server logged it with request id " + id, RequestID: id,
	}})
}
