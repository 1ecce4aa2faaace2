package httpapi

import (
	"net/http"

	"github.com/hyvve/eventbus/internal/auth"
)

// meBody is the answer of GET /v1/me.
type meBody struct {
	Subject  string `json:"subject"`
	TenantID string `json:"tenantId"` // "*" for a platform token
	Role     string `json:"role"`
	// CanAdmin says whether the token may use the admin routes (roles
	// admin and owner): the dashboard shows actions only then.
	CanAdmin bool `json:"canAdmin"`
}

// me serves GET /v1/me: who the token is, for any authenticated role.
func (s *Server) me(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	writeJSON(w, http.StatusOK, meBody{Subject: p.Subject, TenantID: p.TenantID, Role: p.Role, CanAdmin: p.CanAdmin()})
}
