package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/auth"
)

// The dead-letter routes (SPEC §5, §7) sit on the Inspector's DLQ
// methods. Every one needs role admin or owner (403 otherwise, as every
// /admin route). A tenant token reads and acts in its own tenant's scope:
// another tenant's dead letter answers 404 like an unknown one, and a
// tenantId naming another tenant answers 404. A platform token (tenant
// "*") sees every tenant, or the one ?tenantId= (or the body filter's
// tenantId) names.

// MaxBulkIDs is the most ids (or event ids) one bulk redrive or purge
// names; over it the request answers 400 naming the field.
const MaxBulkIDs = 1000

// maxAdminBody bounds the body of a bulk request: MaxBulkIDs ids of up to
// a few hundred bytes each, and a filter.
const maxAdminBody = 1 << 20

// admin answers 403 and returns false unless p may use the admin routes.
func admin(w http.ResponseWriter, p auth.Principal, what string) bool {
	if !p.CanAdmin() {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("role %q may not %s", p.Role, what))
		return false
	}
	return true
}

// tenantScope is the scope of an admin request by p naming tenant (""
// when it names none): the token's own tenant, or for a platform token
// the tenant named, else every tenant. A tenant token naming another
// tenant gets false: the caller answers 404.
func tenantScope(p auth.Principal, tenant string) (eventbus.Scope, bool) {
	switch {
	case p.TenantID != auth.AllTenants && tenant != "" && tenant != p.TenantID:
		return eventbus.Scope{}, false
	case p.TenantID != auth.AllTenants:
		return eventbus.TenantScope(p.TenantID), true
	case tenant != "":
		return eventbus.TenantScope(tenant), true // blank: ErrInvalidScope, 400
	}
	return eventbus.AllTenants(), true
}

// adminScope is tenantScope for the ?tenantId= of r, answering 404 itself.
func adminScope(w http.ResponseWriter, r *http.Request, p auth.Principal) (eventbus.Scope, bool) {
	t := r.URL.Query().Get("tenantId")
	scope, ok := tenantScope(p, t)
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("tenant %q not found", t))
	}
	return scope, ok
}

// actor is who p is, for the audit log.
func actor(p auth.Principal) eventbus.Actor {
	return eventbus.Actor{Subject: p.Subject, TenantID: p.TenantID, Role: p.Role}
}

// badRequest answers 400 invalid_request naming field.
func badRequest(w http.ResponseWriter, field, msg string) {
	writeJSON(w, http.StatusBadRequest, errorBody{Error: errorDetail{Code: "invalid_request", Message: msg, Field: field}})
}

// dlqList serves GET /admin/events/dlq?type&handler&tenantId&from&to&q&cursor&limit:
// one page of dead letters, newest first: {items, nextCursor}.
func (s *Server) dlqList(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !admin(w, p, "read the dead letters") {
		return
	}
	scope, ok := adminScope(w, r, p)
	if !ok {
		return
	}
	opts, field, err := dlqListOptions(r.URL.Query())
	if err != nil {
		badRequest(w, field, err.Error())
		return
	}
	page, err := s.insp.DeadLetters(r.Context(), scope, opts)
	if err != nil {
		s.writeDLQError(w, r, "listing dead letters failed", err, "", "")
		return
	}
	// Defence in depth: the scope already keeps other tenants out.
	items := make([]eventbus.DLQItem, 0, len(page.Items))
	for _, it := range page.Items {
		if p.SeesTenant(it.TenantID) {
			items = append(items, it)
		}
	}
	page.Items = items
	writeJSON(w, http.StatusOK, page)
}

// dlqListOptions reads the list parameters; on error it names the field.
// tenantId is the scope (adminScope), not read here.
func dlqListOptions(q url.Values) (eventbus.DLQListOptions, string, error) {
	var o eventbus.DLQListOptions
	o.Filter.Types = splitPatterns(q["type"])
	o.Filter.Handler = q.Get("handler")
	o.Filter.Query = q.Get("q")
	for _, tc := range []struct {
		name string
		dst  *time.Time
	}{{"from", &o.Filter.From}, {"to", &o.Filter.To}} {
		if v := q.Get(tc.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return o, tc.name, fmt.Errorf("%s: %q is not an RFC 3339 time", tc.name, v)
			}
			*tc.dst = t
		}
	}
	o.Cursor = q.Get("cursor")
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return o, "limit", fmt.Errorf("limit: %q is not a positive number", v)
		}
		o.Limit = n
	}
	return o, "", nil
}

