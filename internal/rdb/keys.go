package rdb

// Keys builds every Redis key name the product uses. With schema.go (entry
// and hash fields, retry members, status ids) it is the only place that
// knows the Redis schema (see docs/architecture.md).
//
// Single-node layout (the default) keeps the platform's exact names:
//
//	<prefix>:events:main    every event of every tenant
//	<prefix>:events:dlq     dead letters
//	<prefix>:events:replay  replayed copies
//
// Cluster layout wraps the prefix in a hash tag ({<prefix>}:events:main, ...)
// so that every key lands in one hash slot and multi-key atomic steps
// (ack + schedule retry, ack + move to DLQ) stay legal.
type Keys struct {
	base string
}

// NewKeys returns the key schema for prefix. With cluster set, the prefix is
// hash-tagged so that all keys share one slot.
func NewKeys(prefix string, cluster bool) Keys {
	if cluster {
		return Keys{base: "{" + prefix + "}"}
	}
	return Keys{base: prefix}
}

// Main is the stream holding every event.
func (k Keys) Main() string { return k.base + ":events:main" }

// DLQ is the dead-letter stream.
func (k Keys) DLQ() string { return k.base + ":events:dlq" }

// Replay is the stream holding replayed copies.
func (k Keys) Replay() string { return k.base + ":events:replay" }

// Streams lists the three streams in a fixed order: main, DLQ, replay.
func (k Keys) Streams() []string { return []string{k.Main(), k.DLQ(), k.Replay()} }

// Idempotency is the key remembering that a tenant's caller-supplied event
// id was published, holding its stream id; it expires after the
// idempotency window. Its hash tag (cluster layout) matches the main
// stream's, so the check and the XADD are one atomic step.
func (k Keys) Idempotency(tenantID, eventID string) string {
	return k.base + ":events:idem:" + ScopedID(tenantID, eventID)
}

// Retries is the group's stream of due retries: the retry forwarder moves
// each due retry here, and the group's consumers read it like the main
// stream, so retries get the same pending-entry recovery.
func (k Keys) Retries(group string) string { return k.base + ":events:retries:" + group }

// RetrySchedule is the group's sorted set of scheduled retries, scored by
// due time in milliseconds.
func (k Keys) RetrySchedule(group string) string { return k.base + ":events:retry-schedule:" + group }

// RetryData is the group's hash of scheduled retries: member -> JSON.
func (k Keys) RetryData(group string) string { return k.base + ":events:retry-data:" + group }

// Status is the group's per-event status hash, named by statusID (a
// ScopedID, or a ReplayStatusID for a replayed copy); its fields are in
// schema.go. It exists only for events with a failure, or with several
// handlers while in flight, and expires.
func (k Keys) Status(group, statusID string) string {
	return k.base + ":events:status:" + group + ":" + statusID
}

// Consumers is the group's registry of live consumers: a hash with one
// field per consumer name holding {"lastSeen": ms (Redis clock),
// "handlers": [names]}, refreshed by each running consumer (its
// heartbeat). A consumer whose lastSeen is older than the consumer's
// DeadConsumerIdle is dead; the hash itself expires when no consumer of
// the group refreshes it.
func (k Keys) Consumers(group string) string { return k.base + ":events:consumers:" + group }
