package rdb

import (
	"fmt"
	"strconv"
	"strings"
)

// Keys builds every Redis key name the product uses. With schema.go (entry
// and hash fields, retry members, status ids) it is the only place that
// knows the Redis schema (see docs/architecture.md).
//
// Single-node layout (the default) keeps the platform's exact names:
//
//	<prefix>:events:main    every event of every tenant
//	<prefix>:events:dlq     dead letters
//	<prefix>:events:replay  replayed copies
//	<prefix>:events:audit   audit log of admin writes
//
// Cluster layout wraps the prefix in a hash tag ({<prefix>}:events:main, ...)
// so that every key lands in one hash slot and multi-key atomic steps
// (ack + schedule retry, ack + move to DLQ) stay legal.
//
// Partitions (Config.Partitions, N): with N = 1 (the default) every key
// above is partition 0's and the layout is today's exact names. With N > 1
// the main stream becomes N streams, each under its own base together
// with every key that changes atomically with it (retries, retry
// schedule and data, status hashes, idempotency keys, and the DLQ with
// its index and counters, which settle writes in the same script):
//
//	single node:  <prefix>:p<p>:events:main, <prefix>:p<p>:events:dlq, ...
//	cluster:      {<prefix>:p<p>[.<salt>]}:events:main, ...
//
// The cluster tag is salted (deterministically) so that partition p's
// slot falls in the p-th of N equal slices of the slot space: with the
// default even slot ranges per master, partitions spread evenly over the
// masters. The un-partitioned names (<prefix>:events:main and the rest)
// stay in use as the "shared" partition: the replay stream and its
// settle keys, the consumer registry, replay jobs, audit and stats, and
// the legacy main stream (read, never written by this bus once N > 1:
// events that other producers still write there, or that were published
// before the change from one partition, are delivered). Previous layouts
// (Config.PreviousPartitions) are read as well until they are drained.
//
// Partitions() counts every partition the bus holds (reads, trims, lists:
// current, previous and shared); WritePartitions() counts the ones new
// events go to: [0, WritePartitions()).
type Keys struct {
	base  string   // shared keys
	parts []string // base of each partition's keys
	mains []string // each partition's main stream (built once: publish names it per event)
	write int      // partitions [0, write) receive new events
	share int      // index of the shared partition in parts
}

// NewKeys returns the key schema for prefix with one partition. With
// cluster set, the prefix is hash-tagged so that all keys share one slot.
func NewKeys(prefix string, cluster bool) Keys {
	return NewPartitionedKeys(prefix, cluster, 1, 0)
}

// MaxPartitions is the largest number of partitions.
const MaxPartitions = 256

// NewPartitionedKeys returns the key schema for prefix with n partitions
// (1 to MaxPartitions), also holding the partitions of a previous layout
// of previous partitions (0: none) until they are drained.
func NewPartitionedKeys(prefix string, cluster bool, n, previous int) Keys {
	if n < 1 || n > MaxPartitions || previous < 0 || previous > MaxPartitions {
		panic(fmt.Sprintf("rdb: %d partitions (previous %d)", n, previous))
	}
	k := Keys{base: prefix, write: n}
	if cluster {
		k.base = "{" + prefix + "}"
	}
	add := func(b string) int {
		for i, have := range k.parts {
			if have == b {
				return i
			}
		}
		k.parts = append(k.parts, b)
		return len(k.parts) - 1
	}
	for p := range n {
		add(partitionBase(prefix, cluster, p, n))
	}
	for p := range previous {
		add(partitionBase(prefix, cluster, p, previous))
	}
	k.share = add(k.base)
	for _, b := range k.parts {
		k.mains = append(k.mains, b+":events:main")
	}
	return k
}

// partitionBase is the base of partition p of n.
func partitionBase(prefix string, cluster bool, p, n int) string {
	if n == 1 {
		if cluster {
			return "{" + prefix + "}"
		}
		return prefix
	}
	name := prefix + ":p" + strconv.Itoa(p)
	if !cluster {
		return name
	}
	return "{" + balancedTag(name, p, n) + "}"
}

// balancedTag returns name, or name.<salt> for the smallest salt, whose
// hash slot lies in the middle half of the p-th of n equal slices of the
// slot space.
func balancedTag(name string, p, n int) string {
	lo := (p*4 + 1) * SlotCount / (n * 4)
	hi := max((p*4+3)*SlotCount/(n*4), lo+1)
	for salt := 0; ; salt++ {
		tag := name
		if salt > 0 {
			tag = name + "." + strconv.Itoa(salt)
		}
		if s := int(Slot(tag)); s >= lo && s < hi {
			return tag
		}
	}
}

// Partitions is the number of partitions the bus holds: it reads their
// streams, settles their entries, trims them and lists their dead
// letters. With one partition (the default) it is 1.
func (k Keys) Partitions() int { return len(k.parts) }

