package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/hyvve/eventbus"
)

// healthEvents serves the event bus health report: 200 healthy, 503 not.
//
// Anonymous callers get the public view (publicHealth): the healthy flag,
// the timestamp, Redis reachability and latency, per-stream existence,
// length and the numbers of the bus's group, and warnings without stream
// or group names, Redis addresses or error text. A token of role admin or
// owner, or every caller when Options.HealthDetails is set, gets the full
// eventbus.Health report.
func (s *Server) healthEvents(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	h := s.bus.Health(ctx)
	status := http.StatusOK
	if !h.Healthy {
		status = http.StatusServiceUnavailable
	}
	if s.healthDetails || s.isAdmin(r) {
		writeJSON(w, status, h)
		return
	}
	writeJSON(w, status, publicView(h, s.bus.Config().Group))
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
	Warnings  []string            `json:"warnings,omitempty"`
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

type publicStream struct {
	Exists bool  `json:"exists"`
	Length int64 `json:"length"`
	// Group holds the numbers of the bus's own consumer group, null when
	// it is missing.
	Group *publicGroup `json:"group"`
}

type publicGroup struct {
	Consumers int64    `json:"consumers"`
	Pending   int64    `json:"pending"`
	Lag       *int64   `json:"lag"`
	AtRisk    []string `json:"dataAtRisk,omitempty"`
}

const detailsHint = "stream and group names and error text need a token of role admin or owner (or EVENTBUS_HEALTH_DETAILS=true)"

// publicView strips h of names, addresses and error text.
func publicView(h eventbus.Health, group string) publicHealth {
	p := publicHealth{
		Healthy:   h.Healthy,
		Timestamp: h.Timestamp,
		Redis:     publicRedis{Connected: h.Redis.Connected, LatencyMs: h.Redis.LatencyMs},
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
		for _, g := range st.in.Groups {
			if g.Name == group {
				st.out.Group = &publicGroup{Consumers: g.Consumers, Pending: g.Pending, Lag: g.Lag, AtRisk: g.DataAtRisk}
			}
		}
		if !h.Redis.Connected {
			continue
		}
		switch {
		case st.in.Error != "":
			p.Warnings = append(p.Warnings, "stream "+st.role+": could not be read")
		case !st.in.Exists:
			p.Warnings = append(p.Warnings, "stream "+st.role+": does not exist (set-up pending)")
		case st.out.Group == nil:
			p.Warnings = append(p.Warnings, "stream "+st.role+": the consumer group is missing (set-up pending)")
		}
		for _, g := range st.in.Groups {
			if len(g.DataAtRisk) > 0 {
				p.Warnings = append(p.Warnings, "stream "+st.role+": a consumer group has data at risk")
				break
			}
		}
	}
	if !p.Healthy && len(p.Warnings) == 0 {
		p.Warnings = append(p.Warnings, "unhealthy")
	}
	return p
}
