package eventbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hyvve/eventbus/internal/rdb"
)

// Alarm levels (SPEC §8).
const (
	AlarmWarning  = "warning"
	AlarmCritical = "critical"
)

// Alarm names (StatsAlarm.Name).
const (
	AlarmDLQ      = "dlq"
	AlarmLag      = "lag"
	AlarmFailures = "failures"
)

// StatsOtherType is the ThroughputStats.ByType key counting events of
// types beyond the stats recorder's cap (1,000 distinct types per minute
// and process). It is never a valid event type.
const StatsOtherType = "other"

// Alarm thresholds (SPEC §8): dead letters, lag, failed handler runs per
// hour, as warning / critical.
const (
	AlarmDLQWarn, AlarmDLQCritical           = 100, 500
	AlarmLagWarn, AlarmLagCritical           = 1000, 5000
	AlarmFailuresWarn, AlarmFailuresCritical = 10, 50
)

// Stats is the report of GET /admin/events/stats and "eventbus stats". It
// reads counters and stream metadata only: nothing in it scans a stream.
// For a tenant scope, MainStream and ConsumerGroup (platform-wide) are
// nil; DLQ, Throughput and Failures count that tenant only.
type Stats struct {
	Timestamp     time.Time       `json:"timestamp"`
	Scope         string          `json:"scope"` // "*" or the tenant id
	MainStream    *StreamStats    `json:"mainStream"`
	DLQ           DLQStats        `json:"dlq"`
	ConsumerGroup *GroupStats     `json:"consumerGroup"`
	Throughput    ThroughputStats `json:"throughput"`
	Failures      FailureStats    `json:"failures"`
	Alarms        []StatsAlarm    `json:"alarms"`
	// Partitions lists every partition the bus holds when there is more
	// than one (platform scope only; absent otherwise). MainStream,
	// DLQ and ConsumerGroup are then totals over them.
	Partitions []PartitionStats `json:"partitions,omitempty"`
	// Incomplete is true when some partition could not be read (with more
	// than one partition, a Cluster master away): the totals leave it out
	// and, in the platform scope, its entry in Partitions says why. With
	// one partition a failed read is an error instead.
	Incomplete bool `json:"incomplete,omitempty"`
}

// PartitionStats is one partition's part of the stats: its main stream's
// length, the group's lag and pending entries on it, and its DLQ's
// length.
type PartitionStats struct {
	Index int `json:"index"`
	// Role is PartitionWrite, PartitionPrevious or PartitionShared.
	Role   string `json:"role"`
	Stream string `json:"stream"`
	Length int64  `json:"length"`
	// Lag is nil when Redis cannot say (or the group is missing).
	Lag *int64 `json:"lag"`
	// Pending counts the group's pending entries of the main stream.
	Pending int64 `json:"pending"`
	DLQ     int64 `json:"dlq"`
	// Error says why the partition could not be read (its figures are
	// then zero and left out of the totals).
	Error string `json:"error,omitempty"`
}

// StreamStats describes the main stream. With more than one partition it
// is the total over every partition's main stream: Name is the
// un-partitioned name (<prefix>:events:main), Length the sum, the first
// entry the lowest first id and the last the highest.
type StreamStats struct {
	Name         string  `json:"name"`
	Length       int64   `json:"length"`
	FirstEntryID *string `json:"firstEntryId"`
	LastEntryID  *string `json:"lastEntryId"`
}

// DLQStats describes the dead letters in scope.
type DLQStats struct {
	Length int64 `json:"length"`
	// Budget is Config.DLQBudget; UsedPercent is Length of the whole DLQ
	// against it, in percent (platform scope only; 0 for a tenant).
	Budget      int64   `json:"budget"`
	UsedPercent float64 `json:"usedPercent"`
	// TrimmedByRetention counts entries removed by the DLQ's retention
	// since the DLQ was created (platform scope only).
	TrimmedByRetention int64 `json:"trimmedByRetention"`
}

// GroupStats describes the bus's consumer group.
type GroupStats struct {
	Name string `json:"name"`
	// Pending counts the entries delivered and not yet acknowledged over
	// every stream the group reads (main, DLQ, replay, retries).
	Pending int64 `json:"pending"`
	// Consumers counts the live consumers (heartbeat younger than 30 s,
	// as Inspector.Consumers lists them).
	Consumers int64 `json:"consumers"`
	// Lag is the main stream's entries not yet delivered to the group, as
	// the health report computes it, summed over the partitions; nil when
	// Redis cannot say for any of them.
	Lag *int64 `json:"lag"`
	// OldestPendingAgeMs is the age of the oldest delivered but
	// unacknowledged entry (by its stream id's time); nil when none.
	OldestPendingAgeMs *int64 `json:"oldestPendingAgeMs"`
	// RetriesScheduled counts the retries waiting in the retry schedule
	// (not yet due).
	RetriesScheduled int64 `json:"retriesScheduled"`
}