// WritePartitions is the number of partitions new events are written to:
// partitions 0 to WritePartitions()-1 (Config.Partitions).
func (k Keys) WritePartitions() int { return k.write }

// SharedPartition is the index of the partition named with the
// un-partitioned keys: the legacy main stream and the replay stream are
// settled with its keys. With one partition it is partition 0.
func (k Keys) SharedPartition() int { return k.share }

// Partition returns the keys of partition p, 0 <= p < Partitions(). It
// panics for any other p: a partition index comes from iterating
// Partitions() or from a stream's Partition, never from outside.
func (k Keys) Partition(p int) PartitionKeys {
	if p < 0 || p >= len(k.parts) {
		panic(fmt.Sprintf("rdb: partition %d of %d", p, len(k.parts)))
	}
	return PartitionKeys{base: k.parts[p], main: k.mains[p], p: p}
}

// PartitionOf returns the partition whose main, retries, replay or DLQ
// stream is stream, and whether there is one.
func (k Keys) PartitionOf(stream string) (int, bool) {
	for p, b := range k.parts {
		if strings.HasPrefix(stream, b+":events:") {
			return p, true
		}
	}
	return 0, false
}

// PartitionName is partition p's stable name: "" for the shared
// partition, else its key base without the prefix and hash-tag braces
// ("p3", "p3.12").
func (k Keys) PartitionName(p int) string {
	b := k.Partition(p).Base()
	if b == k.base {
		return ""
	}
	prefix := strings.TrimSuffix(strings.TrimPrefix(k.base, "{"), "}")
	b = strings.TrimSuffix(strings.TrimPrefix(b, "{"), "}")
	return strings.TrimPrefix(strings.TrimPrefix(b, prefix), ":")
}

// PartitionNamed returns the partition whose PartitionName is name, and
// whether the bus holds one.
func (k Keys) PartitionNamed(name string) (int, bool) {
	for p := range k.Partitions() {
		if k.PartitionName(p) == name {
			return p, true
		}
	}
	return 0, false
}

// MainPartition is partition p's main stream; MainPartition(0) is Main().
func (k Keys) MainPartition(p int) string { return k.Partition(p).Main() }

// Main is the stream holding every event (partition 0's main stream).
func (k Keys) Main() string { return k.base + ":events:main" }

// DLQ is the dead-letter stream.
func (k Keys) DLQ() string { return k.base + ":events:dlq" }

// DLQIndex is the DLQ's index: a sorted set, every score 0, whose members
// name each DLQ entry twice, once under its tenant and once under its event
// id (see DLQTenantMember and DLQEventMember in dlq.go), so that one
// tenant's dead letters and one event's are read by lexicographic range
// without scanning the DLQ. It changes in the same atomic step as the DLQ.
func (k Keys) DLQIndex() string { return k.base + ":events:dlq:index" }

// DLQCounters is a hash of DLQ counters that survive the entries they
// count: entries removed by retention, redriven, deleted.
func (k Keys) DLQCounters() string { return k.base + ":events:dlq:counters" }

// StatsMinute is the hash of throughput and failure counters of one UTC
// minute (unix time / 60); it expires after a little over an hour.
func (k Keys) StatsMinute(minute int64) string {
	return k.base + ":events:stats:m:" + strconv.FormatInt(minute, 10)
}

// StatsHour is the hash of throughput and failure counters of one UTC hour
// (unix time / 3600); it expires after a little over a day.
func (k Keys) StatsHour(hour int64) string {
	return k.base + ":events:stats:h:" + strconv.FormatInt(hour, 10)
}

// StatsTenantMinute is StatsMinute for one tenant's counters only, so
// that a tenant's stats read its own hashes and never the other tenants'
// fields. The tenant's length goes first (no two tenants share a key).
func (k Keys) StatsTenantMinute(tenantID string, minute int64) string {
	return k.base + ":events:stats:t:" + strconv.Itoa(len(tenantID)) + ":" + tenantID + ":m:" + strconv.FormatInt(minute, 10)
}

// StatsTenantHour is StatsHour for one tenant's counters only.
func (k Keys) StatsTenantHour(tenantID string, hour int64) string {
	return k.base + ":events:stats:t:" + strconv.Itoa(len(tenantID)) + ":" + tenantID + ":h:" + strconv.FormatInt(hour, 10)
}

// Replay is the stream holding replayed copies. Its entries are settled
// with partition 0's keys (status hashes, retries).
func (k Keys) Replay() string { return k.base + ":events:replay" }

// ReplayJob is the hash of one replay job: its request, state, counters
// and cursor, or with several partitions the streams it reads and one
// cursor per stream (fields in replay.go). It expires once the job has ended
// (the job retention).
func (k Keys) ReplayJob(id string) string { return k.base + ":events:replay:job:" + id }

