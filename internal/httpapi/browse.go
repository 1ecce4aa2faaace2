package httpapi

import (
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

// browseEvents serves GET /v1/events?type&tenantId&from&to&cursor&limit:
// one page of the main stream, oldest first, read through the
// Inspector: {items, nextCursor}. Any authenticated role may browse. A
// tenant token sees its own tenant only (a tenantId naming another tenant
// answers 404); a platform token sees every tenant or the one tenantId
// names. type may repeat or hold a comma-separated list of patterns;
// from and to are RFC 3339 times. A bad parameter answers 400 naming it
// in "field".
func (s *Server) browseEvents(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q := r.URL.Query()
	scope, ok := browseScope(w, q, p)
	if !ok {
		return
	}
	f, field, err := browseFilter(q)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: errorDetail{Code: "invalid_request", Message: err.Error(), Field: field}})
		return
	}
	page, err := s.insp.Events(r.Context(), scope, f)
	switch {
	case errors.Is(err, eventbus.ErrInvalidScope):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: errorDetail{Code: "invalid_request", Message: "tenantId: blank", Field: "tenantId"}})
	case err != nil:
		s.writeReadError(w, r, "browsing events failed", err)
	default:
		writeJSON(w, http.StatusOK, page)
	}
}

// browseScope is the scope of a browse by p, or false after answering 404
// for a tenant token naming another tenant.
func browseScope(w http.ResponseWriter, q url.Values, p auth.Principal) (eventbus.Scope, bool) {
	t := q.Get("tenantId")
	switch {
	case p.TenantID != auth.AllTenants && t != "" && t != p.TenantID:
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("tenant %q not found", t))
		return eventbus.Scope{}, false
	case p.TenantID != auth.AllTenants:
		return eventbus.TenantScope(p.TenantID), true
	case t != "":
		return eventbus.TenantScope(t), true // blank: ErrInvalidScope, 400
	}
	return eventbus.AllTenants(), true
}

// browseFilter reads the filter parameters; on error it names the field.
func browseFilter(q url.Values) (eventbus.EventFilter, string, error) {
	var f eventbus.EventFilter
	for _, v := range q["type"] {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				f.Types = append(f.Types, p)
			}
		}
	}
	for _, tc := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(tc.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, tc.name, fmt.Errorf("%s: %q is not an RFC 3339 time", tc.name, v)
			}
			*tc.dst = t
		}
	}
	f.Cursor = q.Get("cursor")
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return f, "limit", fmt.Errorf("limit: %q is not a positive number", v)
		}
		f.Limit = n
	}
	return f, "", nil
}
