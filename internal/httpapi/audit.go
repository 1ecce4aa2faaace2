package httpapi

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/auth"
)

// audit serves GET /admin/audit?cursor&limit: one page of the audit log,
// newest first, read through the Inspector: {items, nextCursor}. Roles
// admin and owner only (403 for the others). A tenant token sees the
// actions on its own tenant only; a platform token sees every entry. A
// bad parameter answers 400 naming it in "field".
func (s *Server) audit(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !p.CanAdmin() {
		writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("role %q may not read the audit log", p.Role))
		return
	}
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: errorDetail{Code: "invalid_request", Message: fmt.Sprintf("limit: %q is not a positive number", v), Field: "limit"}})
			return
		}
		limit = n
	}
	scope := eventbus.AllTenants()
	if p.TenantID != auth.AllTenants {
		scope = eventbus.TenantScope(p.TenantID)
	}
	page, err := s.insp.Audit(r.Context(), scope, q.Get("cursor"), limit)
	switch {
	case err != nil:
		s.writeReadError(w, r, "reading the audit log failed", err)
	default:
		writeJSON(w, http.StatusOK, page)
	}
}
