package eventbus

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/hyvve/eventbus/internal/rdb"
)

// riskFraction: pending or undelivered entries older than this fraction of
// the stream's retention are flagged as at risk of being trimmed unhandled.
const riskFraction = 0.9

// Health is the report served at GET /health/events (SPEC §7).
type Health struct {
	Healthy   bool          `json:"healthy"`
	Timestamp time.Time     `json:"timestamp"`
	Redis     RedisHealth   `json:"redis"`
	Streams   StreamsHealth `json:"streams"`
	// DLQBudget is the DLQ's size against Config.DLQBudget.
	DLQBudget DLQBudgetHealth `json:"dlqBudget"`
	// Warnings explain every reason Healthy is false, plus data at risk
	// and a DLQ past 80 % of its budget (still healthy below 95 %).
	Warnings []string `json:"warnings,omitempty"`
}

// DLQ budget thresholds: the health report warns when the DLQ holds
// dlqBudgetWarn of Config.DLQBudget and turns unhealthy at dlqBudgetFail.
const (
	dlqBudgetWarn = 0.80
	dlqBudgetFail = 0.95
)

// DLQBudgetHealth is the DLQ's size against its budget. The DLQ is never
// trimmed by count: past its budget it keeps growing, and only its
// retention removes entries (counted in TrimmedByRetention).
type DLQBudgetHealth struct {
	// Budget is Config.DLQBudget (entries).
	Budget int64 `json:"budget"`
	// Length is the number of entries in the whole DLQ.
	Length int64 `json:"length"`
	// UsedPercent is Length against Budget, in percent.
	UsedPercent float64 `json:"usedPercent"`
	// Level is "" below 80 % of the budget, "warning" from 80 %,
	// "critical" from 95 % (the report is then unhealthy).
	Level string `json:"level,omitempty"`
	// TrimmedByRetention counts the entries the DLQ's retention removed
	// since the DLQ was created.
	TrimmedByRetention int64 `json:"trimmedByRetention"`
}

// RedisHealth tells whether Redis answered a PING and how fast.
type RedisHealth struct {
	Connected bool    `json:"connected"`
	LatencyMs float64 `json:"latencyMs"`
	Error     string  `json:"error,omitempty"`
}

// StreamsHealth holds the three streams.
type StreamsHealth struct {
	Main   StreamHealth `json:"main"`
	DLQ    StreamHealth `json:"dlq"`
	Replay StreamHealth `json:"replay"`
}

// StreamHealth describes one stream. FirstEntryID and LastEntryID are null
// for an empty or missing stream.
type StreamHealth struct {
	Name         string        `json:"name"`
	Exists       bool          `json:"exists"`
	Length       int64         `json:"length"`
	FirstEntryID *string       `json:"firstEntryId"`
	LastEntryID  *string       `json:"lastEntryId"`
	RetentionMs  int64         `json:"retentionMs"`
	Groups       []GroupHealth `json:"groups"`
	Error        string        `json:"error,omitempty"`
}

// GroupHealth describes one consumer group of a stream.
type GroupHealth struct {
	Name            string `json:"name"`
	Consumers       int64  `json:"consumers"`
	Pending         int64  `json:"pending"`
	LastDeliveredID string `json:"lastDeliveredId"`
	// Lag is the number of entries not yet delivered to the group, or null
	// when Redis cannot say (Redis 7.0 after a restart or failover, entries
	// deleted from the middle of the stream, or the embedded dev server).
	Lag *int64 `json:"lag"`
	// OldestPendingID is the oldest delivered but unacknowledged entry.
	OldestPendingID *string `json:"oldestPendingId"`
	// DataAtRisk lists reasons entries of this group are lost or about to
	// be trimmed before being handled.
	DataAtRisk []string `json:"dataAtRisk,omitempty"`
}

// Health is the same as Inspector().Health.
func (b *Bus) Health(ctx context.Context) Health { return b.Inspector().Health(ctx) }

