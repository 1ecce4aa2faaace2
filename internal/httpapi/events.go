package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/auth"
)

// MaxBatchEvents is the most events one POST /v1/events/batch accepts.
const MaxBatchEvents = 1000

// maxBatchBody bounds the body of a batch request.
const maxBatchBody = 32 << 20

// authenticated runs next with the caller's principal, or answers 401.
func (s *Server) authenticated(next func(http.ResponseWriter, *http.Request, auth.Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.auth.Authenticate(r.Header.Get("Authorization"))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="eventbus"`)
			writeError(w, http.StatusUnauthorized, "unauthenticated", err.Error())
			return
		}
		next(w, r, p)
	})
}

// publish serves POST /v1/events: one event. 201 {id, streamId} when
// written, 200 with the same body for an idempotent repeat.
func (s *Server) publish(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !p.CanPublish() {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("role %q may not publish", p.Role))
		return
	}
	limit := int64(s.bus.Config().MaxEventSize) + 64<<10 // whitespace and defaults added later
	var ev eventbus.Event
	if !decodeBody(w, r, limit, &ev) {
		return
	}
	if !forTenant(w, p, &ev, -1) {
		return
	}
	res, err := s.bus.Publish(r.Context(), ev)
	if err != nil {
		writePublishError(w, err)
		return
	}
	status := http.StatusCreated
	if res.Duplicate {
		status = http.StatusOK
	}
	writeJSON(w, status, res)
}

// publishBatch serves POST /v1/events/batch: a JSON array of events, or
// {"events": [...]}, published atomically. 201 with the list of {id,
// streamId} in order; 200 when every event was an idempotent repeat.
func (s *Server) publishBatch(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !p.CanPublish() {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("role %q may not publish", p.Role))
		return
	}
	var body json.RawMessage
	if !decodeBody(w, r, maxBatchBody, &body) {
		return
	}
	var events []eventbus.Event
	if len(body) > 0 && body[0] == '{' {
		var wrapped struct {
			Events []eventbus.Event `json:"events"`
		}
		if err := json.Unmarshal(body, &wrapped); err != nil {
			writeDecodeError(w, err)
			return
		}
		events = wrapped.Events
	} else if err := json.Unmarshal(body, &events); err != nil {
		writeDecodeError(w, err)
		return
	}
	switch {
	case len(events) == 0:
		writeError(w, http.StatusBadRequest, "invalid_request", "the batch holds no events")
		return
	case len(events) > MaxBatchEvents:
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("%d events, over the limit of %d per batch", len(events), MaxBatchEvents))
		return
	}
	for i := range events {
		if !forTenant(w, p, &events[i], i) {
			return
		}
	}
	res, err := s.bus.PublishBatch(r.Context(), events)
	if err != nil {
		writePublishError(w, err)
		return
	}
	status := http.StatusOK
	for _, p := range res {
		if !p.Duplicate {
			status = http.StatusCreated
		}
	}
	writeJSON(w, status, res)
}

// forTenant fills in the caller's tenant when the event has none and
// refuses (403) an event of another tenant.
func forTenant(w http.ResponseWriter, p auth.Principal, ev *eventbus.Event, index int) bool {
	if ev.TenantID == "" && p.TenantID != auth.AllTenants {
		ev.TenantID = p.TenantID
	}
	if ev.TenantID != "" && !p.SeesTenant(ev.TenantID) {
		msg := "a token may publish only for its own tenant"
		if index >= 0 {
			msg = fmt.Sprintf("event %d: %s", index, msg)
		}
		writeError(w, http.StatusForbidden, "forbidden", msg)
		return false
	}
	return true
}

// decodeBody reads a JSON body of at most limit bytes into v, answering
// 413 or 400 itself on failure.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body over %d bytes", limit))
			return false
		}
		writeError(w, http.StatusBadRequest, "invalid_request", "read body: "+err.Error())
		return false
	}
	if err := json.Unmarshal(body, v); err != nil {
		writeDecodeError(w, err)
		return false
	}
	return true
}

func writeDecodeError(w http.ResponseWriter, err error) {
	var ve *eventbus.ValidationError
	if errors.As(err, &ve) {
		writeValidationError(w, ve)
		return
	}
	writeError(w, http.StatusBadRequest, "invalid_json", "body is not valid JSON for this route: "+err.Error())
}

func writeValidationError(w http.ResponseWriter, ve *eventbus.ValidationError) {
	status, code := http.StatusBadRequest, "invalid_event"
	if errors.Is(ve, eventbus.ErrEventTooLarge) {
		status, code = http.StatusRequestEntityTooLarge, "too_large"
	}
	d := errorDetail{Code: code, Message: ve.Error(), Field: ve.Field}
	if ve.Index >= 0 {
		i := ve.Index
		d.Index = &i
	}
	writeJSON(w, status, errorBody{Error: d})
}

func writePublishError(w http.ResponseWriter, err error) {
	var ve *eventbus.ValidationError
	switch {
	case errors.As(err, &ve):
		writeValidationError(w, ve)
	case errors.Is(err, eventbus.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "redis_unavailable", "the event store is unreachable; nothing was written, retry later")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "timeout", err.Error())
	default:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// eventStatus serves GET /v1/events/{id}: the event's status in the
// server's group. Another tenant's event answers 404, as an unknown one.
// A platform token (tenant *) names the tenant with ?tenantId= to find
// caller-supplied ids; ids the bus generated are found without it.
func (s *Server) eventStatus(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	tenant := p.TenantID
	if tenant == auth.AllTenants {
		tenant = r.URL.Query().Get("tenantId")
	}
	st, err := s.bus.Status(r.Context(), tenant, id)
	switch {
	case errors.Is(err, eventbus.ErrNotFound), err == nil && !p.SeesTenant(st.TenantID):
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("event %q not found", id))
	case errors.Is(err, eventbus.ErrUnavailable):
		writeError(w, http.StatusServiceUnavailable, "redis_unavailable", "the event store is unreachable")
	case err != nil:
		writeError(w, http.StatusInternalServerError, "internal", err.Error())
	default:
		writeJSON(w, http.StatusOK, st)
	}
}