// ThroughputStats counts events published through the library: events
// written to the main stream (a duplicate of an idempotency key or a
// failed publish counts nothing). LastHour sums the current UTC minute
// and the 59 before it (exact to the minute); Last24h sums the current
// UTC hour and the 23 before it (hour granularity: up to 24 h plus the
// current hour's elapsed part).
//
// The counts are approximate: each process counts in memory and adds its
// counts to Redis every second (from Bus.Run and Consumer.Run), so a
// process that crashes loses up to a second of its counts, and one that
// publishes without running either loop counts nothing in Redis. ByType
// keys are event types, plus StatsOtherType for types beyond the cap.
//
// PerMinute and PerHour are the same counts bucket by bucket, for a
// chart: 60 minutes and 24 hours, oldest first, the last being the
// current (partial) minute or hour. They sum to LastHour and Last24h.
type ThroughputStats struct {
	LastHour  int64                `json:"lastHour"`
	Last24h   int64                `json:"last24h"`
	ByType    map[string]TypeCount `json:"byType"`
	PerMinute []int64              `json:"perMinute"`
	PerHour   []int64              `json:"perHour"`
}

// TypeCount counts one type's events.
type TypeCount struct {
	LastHour int64 `json:"lastHour"`
	Last24h  int64 `json:"last24h"`
}

// FailureStats counts failed handler runs (retries scheduled and dead
// letters) over the current UTC minute and the 59 before it, counted like
// ThroughputStats (approximate by up to a second per process).
type FailureStats struct {
	LastHour int64 `json:"lastHour"`
}

// StatsAlarm is a threshold crossed (a value at or above it), at its
// highest level: one per alarm name at most.
type StatsAlarm struct {
	Name      string `json:"name"` // AlarmDLQ, AlarmLag, AlarmFailures
	Level     string `json:"level"`
	Value     int64  `json:"value"`
	Threshold int64  `json:"threshold"`
	Message   string `json:"message"`
}

// Stats returns the report for scope. An invalid scope is ErrInvalidScope.
//
// It costs a bounded number of round trips whatever the traffic: each
// partition's main stream's XINFO (as Health reads it, for length, ends
// and lag; up to eight partitions at once), the live consumer registry,
// and one pipeline reading every partition's DLQ length, the group's
// XPENDING summaries, the retry schedules' sizes and the 84 counter
// hashes of the last hour and day. Nothing in it scans a stream. For a
// tenant scope only the last pipeline runs, reading that tenant's
// counters and its dead letters' count in every partition's DLQ index.
func (in *Inspector) Stats(ctx context.Context, scope Scope) (Stats, error) {
	if err := scope.Validate(); err != nil {
		return Stats{}, err
	}
	b := in.b
	k := b.rdb.Keys()
	now := time.Now().UTC()
	st := Stats{Timestamp: now, Scope: "*", DLQ: DLQStats{Budget: int64(b.cfg.DLQBudget)}}
	q := rdb.StatsQuery{Minute: now.Unix() / 60}
	if !scope.All() {
		st.Scope = scope.TenantID()
		q.Tenant = scope.TenantID()
	} else {
		q.Group = b.cfg.Group
		q.PendingStreams = b.groupStreams()
		for p := range k.Partitions() {
			q.Schedules = append(q.Schedules, k.Partition(p).RetrySchedule(b.cfg.Group))
		}
	}
	read, err := b.rdb.ReadStats(ctx, q)
	if err != nil {
		return Stats{}, wrapOp("stats", err)
	}
	st.DLQ.Length = read.DLQLength
	st.Incomplete = len(read.Unreadable) > 0
	st.Throughput = throughputOf(read)
	st.Failures = FailureStats{LastHour: read.LastHour[rdb.StatsFailed]}

	var lag *int64
	if scope.All() {
		if st.DLQ.Budget > 0 {
			st.DLQ.UsedPercent = float64(read.DLQLength) * 100 / float64(st.DLQ.Budget)
		}
		st.DLQ.TrimmedByRetention = read.DLQTrimmed
		// Every partition's main stream, as Health reads it.
		parts := k.Partitions()
		mains := make([]string, parts)
		for p := range parts {
			mains[p] = k.Partition(p).Main()
		}
		infos, errs := b.rdb.StreamInfos(ctx, mains, !b.cfg.EmbeddedRedis)
		if parts == 1 {
			if err := errors.Join(errs...); err != nil {
				return Stats{}, wrapOp("stats", err)
			}
		}
		for p, err := range errs {
			if err != nil && p != k.SharedPartition() {
				if read.Unreadable == nil {
					read.Unreadable = map[int]error{}
				}
				if _, seen := read.Unreadable[p]; !seen {
					read.Unreadable[p] = err
				}
				infos[p] = rdb.StreamInfo{Name: mains[p]}
			} else if err != nil {
				return Stats{}, wrapOp("stats", err) // the shared keys: nothing to show
			}
		}
		st.Incomplete = len(read.Unreadable) > 0
		beats, err := b.rdb.LiveConsumers(ctx, b.cfg.Group, consumerLiveWindow)
		if err != nil {
			return Stats{}, wrapOp("stats", err)
		}
		g := &GroupStats{Name: b.cfg.Group, Pending: read.Pending, Consumers: int64(len(beats)),
			RetriesScheduled: read.RetriesScheduled}
		st.MainStream, g.Lag, st.Partitions = b.mainStats(k, infos, read.DLQByPartition, read.Unreadable)
		if t, ok := rdb.IDTime(read.OldestPendingID); ok && read.OldestPendingID != "" {
			age := max(now.Sub(t).Milliseconds(), 0)
			g.OldestPendingAgeMs = &age
		}
		st.ConsumerGroup = g
		lag = g.Lag
	}
	st.Alarms = statsAlarms(st.DLQ.Length, lag, st.Failures.LastHour)
	return st, nil
}

