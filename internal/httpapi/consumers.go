package httpapi

import (
	"net/http"
	"time"

	"github.com/hyvve/eventbus/internal/auth"
)

// consumerItem is one consumer of GET /admin/consumers.
type consumerItem struct {
	Name     string    `json:"name"`
	LastSeen time.Time `json:"lastSeen"`
	Handlers []string  `json:"handlers"`
	Pending  int64     `json:"pending"`
	// IdleMs is the time since its last heartbeat (now − lastSeen, never
	// negative).
	IdleMs int64 `json:"idleMs"`
}

// consumersBody is the answer of GET /admin/consumers.
type consumersBody struct {
	Items []consumerItem `json:"items"`
}

// consumers serves GET /admin/consumers: the group's live consumers, as
// Inspector.Consumers lists them. Roles admin and owner of any tenant
// (403 for the others): consumers are processes of the platform, and
// their names, handlers and pending counts are not any tenant's data, so
// a tenant admin sees the same list as a platform admin.
func (s *Server) consumers(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	if !admin(w, p, "list the consumers") {
		return
	}
	list, err := s.insp.Consumers(r.Context())
	if err != nil {
		s.writeDLQError(w, r, "listing the consumers failed", err, "", "")
		return
	}
	now := time.Now()
	out := consumersBody{Items: make([]consumerItem, 0, len(list))}
	for _, c := range list {
		out.Items = append(out.Items, consumerItem{Name: c.Name, LastSeen: c.LastSeen, Handlers: c.Handlers,
			Pending: c.Pending, IdleMs: max(now.Sub(c.LastSeen).Milliseconds(), 0)})
	}
	writeJSON(w, http.StatusOK, out)
}