// ReplayJobs is the index of every replay job: a sorted set whose scores
// are all 0 and whose members are the job ids (ULIDs, so that their
// lexicographic order is their creation order). Ids whose hash has
// expired are removed when a listing meets them.
func (k Keys) ReplayJobs() string { return k.base + ":events:replay:jobs" }

// ReplayTenantJobs is ReplayJobs for the jobs limited to one tenant, so
// that a tenant's listing reads its own jobs only. The tenant's length
// goes first (no two tenants share a key).
func (k Keys) ReplayTenantJobs(tenantID string) string {
	return k.base + ":events:replay:jobs:t:" + strconv.Itoa(len(tenantID)) + ":" + tenantID
}

// ReplayActive is the sorted set of the replay jobs not yet ended
// (pending or running), scored by creation time in milliseconds: the
// runners look for work here only.
func (k Keys) ReplayActive() string { return k.base + ":events:replay:active" }

// ReplayLease is the lease of a running replay job: a string holding the
// token of the runner that owns the job, with a TTL the runner renews.
func (k Keys) ReplayLease(id string) string { return k.base + ":events:replay:lease:" + id }

// Audit is the audit log: a stream of the admin writes (dead-letter
// redrive, delete, purge; replay), one entry per action with its record
// as JSON in the FieldAudit field. Shared, like the DLQ; not one of
// Streams() (no consumer group reads it).
func (k Keys) Audit() string { return k.base + ":events:audit" }

// Streams lists the three streams in a fixed order: main, DLQ, replay.
func (k Keys) Streams() []string { return []string{k.Main(), k.DLQ(), k.Replay()} }

// Idempotency is the key remembering that a tenant's caller-supplied event
// id was published, holding its stream id; it expires after the
// idempotency window. Its hash tag (cluster layout) matches the main
// stream's, so the check and the XADD are one atomic step. Partition 0's.
func (k Keys) Idempotency(tenantID, eventID string) string {
	return k.base + ":events:idem:" + ScopedID(tenantID, eventID)
}

// Retries is the group's stream of due retries: the retry forwarder moves
// each due retry here, and the group's consumers read it like the main
// stream, so retries get the same pending-entry recovery. Partition 0's.
func (k Keys) Retries(group string) string { return k.base + ":events:retries:" + group }

// RetrySchedule is the group's sorted set of scheduled retries, scored by
// due time in milliseconds. Partition 0's.
func (k Keys) RetrySchedule(group string) string { return k.base + ":events:retry-schedule:" + group }

// RetryData is the group's hash of scheduled retries: member -> JSON.
// Partition 0's.
func (k Keys) RetryData(group string) string { return k.base + ":events:retry-data:" + group }

// Status is the group's per-event status hash, named by statusID (a
// ScopedID, or a ReplayStatusID for a replayed copy); its fields are in
// schema.go. It exists only for events with a failure, or with several
// handlers while in flight, and expires. Partition 0's.
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

// PartitionKeys names the keys of one partition: its main stream and the
// keys that change atomically with it. In the cluster layout they share
// one hash slot. With one partition, partition 0's names are today's
// exact names.
type PartitionKeys struct {
	base string
	main string
	p    int
}

// Index is the partition's index.
func (pk PartitionKeys) Index() int { return pk.p }

// Base is the partition's key prefix ({<prefix>:p3} in a partitioned
// cluster layout).
func (pk PartitionKeys) Base() string { return pk.base }

// Main is the partition's main stream.
func (pk PartitionKeys) Main() string { return pk.main }

// Replay is the partition's replay stream (only the shared partition's
// is used).
func (pk PartitionKeys) Replay() string { return pk.base + ":events:replay" }

// DLQ is the partition's dead-letter stream: dead letters of its entries.
func (pk PartitionKeys) DLQ() string { return pk.base + ":events:dlq" }

// DLQIndex is the index of the partition's DLQ (see Keys.DLQIndex).
func (pk PartitionKeys) DLQIndex() string { return pk.base + ":events:dlq:index" }

// DLQCounters is the counters hash of the partition's DLQ.
func (pk PartitionKeys) DLQCounters() string { return pk.base + ":events:dlq:counters" }

// Retries is the group's stream of the partition's due retries.
func (pk PartitionKeys) Retries(group string) string { return pk.base + ":events:retries:" + group }

// RetrySchedule is the group's schedule of the partition's retries.
func (pk PartitionKeys) RetrySchedule(group string) string {
	return pk.base + ":events:retry-schedule:" + group
}

// RetryData is the group's data of the partition's scheduled retries.
func (pk PartitionKeys) RetryData(group string) string {
	return pk.base + ":events:retry-data:" + group
}

// Status is the group's status hash of an event of the partition.
func (pk PartitionKeys) Status(group, statusID string) string {
	return pk.base + ":events:status:" + group + ":" + statusID
}

// Idempotency is the idempotency key of an event of the partition.
func (pk PartitionKeys) Idempotency(tenantID, eventID string) string {
	return pk.base + ":events:idem:" + ScopedID(tenantID, eventID)
}
