package eventbus

import (
	"context"
	"time"
)

// Alarm levels (SPEC §8).
const (
	AlarmWarning  = "warning"
	AlarmCritical = "critical"
)

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
}

// StreamStats describes the main stream.
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
	// against it (platform scope only; 0 for a tenant).
	Budget      int64   `json:"budget"`
	UsedPercent float64 `json:"usedPercent"`
	// TrimmedByRetention counts entries removed by the DLQ's retention
	// since the DLQ was created (platform scope only).
	TrimmedByRetention int64 `json:"trimmedByRetention"`
}

// GroupStats describes the bus's consumer group.
type GroupStats struct {
	Name      string `json:"name"`
	Pending   int64  `json:"pending"`
	Consumers int64  `json:"consumers"`
	// Lag is nil when Redis cannot say.
	Lag *int64 `json:"lag"`
	// OldestPendingAgeMs is the age of the oldest delivered but
	// unacknowledged entry; nil when none.
	OldestPendingAgeMs *int64 `json:"oldestPendingAgeMs"`
	RetriesScheduled   int64  `json:"retriesScheduled"`
}

// ThroughputStats counts events published through the library.
type ThroughputStats struct {
	LastHour int64                `json:"lastHour"`
	Last24h  int64                `json:"last24h"`
	ByType   map[string]TypeCount `json:"byType"`
}

// TypeCount counts one type's events.
type TypeCount struct {
	LastHour int64 `json:"lastHour"`
	Last24h  int64 `json:"last24h"`
}

// FailureStats counts failed handler runs (retries scheduled and dead
// letters).
type FailureStats struct {
	LastHour int64 `json:"lastHour"`
}

// StatsAlarm is a threshold crossed.
type StatsAlarm struct {
	Name      string `json:"name"` // "dlq", "lag", "failures"
	Level     string `json:"level"`
	Value     int64  `json:"value"`
	Threshold int64  `json:"threshold"`
	Message   string `json:"message"`
}

// Stats returns the report for scope. An invalid scope is ErrInvalidScope.
func (in *Inspector) Stats(ctx context.Context, scope Scope) (Stats, error) {
	return Stats{}, errTODO
}
