package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/auth"
)

// The replay routes (issue 11) sit on the Inspector's replay methods.
// Every one needs role admin or owner (403 otherwise). A tenant token
// replays its own tenant only: the job's tenant filter is forced to the
// token's tenant, a body tenantId naming another tenant answers 404, and
// another tenant's job (or a job over every tenant) answers 404 like an
// unknown one. A platform token (tenant "*") may replay one tenant or all
// of them, and sees every job. The token's principal is the actor: the
// job's requestedBy and the audit log's subject.

// replayStarted is the answer of POST /admin/events/replay.
type replayStarted struct {
	JobID           string             `json:"jobId"`
	Status          string             `json:"status"`
	EstimatedEvents int64              `json:"estimatedEvents"`
	Job             eventbus.ReplayJob `json:"job"`
}

// replayStart serves POST /admin/events/replay: it validates the body and
// records a pending job that a replay runner (inside eventbus serve or
// dev) picks up: 201 {jobId, status, estimatedEvents, job}.
func (s *Server) replayStart(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !admin(w, p, "start a replay") {
		return
	}
	body, reserved, ok := s.readBody(w, r, maxAdminBody)
	if !ok {
		return
	}
	defer s.budget.release(reserved)
	req, field, err := parseReplayRequest(body)
	if err != nil {
		badRequest(w, field, err.Error())
		return
	}
	scope, ok := tenantScope(p, req.TenantID)
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("tenant %q not found", req.TenantID))
		return
	}
	if p.TenantID != auth.AllTenants {
		// The tenant filter is forced: a tenant token replays its own
		// events only, whatever the body says (another tenant: 404 above).
		req.TenantID = p.TenantID
	}
	job, err := s.insp.StartReplay(r.Context(), scope, actor(p), req)
	if err != nil {
		s.writeReplayError(w, r, "starting a replay failed", err, fmt.Sprintf("tenant %q not found", req.TenantID))
		return
	}
	writeJSON(w, http.StatusCreated, replayStarted{JobID: job.ID, Status: job.Status, EstimatedEvents: job.EstimatedEvents, Job: job})
}

// replayShow serves GET /admin/events/replay/{jobId}: the job and its
// progress.
func (s *Server) replayShow(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !admin(w, p, "read replay jobs") {
		return
	}
	scope, ok := adminScope(w, r, p)
	if !ok {
		return
	}
	id := r.PathValue("jobId")
	notFound := fmt.Sprintf("replay job %q not found", id)
	job, err := s.insp.Replay(r.Context(), scope, id)
	switch {
	case err != nil:
		s.writeReplayError(w, r, "reading a replay job failed", err, notFound)
	case !p.SeesTenant(job.Request.TenantID):
		// Defence in depth: the scope already keeps other tenants out.
		writeError(w, http.StatusNotFound, "not_found", notFound)
	default:
		writeJSON(w, http.StatusOK, job)
	}
}

// replayList serves GET /admin/events/replay?tenantId&cursor&limit: one
// page of jobs, newest first: {items, nextCursor}.
func (s *Server) replayList(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !admin(w, p, "read replay jobs") {
		return
	}
	scope, ok := adminScope(w, r, p)
	if !ok {
		return
	}
	cursor, limit, field, err := replayListOptions(r.URL.Query())
	if err != nil {
		badRequest(w, field, err.Error())
		return
	}
	page, err := s.insp.Replays(r.Context(), scope, cursor, limit)
	if err != nil {
		s.writeReplayError(w, r, "listing replay jobs failed", err, "")
		return
	}
	items := make([]eventbus.ReplayJob, 0, len(page.Items))
	for _, j := range page.Items {
		if p.SeesTenant(j.Request.TenantID) {
			items = append(items, j)
		}
	}
	page.Items = items
	writeJSON(w, http.StatusOK, page)
}

// replayListOptions reads the list's cursor and limit (1 to
// MaxBrowseLimit; 0 when not given); on error it names the parameter.
func replayListOptions(q url.Values) (cursor string, limit int, field string, err error) {
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > eventbus.MaxBrowseLimit {
			return "", 0, "limit", fmt.Errorf("limit: %q is not a number from 1 to %d", v, eventbus.MaxBrowseLimit)
		}
		limit = n
	}
	return q.Get("cursor"), limit, "", nil
}

