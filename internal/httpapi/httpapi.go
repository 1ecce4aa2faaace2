// Package httpapi serves the HTTP API: health, readiness and (in later
// parts) the event and admin routes. Errors are JSON
// {"error":{"code","message"}}.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/auth"
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
}

// Server holds the API's dependencies.
type Server struct {
	bus  *eventbus.Bus
	auth *auth.Authenticator
	log  *slog.Logger
}

// New returns the API's handler.
func New(bus *eventbus.Bus, opt Options) http.Handler {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Auth == nil {
		opt.Auth = auth.New("", nil)
	}
	s := &Server{bus: bus, auth: opt.Auth, log: opt.Logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /health/events", s.healthEvents)
	mux.Handle("POST /v1/events", s.authenticated(s.publish))
	mux.Handle("POST /v1/events/batch", s.authenticated(s.publishBatch))
	mux.Handle("GET /v1/events/{id}", s.authenticated(s.eventStatus))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no route "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// healthz is liveness: the process serves HTTP.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is readiness: Redis answers and set-up is done.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	if err := s.bus.Ready(ctx); err != nil {
		code := "not_ready"
		if errors.Is(err, eventbus.ErrUnavailable) {
			code = "redis_unavailable"
		}
		writeError(w, http.StatusServiceUnavailable, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// healthEvents serves the event bus health report: 200 healthy, 503 not.
func (s *Server) healthEvents(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	h := s.bus.Health(ctx)
	status := http.StatusOK
	if !h.Healthy {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
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
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: msg}})
}
