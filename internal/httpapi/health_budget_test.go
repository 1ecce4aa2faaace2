package httpapi

import (
	"strings"
	"testing"

	"github.com/hyvve/eventbus"
)

// TestPublicViewShowsDLQBudget: the anonymous health view carries the
// DLQ budget's numbers and a warning naming its level, as the full report.
func TestPublicViewShowsDLQBudget(t *testing.T) {
	for _, tc := range []struct {
		name    string
		budget  eventbus.DLQBudgetHealth
		healthy bool
		warn    string
	}{
		{"below 80 %", eventbus.DLQBudgetHealth{Budget: 100, Length: 10, UsedPercent: 10}, true, ""},
		{"warning", eventbus.DLQBudgetHealth{Budget: 100, Length: 85, UsedPercent: 85, Level: "warning"}, true, "dlq: warning: 85.0 % of its budget of 100 entries"},
		{"critical", eventbus.DLQBudgetHealth{Budget: 100, Length: 99, UsedPercent: 99, Level: "critical"}, false, "dlq: critical: 99.0 % of its budget of 100 entries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := eventbus.Health{Healthy: tc.healthy, Redis: eventbus.RedisHealth{Connected: true}, DLQBudget: tc.budget}
			h.Streams.Main.Exists, h.Streams.DLQ.Exists, h.Streams.Replay.Exists = true, true, true
			for _, st := range []*eventbus.StreamHealth{&h.Streams.Main, &h.Streams.DLQ, &h.Streams.Replay} {
				st.Groups = []eventbus.GroupHealth{{Name: "g"}}
			}
			p := publicView(h, "g")
			if p.DLQBudget != tc.budget {
				t.Errorf("dlqBudget = %+v, want %+v", p.DLQBudget, tc.budget)
			}
			got := strings.Join(p.Warnings, "; ")
			if tc.warn == "" && got != "" || tc.warn != "" && !strings.Contains(got, tc.warn) {
				t.Errorf("warnings = %q, want %q", got, tc.warn)
			}
		})
	}
}
