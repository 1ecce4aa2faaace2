package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	body, reserved, ok := s.readBody(w, r, limit)
	if !ok {
		return
	}
	defer s.budget.release(reserved)
	var ev eventbus.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		writeDecodeError(w, err)
		return
	}
	if !forTenant(w, p, &ev, -1) {
		return
	}
	res, err := s.bus.Publish(traceContext(r), ev)
	if err != nil {
		s.writePublishError(w, r, err)
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
	body, reserved, ok := s.readBody(w, r, maxBatchBody)
	if !ok {
		return
	}
	defer s.budget.release(reserved)
	// Decode straight from the one copy of the body (no intermediate
	// json.RawMessage copy); body is dead after this, so the collector may
	// free it while Redis works.
	var events []eventbus.Event
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '{' {
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
	res, err := s.bus.PublishBatch(traceContext(r), events)
	if err != nil {
		s.writePublishError(w, r, err)
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

// readBody reads a body of at most limit bytes, first reserving its size
// (Content-Length, or limit when the length is not sent) in the body
// budget. It answers 413, 503 or 400 itself on failure; on success the
// caller releases reserved when done with the body and what was decoded
// from it.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64) (body []byte, reserved int64, ok bool) {
	if r.ContentLength > limit {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body over %d bytes", limit))
		return nil, 0, false
	}
	need := limit
	if r.ContentLength >= 0 {
		need = r.ContentLength
	}
	if need > s.budget.limit {
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body of %d bytes is over the server's body memory of %d bytes", need, s.budget.limit))
		return nil, 0, false
	}
	if !s.budget.reserve(need) {
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "overloaded", "too many request bodies in flight; retry later")
		return nil, 0, false
	}
	var err error
	if r.ContentLength >= 0 {
		// The length is known: read into one buffer of exactly that size.
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	}
	if err != nil {
		s.budget.release(need)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body over %d bytes", limit))
			return nil, 0, false
		}
		writeError(w, http.StatusBadRequest, "invalid_request", "the request body could not be read in full")
		return nil, 0, false
	}
	return body, need, true
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

// writePublishError answers a failed publish with what it means (see the
// README, "What an error means"): 4xx the event was refused, 503 nothing
// was written, 504 the outcome is unknown (the event ids are returned so a
// retry with the same ids is deduplicated), 504 not_replicated written on
// the primary but not confirmed by Config.MinReplicas replicas (event and
// stream ids returned; a retry with the same ids is deduplicated).
//
// A batch spanning partitions that was written in part answers
// partially_written (504 when some outcome is unknown or unconfirmed, else
// 503) with every event's result: retrying the events not written with
// the same ids is deduplicated.
func (s *Server) writePublishError(w http.ResponseWriter, r *http.Request, err error) {
	var ve *eventbus.ValidationError
	var ou *eventbus.OutcomeUnknownError
	var nr *eventbus.NotReplicatedError
	var pb *eventbus.PartialBatchError
	switch {
	case errors.As(err, &pb):
		s.writePartialBatch(w, r, pb)
	case errors.As(err, &ve):
		writeValidationError(w, ve)
	case errors.As(err, &nr):
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "publish not replicated",
			slog.String("request_id", requestID(w)), slog.Any("event_ids", nr.EventIDs),
			slog.Any("stream_ids", nr.StreamIDs), slog.String("error", err.Error()))
		writeJSON(w, http.StatusGatewayTimeout, notReplicatedBody{Error: notReplicatedDetail{
			Code: "not_replicated",
			Message: fmt.Sprintf("the event(s) were written on the primary (streamIds) but only %d of %d replica(s) confirmed them in time: "+
				"a failover now could lose them; "+`a retry must reuse the same "id" (eventIds): it is deduplicated, never written twice`,
				nr.Replicas, nr.Wanted),
			EventIDs:  nr.EventIDs,
			StreamIDs: nr.StreamIDs,
			Replicas:  nr.Replicas,
			Wanted:    nr.Wanted,
		}})
	case errors.As(err, &ou), errors.Is(err, eventbus.ErrOutcomeUnknown):
		var ids []string
		if ou != nil {
			ids = ou.EventIDs
		}
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "publish outcome unknown",
			slog.String("request_id", requestID(w)), slog.Any("event_ids", ids), slog.String("error", err.Error()))
		writeJSON(w, http.StatusGatewayTimeout, errorBody{Error: errorDetail{
			Code: "outcome_unknown",
			Message: "the write was sent to the event store but no reply came: the event(s) may or may not have been written; " +
				`publish again with the same "id" (eventIds) to retry safely, the repeat is deduplicated`,
			EventIDs: ids,
		}})
	case errors.Is(err, eventbus.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "redis_unavailable", "the event store is unreachable; nothing was written, retry later")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// The library reports a write that was sent as outcome unknown
		// (above); a bare context error means the event was still queued.
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "timeout", "the request ended before the event was sent; nothing was written, retry later")
	default:
		s.writeInternal(w, r, "publish failed", err)
	}
}