// health reports Redis reachability and the state of every stream and
// group. It never invents a number: lag that Redis cannot report is nil.
// A group is flagged when entries it never read have been removed, or when
// its oldest pending or oldest undelivered entry is within 10 % of the
// retention horizon. Healthy is false when Redis is unreachable, a stream
// is missing or unreadable, data is at risk, or the DLQ holds 95 % of its
// budget (Config.DLQBudget; a warning from 80 %).
func (b *Bus) health(ctx context.Context) Health {
	now := time.Now().UTC()
	h := Health{Timestamp: now, DLQBudget: DLQBudgetHealth{Budget: int64(b.cfg.DLQBudget)}}
	k := b.rdb.Keys()
	// Main reports partition 0's main stream: the whole main stream while
	// there is one partition. More partitions need a report per partition
	// (a change of the document, SPEC §7); see docs/architecture.md.
	h.Streams = StreamsHealth{
		Main:   StreamHealth{Name: k.MainPartition(0), RetentionMs: b.cfg.Retention.Main.Milliseconds(), Groups: []GroupHealth{}},
		DLQ:    StreamHealth{Name: k.DLQ(), RetentionMs: b.cfg.Retention.DLQ.Milliseconds(), Groups: []GroupHealth{}},
		Replay: StreamHealth{Name: k.Replay(), RetentionMs: b.cfg.Retention.Replay.Milliseconds(), Groups: []GroupHealth{}},
	}
	latency, err := b.rdb.Ping(ctx)
	if err != nil {
		h.Redis.Error = err.Error()
		h.Warnings = append(h.Warnings, "redis unreachable: "+err.Error())
		for _, s := range []*StreamHealth{&h.Streams.Main, &h.Streams.DLQ, &h.Streams.Replay} {
			s.Error = "redis unreachable"
		}
		return h
	}
	h.Redis.Connected = true
	h.Redis.LatencyMs = float64(latency.Microseconds()) / 1000

	for _, s := range []struct {
		sh        *StreamHealth
		retention time.Duration
		checkRisk bool
	}{
		{&h.Streams.Main, b.cfg.Retention.Main, true},
		// Nothing consumes the DLQ through its group: its entries are
		// meant to wait, so only existence is checked.
		{&h.Streams.DLQ, b.cfg.Retention.DLQ, false},
		{&h.Streams.Replay, b.cfg.Retention.Replay, true},
	} {
		h.Warnings = append(h.Warnings, b.streamHealth(ctx, now, s.sh, s.retention, s.checkRisk)...)
	}
	unhealthy := len(h.Warnings) > 0
	warning, fail := b.dlqBudgetHealth(ctx, &h)
	if warning != "" {
		h.Warnings = append(h.Warnings, warning)
	}
	h.Healthy = !unhealthy && !fail
	return h
}

// dlqBudgetHealth fills h.DLQBudget from the DLQ's length (read by
// streamHealth) and its counters. It returns a warning, if any, and
// whether it makes the report unhealthy.
func (b *Bus) dlqBudgetHealth(ctx context.Context, h *Health) (string, bool) {
	d := &h.DLQBudget
	d.Budget = int64(b.cfg.DLQBudget)
	d.Length = h.Streams.DLQ.Length
	counts, err := b.rdb.DLQCounts(ctx)
	if err != nil {
		return fmt.Sprintf("dlq counters: %v", err), true
	}
	d.TrimmedByRetention = counts[rdb.DLQCounterTrimmed]
	if d.Budget <= 0 {
		return "", false
	}
	used := float64(d.Length) / float64(d.Budget)
	d.UsedPercent = math.Round(used*1000) / 10
	switch {
	case used >= dlqBudgetFail:
		d.Level = AlarmCritical
		return fmt.Sprintf("dlq holds %d entries, %.1f%% of its budget of %d (unhealthy from 95%%)", d.Length, d.UsedPercent, d.Budget), true
	case used >= dlqBudgetWarn:
		d.Level = AlarmWarning
		return fmt.Sprintf("dlq holds %d entries, %.1f%% of its budget of %d (warning from 80%%)", d.Length, d.UsedPercent, d.Budget), false
	}
	return "", false
}

