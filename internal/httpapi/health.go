package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hyvve/eventbus"
)

// healthEvents serves the event bus health report: 200 healthy, 503 not.
//
// Anonymous callers get the public view (publicHealth): the report's
// shape without stream and group names, Redis addresses or error text
// (generic warnings and errors instead). A token of role admin or
// owner, or every caller when Options.HealthDetails is set, gets the full
// eventbus.Health report.
func (s *Server) healthEvents(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	h := s.insp.Health(ctx)
	status := http.StatusOK
	if !h.Healthy {
		status = http.StatusServiceUnavailable
	}
	if s.healthDetails || s.isAdmin(r) {
		writeJSON(w, status, h)
		return
	}
	writeJSON(w, status, publicView(h, s.insp.Group()))
}

// isAdmin reports whether r carries a valid token of role admin or owner.
// A missing or invalid token is not an error here: the caller simply gets
// the public view.
func (s *Server) isAdmin(r *http.Request) bool {
	hdr := r.Header.Get("Authorization")
	if hdr == "" {
		return false
	}
	p, err := s.auth.Authenticate(hdr)
	return err == nil && p.CanAdmin()
}

// publicHealth is the health report shown to anonymous callers.
type publicHealth struct {
	Healthy   bool                `json:"healthy"`
	Timestamp time.Time           `json:"timestamp"`
	Redis     publicRedis         `json:"redis"`
	Streams   publicStreamsHealth `json:"streams"`
	// DLQBudget carries numbers only, as in the full report.
	DLQBudget eventbus.DLQBudgetHealth `json:"dlqBudget"`
	Warnings  []string                 `json:"warnings,omitempty"`
	// Partitions is eventbus.Health's without stream names, node
	// addresses and error text; absent with one partition.
	Partitions []publicPartition `json:"partitions,omitempty"`
	// Details tells how to get the full report.
	Details string `json:"details"`
}

type publicRedis struct {
	Connected bool    `json:"connected"`
	LatencyMs float64 `json:"latencyMs"`
}

type publicStreamsHealth struct {
	Main   publicStream `json:"main"`
	DLQ    publicStream `json:"dlq"`
	Replay publicStream `json:"replay"`
}

// publicStream is eventbus.StreamHealth without the stream's name, group
// names and error text (the SPEC's shape otherwise).
type publicStream struct {
	Exists       bool          `json:"exists"`
	Length       int64         `json:"length"`
	FirstEntryID *string       `json:"firstEntryId"`
	LastEntryID  *string       `json:"lastEntryId"`
	Groups       []publicGroup `json:"groups"`
	// Error is a generic "redis unreachable" or "could not be read".
	Error string `json:"error,omitempty"`
}

type publicGroup struct {
	// Self marks the group this server belongs to.
	Self            bool     `json:"self"`
	Consumers       int64    `json:"consumers"`
	Pending         int64    `json:"pending"`
	LastDeliveredID string   `json:"lastDeliveredId"`
	Lag             *int64   `json:"lag"`
	OldestPendingID *string  `json:"oldestPendingId"`
	DataAtRisk      []string `json:"dataAtRisk,omitempty"`
}

// publicPartition is eventbus.PartitionHealth without its stream's name,
// its node's address and error text.
type publicPartition struct {
	Index           int     `json:"index"`
	Role            string  `json:"role"`
	Exists          bool    `json:"exists"`
	Length          int64   `json:"length"`
	Lag             *int64  `json:"lag"`
	Pending         int64   `json:"pending"`
	OldestPendingID *string `json:"oldestPendingId"`
	DLQ             int64   `json:"dlq"`
	// Error is a generic "could not be read".
	Error string `json:"error,omitempty"`
}

const detailsHint = "stream and group names and error text need a token of role admin or owner (or EVENTBUS_HEALTH_DETAILS=true)"

// publicView strips h of names, addresses and error text.
func publicView(h eventbus.Health, group string) publicHealth {
	p := publicHealth{
		Healthy:   h.Healthy,
		Timestamp: h.Timestamp,
		Redis:     publicRedis{Connected: h.Redis.Connected, LatencyMs: h.Redis.LatencyMs},
		DLQBudget: h.DLQBudget,
		Details:   detailsHint,
	}
	if !h.Redis.Connected {
		p.Warnings = append(p.Warnings, "redis unreachable")
	}
	for _, st := range []struct {
		role string
		in   eventbus.StreamHealth
		out  *publicStream
	}{
		{"main", h.Streams.Main, &p.Streams.Main},
		{"dlq", h.Streams.DLQ, &p.Streams.DLQ},
		{"replay", h.Streams.Replay, &p.Streams.Replay},
	} {
		st.out.Exists, st.out.Length = st.in.Exists, st.in.Length
		st.out.FirstEntryID, st.out.LastEntryID = st.in.FirstEntryID, st.in.LastEntryID
		st.out.Groups = make([]publicGroup, 0, len(st.in.Groups))
		self, atRisk := false, false
		for _, g := range st.in.Groups {
			st.out.Groups = append(st.out.Groups, publicGroup{
				Self: g.Name == group, Consumers: g.Consumers, Pending: g.Pending, LastDeliveredID: g.LastDeliveredID,
				Lag: g.Lag, OldestPendingID: g.OldestPendingID, DataAtRisk: g.DataAtRisk,
			})
			self = self || g.Name == group
			atRisk = atRisk || len(g.DataAtRisk) > 0
		}
		switch {
		case !h.Redis.Connected:
			st.out.Error = "redis unreachable"
			continue
		case st.in.Error != "":
			st.out.Error = "could not be read"
			p.Warnings = append(p.Warnings, "stream "+st.role+": could not be read")
		case !st.in.Exists:
			p.Warnings = append(p.Warnings, "stream "+st.role+": does not exist (set-up pending)")
		case !self:
			p.Warnings = append(p.Warnings, "stream "+st.role+": the consumer group is missing (set-up pending)")
		}
		if atRisk {
			p.Warnings = append(p.Warnings, "stream "+st.role+": a consumer group has data at risk")
		}
	}
	for _, ph := range h.Partitions {
		pp := publicPartition{Index: ph.Index, Role: ph.Role, Exists: ph.Exists, Length: ph.Length, Lag: ph.Lag,
			Pending: ph.Pending, OldestPendingID: ph.OldestPendingID, DLQ: ph.DLQ}
		switch {
		case !h.Redis.Connected:
		case ph.Error != "":
			pp.Error = "could not be read"
			p.Warnings = append(p.Warnings, fmt.Sprintf("partition %d: could not be read", ph.Index))
		case !ph.Exists:
			p.Warnings = append(p.Warnings, fmt.Sprintf("partition %d: main stream does not exist (set-up pending)", ph.Index))
		}
		p.Partitions = append(p.Partitions, pp)
	}
	if lvl := h.DLQBudget.Level; lvl != "" {
		p.Warnings = append(p.Warnings, fmt.Sprintf("dlq: %s: %.1f %% of its budget of %d entries", lvl, h.DLQBudget.UsedPercent, h.DLQBudget.Budget))
	}
	if !p.Healthy && len(p.Warnings) == 0 {
		p.Warnings = append(p.Warnings, "unhealthy")
	}
	return p
}