// eventStatus serves GET /v1/events/{id}: the event's status in the
// server's group, read through the Inspector. Another tenant's event
// answers 404, as an unknown one. A tenant's token reads in its own
// tenant's scope; a platform token (tenant *) reads across all tenants,
// finding ids the bus generated, and names the tenant with ?tenantId= to
// find caller-supplied ids.
func (s *Server) eventStatus(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id := r.PathValue("id")
	st, err := s.insp.Status(r.Context(), statusScope(r, p), id)
	switch {
	case errors.Is(err, eventbus.ErrNotFound), errors.Is(err, eventbus.ErrInvalidScope), err == nil && !p.SeesTenant(st.TenantID):
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("event %q not found", id))
	case err != nil:
		s.writeReadError(w, r, "status lookup failed", err)
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

// statusScope is the tenant scope of a read by p: its own tenant, or for
// a platform token the ?tenantId= it names, else every tenant.
func statusScope(r *http.Request, p auth.Principal) eventbus.Scope {
	if p.TenantID != auth.AllTenants {
		return eventbus.TenantScope(p.TenantID)
	}
	if t := r.URL.Query().Get("tenantId"); t != "" {
		return eventbus.TenantScope(t)
	}
	return eventbus.AllTenants()
}

// writeReadError answers the failure of a read through the Inspector: 400
// naming the field of a bad filter, 503 while Redis is unreachable or
// slow, and otherwise a generic 500 (logged as what).
func (s *Server) writeReadError(w http.ResponseWriter, r *http.Request, what string, err error) {
	var fe *eventbus.FilterError
	switch {
	case errors.As(err, &fe):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: errorDetail{Code: "invalid_request", Message: fmt.Sprintf("%s: %s", fe.Field, fe.Reason), Field: fe.Field}})
	case errors.Is(err, eventbus.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "redis_unavailable", "the event store is unreachable")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "timeout", "the event store did not answer in time")
	default:
		s.writeInternal(w, r, what, err)
	}
}

// writePartialBatch answers a batch written to some partitions only.
func (s *Server) writePartialBatch(w http.ResponseWriter, r *http.Request, pb *eventbus.PartialBatchError) {
	status := http.StatusServiceUnavailable
	results := make([]batchResult, len(pb.Errs))
	written := 0
	for i, err := range pb.Errs {
		res := batchResult{Index: i, ID: pb.Published[i].ID, StreamID: pb.Published[i].StreamID}
		var ou *eventbus.OutcomeUnknownError
		var nr *eventbus.NotReplicatedError
		switch {
		case err == nil:
			res.Written = true
			written++
		case errors.As(err, &nr):
			status = http.StatusGatewayTimeout
			res.Error = &errorDetail{Code: "not_replicated", Message: err.Error()}
		case errors.As(err, &ou):
			status = http.StatusGatewayTimeout
			res.Error = &errorDetail{Code: "outcome_unknown", Message: err.Error()}
		default:
			res.Error = &errorDetail{Code: "not_written", Message: err.Error()}
		}
		results[i] = res
	}
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "batch written in part",
		slog.String("request_id", requestID(w)), slog.Int("written", written), slog.Int("events", len(results)))
	writeJSON(w, status, partialBatchBody{Error: partialBatchDetail{
		Code: "partially_written",
		Message: fmt.Sprintf("the batch spans partitions and was written to some only (%d of %d events written; each partition's events are all or none): "+
			`retry the events not written with the same "id": a repeat is deduplicated`, written, len(results)),
		Results: results,
	}})
}

// partialBatchBody is the partially_written answer.
type partialBatchBody struct {
	Error partialBatchDetail `json:"error"`
}

type partialBatchDetail struct {
	Code    string        `json:"code"`
	Message string        `json:"message"`
	Results []batchResult `json:"results"`
}

// batchResult is one event's outcome in a partially written batch.
type batchResult struct {
	Index    int          `json:"index"`
	ID       string       `json:"id,omitempty"`
	StreamID string       `json:"streamId,omitempty"`
	Written  bool         `json:"written"`
	Error    *errorDetail `json:"error,omitempty"`
}

// notReplicatedBody is the 504 not_replicated answer: errorBody with the
// stream ids and the replica counts.
type notReplicatedBody struct {
	Error notReplicatedDetail `json:"error"`
}

type notReplicatedDetail struct {
	Code      string   `json:"code"`
	Message   string   `json:"message"`
	EventIDs  []string `json:"eventIds"`
	StreamIDs []string `json:"streamIds"`
	Replicas  int      `json:"replicas"`
	Wanted    int      `json:"wanted"`
}