// replayCancel serves POST /admin/events/replay/{jobId}/cancel: a pending
// job is cancelled at once, a running one by its runner within a second;
// the answer is the job. A finished job answers 409 replay_finished.
func (s *Server) replayCancel(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !admin(w, p, "cancel a replay") {
		return
	}
	scope, ok := adminScope(w, r, p)
	if !ok {
		return
	}
	id := r.PathValue("jobId")
	notFound := fmt.Sprintf("replay job %q not found", id)
	// Defence in depth, before anything changes: the scope already keeps
	// other tenants' jobs (and those over every tenant) out.
	job, err := s.insp.Replay(r.Context(), scope, id)
	switch {
	case err != nil:
		s.writeReplayError(w, r, "reading a replay job failed", err, notFound)
		return
	case !p.SeesTenant(job.Request.TenantID):
		writeError(w, http.StatusNotFound, "not_found", notFound)
		return
	}
	job, err = s.insp.CancelReplay(r.Context(), scope, actor(p), id)
	if err != nil {
		s.writeReplayError(w, r, "cancelling a replay failed", err, notFound)
		return
	}
	writeJSON(w, http.StatusOK, job)
}

// replayBody is the JSON of POST /admin/events/replay. from and to are RFC
// 3339 times (both required); types is a pattern, a comma-separated list
// or an array of them; handlers names handlers of the group (none: every
// handler its live consumers registered).
type replayBody struct {
	From     *string  `json:"from"`
	To       *string  `json:"to"`
	Types    patterns `json:"types"`
	TenantID string   `json:"tenantId"`
	Handlers []string `json:"handlers"`
	Rate     int      `json:"rate"`
	DryRun   bool     `json:"dryRun"`
}

// parseReplayRequest decodes and checks the body of a replay start; on
// error it names the field ("from", "types", an unknown field...). The
// library checks the rest (from after to, the window, the handlers, the
// rate), answering a *ReplayError.
func parseReplayRequest(body []byte) (eventbus.ReplayRequest, string, error) {
	var b replayBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return eventbus.ReplayRequest{}, decodeField(err), fmt.Errorf("body is not a valid replay request: %w", err)
	}
	if dec.More() {
		return eventbus.ReplayRequest{}, "", errors.New("body holds more than one JSON value")
	}
	req := eventbus.ReplayRequest{Types: b.Types, TenantID: b.TenantID, Handlers: b.Handlers, Rate: b.Rate, DryRun: b.DryRun}
	for _, tc := range []struct {
		name string
		v    *string
		dst  *time.Time
	}{{"from", b.From, &req.From}, {"to", b.To, &req.To}} {
		if tc.v == nil || strings.TrimSpace(*tc.v) == "" {
			return req, tc.name, fmt.Errorf("%s: required (an RFC 3339 time)", tc.name)
		}
		t, err := time.Parse(time.RFC3339Nano, *tc.v)
		if err != nil {
			return req, tc.name, fmt.Errorf("%s: %q is not an RFC 3339 time", tc.name, *tc.v)
		}
		*tc.dst = t
	}
	return req, "", nil
}

// writeReplayError answers the failure of a replay call: 400 naming the
// field for a refused request (*ReplayError, its reason as the message)
// or a blank tenant, 404 (notFound) for ErrNotFound, 409 replay_finished
// for a job that has ended, 504 when a write's outcome is unknown, and
// otherwise as writeReadError (503 while Redis is unreachable or slow,
// else 500).
func (s *Server) writeReplayError(w http.ResponseWriter, r *http.Request, what string, err error, notFound string) {
	var re *eventbus.ReplayError
	switch {
	case errors.As(err, &re):
		badRequest(w, re.Field, re.Reason)
	case errors.Is(err, eventbus.ErrInvalidReplay):
		badRequest(w, "", "invalid replay request")
	case errors.Is(err, eventbus.ErrNotFound):
		if notFound == "" {
			notFound = "not found"
		}
		writeError(w, http.StatusNotFound, "not_found", notFound)
	case errors.Is(err, eventbus.ErrReplayFinished):
		writeError(w, http.StatusConflict, "replay_finished", "the replay job has finished already (completed, failed or cancelled); there is nothing to cancel")
	case errors.Is(err, eventbus.ErrInvalidScope):
		badRequest(w, "tenantId", "tenantId: blank")
	case errors.Is(err, eventbus.ErrOutcomeUnknown):
		writeError(w, http.StatusGatewayTimeout, "outcome_unknown", "the change was sent to the event store but no reply came: it may or may not have been applied; list the replay jobs before repeating it")
	default:
		s.writeReadError(w, r, what, err)
	}
}