// mainStats sums the partitions' main streams (infos, by partition) and
// the group's lag on them (nil when any is unknown, an unreadable
// partition's included), and lists the partitions when there is more
// than one, each unreadable one with its error.
func (b *Bus) mainStats(k rdb.Keys, infos []rdb.StreamInfo, dlq []int64, unreadable map[int]error) (*StreamStats, *int64, []PartitionStats) {
	ms := &StreamStats{Name: k.Main()}
	var parts []PartitionStats
	zero := int64(0)
	lag := &zero
	for p, info := range infos {
		ms.Length += info.Length
		if info.FirstEntryID != "" && (ms.FirstEntryID == nil || rdb.CompareIDs(info.FirstEntryID, *ms.FirstEntryID) < 0) {
			ms.FirstEntryID = optional(info.FirstEntryID)
		}
		if info.LastEntryID != "" && (ms.LastEntryID == nil || rdb.CompareIDs(info.LastEntryID, *ms.LastEntryID) > 0) {
			ms.LastEntryID = optional(info.LastEntryID)
		}
		ps := PartitionStats{Index: p, Role: partitionRole(k, p), Stream: info.Name, Length: info.Length}
		if p < len(dlq) {
			ps.DLQ = dlq[p]
		}
		for _, gi := range info.Groups {
			if gi.Name == b.cfg.Group {
				ps.Lag, ps.Pending = gi.Lag, gi.Pending
			}
		}
		if err, bad := unreadable[p]; bad {
			ps.Error = "could not be read: " + err.Error()
		}
		if lag != nil && ps.Lag != nil {
			sum := *lag + *ps.Lag
			lag = &sum
		} else {
			lag = nil
		}
		parts = append(parts, ps)
	}
	if len(infos) == 1 {
		return ms, parts[0].Lag, nil
	}
	return ms, lag, parts
}

// throughputOf reads the published counters of read; events of types
// past the recorder's cap count under the type "other" (never a valid
// event type: types have at least two segments).
func throughputOf(read rdb.StatsRead) ThroughputStats {
	t := ThroughputStats{LastHour: read.LastHour[rdb.StatsPublished], Last24h: read.Last24h[rdb.StatsPublished],
		ByType: map[string]TypeCount{}, PerMinute: read.PerMinute, PerHour: read.PerHour}
	if t.PerMinute == nil {
		t.PerMinute = make([]int64, rdb.StatsMinutesRead)
	}
	if t.PerHour == nil {
		t.PerHour = make([]int64, rdb.StatsHoursRead)
	}
	for f, n := range read.LastHour {
		if typ, ok := rdb.StatsFieldType(f); ok {
			tc := t.ByType[typ]
			tc.LastHour += n
			t.ByType[typ] = tc
		} else if f == rdb.StatsOtherTypes {
			tc := t.ByType[StatsOtherType]
			tc.LastHour += n
			t.ByType[StatsOtherType] = tc
		}
	}
	for f, n := range read.Last24h {
		if typ, ok := rdb.StatsFieldType(f); ok {
			tc := t.ByType[typ]
			tc.Last24h += n
			t.ByType[typ] = tc
		} else if f == rdb.StatsOtherTypes {
			tc := t.ByType[StatsOtherType]
			tc.Last24h += n
			t.ByType[StatsOtherType] = tc
		}
	}
	return t
}

// statsAlarms returns one alarm per threshold crossed (a value at or
// above it): DLQ entries, lag (nil: unknown, no alarm) and failed handler
// runs in the last hour, each at its highest level. Never nil.
func statsAlarms(dlq int64, lag *int64, failures int64) []StatsAlarm {
	alarms := []StatsAlarm{}
	check := func(name, what string, v, warn, critical int64) {
		a := StatsAlarm{Name: name, Value: v}
		switch {
		case v >= critical:
			a.Level, a.Threshold = AlarmCritical, critical
		case v >= warn:
			a.Level, a.Threshold = AlarmWarning, warn
		default:
			return
		}
		a.Message = fmt.Sprintf("%s: %d, at or above the %s threshold %d", what, v, a.Level, a.Threshold)
		alarms = append(alarms, a)
	}
	check(AlarmDLQ, "dead letters", dlq, AlarmDLQWarn, AlarmDLQCritical)
	if lag != nil {
		check(AlarmLag, "consumer group lag", *lag, AlarmLagWarn, AlarmLagCritical)
	}
	check(AlarmFailures, "failed handler runs in the last hour", failures, AlarmFailuresWarn, AlarmFailuresCritical)
	return alarms
}
