package httpapi

import (
	"net/http"

	"github.com/hyvve/eventbus/internal/auth"
)

// stats serves GET /admin/events/stats: the Inspector's Stats report for
// the token's scope (SPEC §7, §8). Roles admin and owner only (403 for the
// others). A tenant token gets its own tenant's figures (a tenantId naming
// another tenant answers 404); a platform token the whole bus, or one
// tenant's with ?tenantId=.
func (s *Server) stats(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !admin(w, p, "read the stats") {
		return
	}
	scope, ok := adminScope(w, r, p)
	if !ok {
		return
	}
	st, err := s.insp.Stats(r.Context(), scope)
	if err != nil {
		s.writeDLQError(w, r, "reading the stats failed", err, "", "")
		return
	}
	writeJSON(w, http.StatusOK, st)
}