// splitPatterns reads type patterns given repeated or comma-separated.
func splitPatterns(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// dlqShow serves GET /admin/events/dlq/{eventId}: every dead letter of
// the event in scope, {eventId, entries}.
func (s *Server) dlqShow(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !admin(w, p, "read the dead letters") {
		return
	}
	scope, ok := adminScope(w, r, p)
	if !ok {
		return
	}
	id := r.PathValue("eventId")
	notFound := fmt.Sprintf("no dead letter of event %q", id)
	dl, err := s.insp.DeadLettersOf(r.Context(), scope, id)
	if err != nil {
		s.writeDLQError(w, r, "reading dead letters failed", err, notFound, "")
		return
	}
	entries := make([]eventbus.DLQEntry, 0, len(dl.Entries))
	for _, e := range dl.Entries {
		if p.SeesTenant(e.TenantID) {
			entries = append(entries, e)
		}
	}
	if len(entries) == 0 {
		writeError(w, http.StatusNotFound, "not_found", notFound)
		return
	}
	dl.Entries = entries
	writeJSON(w, http.StatusOK, dl)
}

// dlqEntry serves GET /admin/events/dlq/entries/{id}: one DLQ entry by
// its stream id.
func (s *Server) dlqEntry(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !admin(w, p, "read the dead letters") {
		return
	}
	scope, ok := adminScope(w, r, p)
	if !ok {
		return
	}
	id := r.PathValue("id")
	notFound := fmt.Sprintf("dead letter %q not found", id)
	e, err := s.insp.DeadLetter(r.Context(), scope, id)
	switch {
	case err != nil:
		s.writeDLQError(w, r, "reading a dead letter failed", err, notFound, "")
	case !p.SeesTenant(e.TenantID):
		writeError(w, http.StatusNotFound, "not_found", notFound)
	default:
		writeJSON(w, http.StatusOK, e)
	}
}

// dlqRetry serves POST /admin/events/dlq/{eventId}/retry: every dead
// letter of the event in scope goes back to its failed handler,
// {redriven}.
func (s *Server) dlqRetry(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !admin(w, p, "redrive dead letters") {
		return
	}
	scope, ok := adminScope(w, r, p)
	if !ok {
		return
	}
	id := r.PathValue("eventId")
	n, err := s.insp.Redrive(r.Context(), scope, actor(p), id)
	if err != nil {
		s.writeDLQError(w, r, "redrive failed", err, fmt.Sprintf("no dead letter of event %q", id), "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"redriven": n})
}

// dlqDelete serves DELETE /admin/events/dlq/{eventId}: every dead letter
// of the event in scope is removed, {deleted}.
func (s *Server) dlqDelete(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !admin(w, p, "delete dead letters") {
		return
	}
	scope, ok := adminScope(w, r, p)
	if !ok {
		return
	}
	id := r.PathValue("eventId")
	n, err := s.insp.DeleteDeadLetters(r.Context(), scope, actor(p), id)
	if err != nil {
		s.writeDLQError(w, r, "delete failed", err, fmt.Sprintf("no dead letter of event %q", id), "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]int64{"deleted": n})
}

// dlqBulkRetry serves POST /admin/events/dlq/retry: a redrive of the
// dead letters a bulk body selects; a dry run without "confirm": true.
func (s *Server) dlqBulkRetry(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	s.dlqBulk(w, r, p, "redrive dead letters", s.insp.RedriveMany)
}

// dlqPurge serves POST /admin/events/dlq/purge: a removal of the dead
// letters a bulk body selects; a dry run without "confirm": true.
func (s *Server) dlqPurge(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	s.dlqBulk(w, r, p, "purge dead letters", s.insp.Purge)
}

// bulkAction is Inspector.RedriveMany or Inspector.Purge.
type bulkAction func(ctx context.Context, scope eventbus.Scope, actor eventbus.Actor, sel eventbus.DLQSelection, confirm bool) (eventbus.BulkResult, error)

func (s *Server) dlqBulk(w http.ResponseWriter, r *http.Request, p auth.Principal, what string, act bulkAction) {
	if !admin(w, p, what) {
		return
	}
	body, reserved, ok := s.readBody(w, r, maxAdminBody)
	if !ok {
		return
	}
	defer s.budget.release(reserved)
	req, field, err := parseBulkRequest(body)
	if err != nil {
		badRequest(w, field, err.Error())
		return
	}
	tenant := ""
	if req.sel.Filter != nil {
		tenant = req.sel.Filter.TenantID
	}
	scope, ok := tenantScope(p, tenant)
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("tenant %q not found", tenant))
		return
	}
	res, err := act(r.Context(), scope, actor(p), req.sel, req.confirm)
	if err != nil {
		prefix := ""
		if req.sel.Filter != nil {
			prefix = "filter."
		}
		s.writeDLQError(w, r, what+" failed", err, "no dead letter matches", prefix)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// bulkRequest is a parsed bulk body.
type bulkRequest struct {
	sel     eventbus.DLQSelection
	confirm bool
}

// bulkBody is the JSON of a bulk request: exactly one of ids, eventIds and
// filter, and confirm.
type bulkBody struct {
	IDs      *[]string   `json:"ids"`
	EventIDs *[]string   `json:"eventIds"`
	Filter   *filterBody `json:"filter"`
	Confirm  *bool       `json:"confirm"`
}

// filterBody is a DLQ filter in a request body; type is a pattern, a
// comma-separated list or an array of them; from and to are RFC 3339.
type filterBody struct {
	Type     patterns `json:"type"`
	Handler  string   `json:"handler"`
	TenantID string   `json:"tenantId"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	Q        string   `json:"q"`
}

// patterns decodes a string (comma-separated) or an array of strings.
type patterns []string

func (p *patterns) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*p = splitPatterns([]string{one})
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		// The decoder adds the field's path to this error.
		return &json.UnmarshalTypeError{Value: "a type pattern or an array of them", Type: reflect.TypeFor[patterns]()}
	}
	*p = splitPatterns(many)
	return nil
}

// parseBulkRequest decodes and checks a bulk body; on error it names the
// field ("ids", "eventIds", "filter.from", "confirm", an unknown field...).
func parseBulkRequest(body []byte) (bulkRequest, string, error) {
	var b bulkBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return bulkRequest{}, decodeField(err), fmt.Errorf("body is not a valid bulk request: %w", err)
	}
	if dec.More() {
		return bulkRequest{}, "", errors.New("body holds more than one JSON value")
	}
	var req bulkRequest
	if b.Confirm != nil {
		req.confirm = *b.Confirm
	}
	set := 0
	for _, f := range []struct {
		name string
		ids  *[]string
		dst  *[]string
	}{{"ids", b.IDs, &req.sel.IDs}, {"eventIds", b.EventIDs, &req.sel.EventIDs}} {
		if f.ids == nil {
			continue
		}
		set++
		switch ids := *f.ids; {
		case len(ids) == 0:
			return req, f.name, fmt.Errorf("%s: empty list", f.name)
		case len(ids) > MaxBulkIDs:
			return req, f.name, fmt.Errorf("%s: %d ids, over the limit of %d per request", f.name, len(ids), MaxBulkIDs)
		default:
			for i, id := range ids {
				if strings.TrimSpace(id) == "" {
					return req, f.name, fmt.Errorf("%s[%d]: empty id", f.name, i)
				}
			}
			*f.dst = ids
		}
	}
	if b.Filter != nil {
		set++
		f := eventbus.DLQFilter{Types: b.Filter.Type, Handler: b.Filter.Handler, TenantID: b.Filter.TenantID, Query: b.Filter.Q}
		for _, tc := range []struct {
			name, v string
			dst     *time.Time
		}{{"from", b.Filter.From, &f.From}, {"to", b.Filter.To, &f.To}} {
			if tc.v == "" {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, tc.v)
			if err != nil {
				return req, "filter." + tc.name, fmt.Errorf("filter.%s: %q is not an RFC 3339 time", tc.name, tc.v)
			}
			*tc.dst = t
		}
		req.sel.Filter = &f
	}
	switch {
	case set == 0:
		return req, "", errors.New(`want one of "ids", "eventIds" or "filter"`)
	case set > 1:
		return req, "", errors.New(`want exactly one of "ids", "eventIds" and "filter", not several`)
	}
	return req, "", nil
}

// decodeField names the field a JSON decoding error is about, or "".
func decodeField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if s, err := strconv.Unquote(name); err == nil {
			return s
		}
	}
	return ""
}

// filterFields are the fields of a DLQ filter, as FilterError names them.
var filterFields = map[string]bool{"type": true, "handler": true, "tenantId": true, "from": true, "to": true, "q": true}

// writeDLQError answers the failure of a dead-letter call: 404 (notFound)
// for ErrNotFound, 409 for the redrive limit and entries that cannot be
// redriven, 400 for a bad filter (its field prefixed with fieldPrefix) or
// scope, 504 when a write's outcome is unknown, and otherwise as
// writeReadError (503 while Redis is unreachable or slow, else 500).
func (s *Server) writeDLQError(w http.ResponseWriter, r *http.Request, what string, err error, notFound, fieldPrefix string) {
	var fe *eventbus.FilterError
	switch {
	case errors.Is(err, eventbus.ErrNotFound):
		if notFound == "" {
			notFound = "not found"
		}
		writeError(w, http.StatusNotFound, "not_found", notFound)
	case errors.Is(err, eventbus.ErrRedriveLimit):
		writeError(w, http.StatusConflict, "redrive_limit", "the dead letter was redriven the most times allowed (EVENTBUS_MAX_REDRIVES) already; fix the handler, then delete it or publish the event again")
	case errors.Is(err, eventbus.ErrNotRedrivable):
		writeError(w, http.StatusConflict, "not_redrivable", "the dead letter is not a valid event and cannot go back to a handler; delete it")
	case errors.As(err, &fe):
		field := fe.Field
		if fieldPrefix != "" && filterFields[field] {
			field = fieldPrefix + field
		}
		badRequest(w, field, fmt.Sprintf("%s: %s", field, fe.Reason))
	case errors.Is(err, eventbus.ErrInvalidFilter):
		badRequest(w, "", "invalid filter")
	case errors.Is(err, eventbus.ErrInvalidScope):
		badRequest(w, "tenantId", "tenantId: blank")
	case errors.Is(err, eventbus.ErrOutcomeUnknown):
		writeError(w, http.StatusGatewayTimeout, "outcome_unknown", "the change was sent to the event store but no reply came: it may or may not have been applied; list the dead letters before repeating it")
	default:
		s.writeReadError(w, r, what, err)
	}
}
