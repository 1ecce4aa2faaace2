package eventbus

import (
	"context"
	"fmt"
	"math"
	"strings"
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
	// Partitions lists every partition the bus holds (see
	// PartitionHealth) when there is more than one; Streams.Main and
	// Streams.DLQ are then their totals. Absent with one partition.
	Partitions []PartitionHealth `json:"partitions,omitempty"`
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

// PartitionHealth is one partition's part of the health report: its
// main stream, the bus's group on it, and its DLQ. Listed only when the
// bus holds more than one partition (Config.Partitions above 1, or a
// previous layout still read).
type PartitionHealth struct {
	Index int `json:"index"`
	// Role is "write" for the partitions new events go to, "previous"
	// for those of Config.PreviousPartitions still drained, "shared" for
	// the un-partitioned names (the legacy main stream).
	Role string `json:"role"`
	// Stream is the partition's main stream.
	Stream string `json:"stream"`
	// Node is the Redis Cluster master serving the partition ("" on a
	// single node).
	Node   string `json:"node,omitempty"`
	Exists bool   `json:"exists"`
	Length int64  `json:"length"`
	// Lag and Pending are the bus's group's on the partition's main
	// stream (Lag null when Redis cannot say or the group is missing).
	Lag     *int64 `json:"lag"`
	Pending int64  `json:"pending"`
	// OldestPendingID is the group's oldest pending entry of the main
	// stream.
	OldestPendingID *string `json:"oldestPendingId"`
	// DLQ is the length of the partition's DLQ.
	DLQ int64 `json:"dlq"`
	// Error says why the partition could not be read (its master
	// unreachable...); a warning names it too.
	Error string `json:"error,omitempty"`
}

// Partition roles (PartitionHealth.Role, PartitionStats.Role).
const (
	PartitionWrite    = "write"
	PartitionPrevious = "previous"
	PartitionShared   = "shared"
)

// partitionRole is partition p's role.
func partitionRole(k rdb.Keys, p int) string {
	switch {
	case p == k.SharedPartition() && p >= k.WritePartitions():
		return PartitionShared
	case p < k.WritePartitions():
		return PartitionWrite
	}
	return PartitionPrevious
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
//
// With more than one partition, Streams.Main and Streams.DLQ are the
// totals over every partition's main stream and DLQ (see mergeStreams),
// Partitions lists each partition, and a partition's problem is a
// warning starting "partition <index>: ".
func (b *Bus) health(ctx context.Context) Health {
	now := time.Now().UTC()
	h := Health{Timestamp: now, DLQBudget: DLQBudgetHealth{Budget: int64(b.cfg.DLQBudget)}}
	k := b.rdb.Keys()
	h.Streams = StreamsHealth{
		Main:   StreamHealth{Name: k.Main(), RetentionMs: b.cfg.Retention.Main.Milliseconds(), Groups: []GroupHealth{}},
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

	// Every partition's main stream and DLQ, then the replay stream, read
	// concurrently (one key each: on a Cluster each from its own master).
	parts := k.Partitions()
	names := make([]string, 0, 2*parts+1)
	for p := range parts {
		names = append(names, k.Partition(p).Main())
	}
	for p := range parts {
		names = append(names, k.Partition(p).DLQ())
	}
	names = append(names, k.Replay())
	infos, errs := b.rdb.StreamInfos(ctx, names, !b.cfg.EmbeddedRedis)

	mains := make([]StreamHealth, parts)
	dlqs := make([]StreamHealth, parts)
	var mainWarn, dlqWarn []string
	for p := range parts {
		prefix := ""
		if parts > 1 {
			prefix = fmt.Sprintf("partition %d: ", p)
		}
		mains[p] = StreamHealth{Name: names[p], RetentionMs: h.Streams.Main.RetentionMs, Groups: []GroupHealth{}}
		for _, w := range b.streamHealth(now, &mains[p], infos[p], errs[p], b.cfg.Retention.Main, true) {
			mainWarn = append(mainWarn, prefix+w)
		}
		// Nothing consumes the DLQ through its group: its entries are
		// meant to wait, so only existence is checked.
		dlqs[p] = StreamHealth{Name: names[parts+p], RetentionMs: h.Streams.DLQ.RetentionMs, Groups: []GroupHealth{}}
		for _, w := range b.streamHealth(now, &dlqs[p], infos[parts+p], errs[parts+p], b.cfg.Retention.DLQ, false) {
			dlqWarn = append(dlqWarn, prefix+w)
		}
	}
	h.Warnings = append(h.Warnings, mainWarn...)
	h.Warnings = append(h.Warnings, dlqWarn...)
	h.Warnings = append(h.Warnings, b.streamHealth(now, &h.Streams.Replay, infos[2*parts], errs[2*parts], b.cfg.Retention.Replay, true)...)
	if parts == 1 {
		h.Streams.Main, h.Streams.DLQ = mains[0], dlqs[0]
	} else {
		h.Streams.Main = mergeStreams(h.Streams.Main, mains)
		h.Streams.DLQ = mergeStreams(h.Streams.DLQ, dlqs)
		h.Partitions = make([]PartitionHealth, parts)
		for p := range parts {
			h.Partitions[p] = b.partitionHealth(ctx, k, p, mains[p], dlqs[p])
		}
	}
	unhealthy := len(h.Warnings) > 0
	warning, fail := b.dlqBudgetHealth(ctx, &h)
	if warning != "" {
		h.Warnings = append(h.Warnings, warning)
	}
	h.Healthy = !unhealthy && !fail
	return h
}

// partitionHealth is partition p's line of the report.
func (b *Bus) partitionHealth(ctx context.Context, k rdb.Keys, p int, main, dlq StreamHealth) PartitionHealth {
	ph := PartitionHealth{Index: p, Role: partitionRole(k, p), Stream: main.Name, Node: b.rdb.NodeOf(ctx, main.Name),
		Exists: main.Exists, Length: main.Length, DLQ: dlq.Length, Error: main.Error}
	if ph.Error == "" && dlq.Error != "" {
		ph.Error = "dlq: " + dlq.Error
	}
	for _, g := range main.Groups {
		if g.Name == b.cfg.Group {
			ph.Lag, ph.Pending, ph.OldestPendingID = g.Lag, g.Pending, g.OldestPendingID
		}
	}
	return ph
}

// mergeStreams returns total (its name and retention kept) holding the
// totals of parts, the same stream of each partition: it exists when
// every part does; lengths and pending counts are summed, lags summed
// (null when any part's is unknown or lacks the group), the first entry
// is the lowest first id and the last the highest; a group's consumers
// are the most any part has (the bus's consumers read every partition);
// its last delivered id the highest, its oldest pending id the oldest;
// its data at risk and the stream's errors are listed with their
// partition.
func mergeStreams(total StreamHealth, parts []StreamHealth) StreamHealth {
	total.Exists = true
	total.Groups = []GroupHealth{}
	var errs []string
	byName := map[string]int{}
	withGroup := map[string]int{}
	for p, s := range parts {
		if s.Error != "" {
			errs = append(errs, fmt.Sprintf("partition %d: %s", p, s.Error))
		}
		total.Exists = total.Exists && s.Exists
		total.Length += s.Length
		if s.FirstEntryID != nil && (total.FirstEntryID == nil || rdb.CompareIDs(*s.FirstEntryID, *total.FirstEntryID) < 0) {
			total.FirstEntryID = s.FirstEntryID
		}
		if s.LastEntryID != nil && (total.LastEntryID == nil || rdb.CompareIDs(*s.LastEntryID, *total.LastEntryID) > 0) {
			total.LastEntryID = s.LastEntryID
		}
		for _, g := range s.Groups {
			i, ok := byName[g.Name]
			if !ok {
				i = len(total.Groups)
				byName[g.Name] = i
				zero := int64(0)
				total.Groups = append(total.Groups, GroupHealth{Name: g.Name, Lag: &zero})
			}
			withGroup[g.Name]++
			t := &total.Groups[i]
			t.Consumers = max(t.Consumers, g.Consumers)
			t.Pending += g.Pending
			if t.LastDeliveredID == "" || rdb.CompareIDs(g.LastDeliveredID, t.LastDeliveredID) > 0 {
				t.LastDeliveredID = g.LastDeliveredID
			}
			if t.Lag != nil && g.Lag != nil {
				sum := *t.Lag + *g.Lag
				t.Lag = &sum
			} else {
				t.Lag = nil
			}
			if g.OldestPendingID != nil && (t.OldestPendingID == nil || rdb.CompareIDs(*g.OldestPendingID, *t.OldestPendingID) < 0) {
				t.OldestPendingID = g.OldestPendingID
			}
			for _, r := range g.DataAtRisk {
				t.DataAtRisk = append(t.DataAtRisk, fmt.Sprintf("partition %d: %s", p, r))
			}
		}
	}
	for i, g := range total.Groups {
		if withGroup[g.Name] < len(parts) {
			total.Groups[i].Lag = nil // a part without the group: its lag is unknown
		}
	}
	if len(errs) > 0 {
		total.Exists = false
		total.Error = strings.Join(errs, "; ")
	}
	return total
}

// dlqBudgetHealth fills h.DLQBudget from the DLQ's length (read by
// streamHealth, summed over the partitions) and the DLQ counters of
// every partition. It returns a warning, if any, and whether it makes the
// report unhealthy.
func (b *Bus) dlqBudgetHealth(ctx context.Context, h *Health) (string, bool) {
	d := &h.DLQBudget
	d.Budget = int64(b.cfg.DLQBudget)
	d.Length = h.Streams.DLQ.Length
	trimmed, err := b.rdb.DLQTrimmed(ctx)
	if err != nil {
		return fmt.Sprintf("dlq counters: %v", err), true
	}
	d.TrimmedByRetention = trimmed
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

// streamHealth fills sh from info (read by StreamInfo; err its error)
// and returns its warnings.
func (b *Bus) streamHealth(now time.Time, sh *StreamHealth, info rdb.StreamInfo, err error, retention time.Duration, checkRisk bool) []string {
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