func (b *Bus) streamHealth(ctx context.Context, now time.Time, sh *StreamHealth, retention time.Duration, checkRisk bool) []string {
	info, err := b.rdb.StreamInfo(ctx, sh.Name, !b.cfg.EmbeddedRedis)
	if err != nil {
		sh.Error = err.Error()
		return []string{fmt.Sprintf("stream %s: %v", sh.Name, err)}
	}
	sh.Exists = info.Exists
	if !info.Exists {
		b.requestSetUp()
		return []string{fmt.Sprintf("stream %s does not exist (set-up pending)", sh.Name)}
	}
	sh.Length = info.Length
	sh.FirstEntryID = optional(info.FirstEntryID)
	sh.LastEntryID = optional(info.LastEntryID)

	var warnings []string
	horizon := time.Duration(float64(retention) * riskFraction)
	for _, g := range info.Groups {
		gh := GroupHealth{
			Name:            g.Name,
			Consumers:       g.Consumers,
			Pending:         g.Pending,
			LastDeliveredID: g.LastDeliveredID,
			Lag:             g.Lag,
			OldestPendingID: optional(g.OldestPendingID),
		}
		if checkRisk {
			gh.DataAtRisk = groupRisks(now, info, g, horizon)
			for _, r := range gh.DataAtRisk {
				warnings = append(warnings, fmt.Sprintf("stream %s group %s: %s", sh.Name, g.Name, r))
			}
		}
		sh.Groups = append(sh.Groups, gh)
	}
	if !hasGroup(info.Groups, b.cfg.Group) {
		b.requestSetUp()
		warnings = append(warnings, fmt.Sprintf("stream %s has no group %s (set-up pending)", sh.Name, b.cfg.Group))
	}
	return warnings
}

// groupRisks lists why entries of group g are lost or close to being
// trimmed unhandled.
func groupRisks(now time.Time, info rdb.StreamInfo, g rdb.GroupInfo, horizon time.Duration) []string {
	var risks []string
	// Entries the group never read were removed: its last delivered id is
	// below the first entry, and the stream has lost entries (trimmed or
	// deleted) since it began.
	removed := info.EntriesAdded > info.Length ||
		info.MaxDeletedEntryID != "" && rdb.CompareIDs(info.MaxDeletedEntryID, g.LastDeliveredID) > 0
	// In an empty stream every entry up to the last generated id is gone.
	boundary := info.FirstEntryID
	if boundary == "" {
		boundary = info.LastGeneratedID
	}
	if removed && boundary != "" && rdb.CompareIDs(g.LastDeliveredID, boundary) < 0 {
		risks = append(risks, fmt.Sprintf("entries were removed before the group read them (last delivered %s, first entry %s)",
			g.LastDeliveredID, info.FirstEntryID))
	}
	if t, ok := rdb.IDTime(g.OldestPendingID); ok && g.OldestPendingID != "" && now.Sub(t) > horizon {
		risks = append(risks, fmt.Sprintf("oldest pending entry %s is %s old, within 10%% of retention",
			g.OldestPendingID, now.Sub(t).Round(time.Second)))
	}
	if t, ok := rdb.IDTime(g.NextUndeliveredID); ok && g.NextUndeliveredID != "" && now.Sub(t) > horizon {
		risks = append(risks, fmt.Sprintf("oldest undelivered entry %s is %s old, within 10%% of retention",
			g.NextUndeliveredID, now.Sub(t).Round(time.Second)))
	}
	return risks
}

func hasGroup(groups []rdb.GroupInfo, name string) bool {
	for _, g := range groups {
		if g.Name == name {
			return true
		}
	}
	return false
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
