package rdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The stats counters: throughput and failure counts, one hash per UTC
// minute (Keys.StatsMinute) and per UTC hour (Keys.StatsHour) for the
// whole platform, and the same two per tenant (Keys.StatsTenantMinute,
// Keys.StatsTenantHour) so that a tenant's stats read its own hashes only.
// Every field is a counter, added to with HINCRBY by each process's stats
// recorder (see AddStats); a tenant's hashes use the same fields as the
// platform's, for that tenant's events only.
const (
	// StatsPublished counts events written to the main stream (a
	// duplicate of an idempotency key and a failed publish write nothing
	// and count nothing).
	StatsPublished = "p"
	// StatsTypePrefix starts the field counting one type's events:
	// "p:t:<type>" (see StatsTypeField).
	StatsTypePrefix = "p:t:"
	// StatsOtherTypes counts events of types beyond the recorder's cap on
	// distinct types per minute and process.
	StatsOtherTypes = "p:o"
	// StatsFailed counts failed handler runs: a retry scheduled or a
	// dead letter written.
	StatsFailed = "f"
	// StatsHandlerPrefix starts the field counting one handler's failed
	// runs: "f:h:<handler>" (see StatsHandlerField).
	StatsHandlerPrefix = "f:h:"
	// StatsOtherHandlers counts failed runs of handlers beyond the
	// recorder's cap on distinct handlers per minute and process.
	StatsOtherHandlers = "f:o"
)

// How long the stats hashes live, from the start of their minute or hour
// (EXPIREAT, so every writer sets the same time). The last hour reads the
// current minute and the 59 before it; the last 24 hours the current hour
// and the 23 before it.
const (
	StatsMinuteKeep = 70 * time.Minute
	StatsHourKeep   = 26 * time.Hour
	// StatsMinutesRead and StatsHoursRead are the buckets ReadStats sums.
	StatsMinutesRead = 60
	StatsHoursRead   = 24
)

// StatsTypeField is the field counting events of type typ.
func StatsTypeField(typ string) string { return StatsTypePrefix + typ }

// StatsHandlerField is the field counting failed runs of handler.
func StatsHandlerField(handler string) string { return StatsHandlerPrefix + handler }

// StatsFieldType returns the type a StatsTypeField counts.
func StatsFieldType(field string) (string, bool) { return strings.CutPrefix(field, StatsTypePrefix) }

// StatsAdd is one minute's counters to add: platform-wide and per tenant
// (tenant -> field -> count).
type StatsAdd struct {
	Minute  int64 // unix seconds / 60
	All     map[string]int64
	Tenants map[string]map[string]int64
}

// AddStats adds every StatsAdd to its minute's and hour's hashes (the
// platform's and each tenant's) and sets their expiry, in one MULTI/EXEC:
// all or nothing. A hash whose keep time has passed by now is left out
// (EXPIREAT in the past would delete it).
func (r *RDB) AddStats(ctx context.Context, now time.Time, adds []StatsAdd) error {
	pipe := r.c.TxPipeline()
	n := 0
	add := func(key string, fields map[string]int64, until time.Time) {
		if len(fields) == 0 || !until.After(now) {
			return
		}
		for f, v := range fields {
			if v != 0 {
				pipe.HIncrBy(ctx, key, f, v)
				n++
			}
		}
		pipe.ExpireAt(ctx, key, until)
	}
	for _, a := range adds {
		hour := a.Minute / 60
		minuteUntil := time.Unix(a.Minute*60, 0).Add(StatsMinuteKeep)
		hourUntil := time.Unix(hour*3600, 0).Add(StatsHourKeep)
		add(r.keys.StatsMinute(a.Minute), a.All, minuteUntil)
		add(r.keys.StatsHour(hour), a.All, hourUntil)
		for t, fields := range a.Tenants {
			add(r.keys.StatsTenantMinute(t, a.Minute), fields, minuteUntil)
			add(r.keys.StatsTenantHour(t, hour), fields, hourUntil)
		}
	}
	if n == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("add stats: %w", err)
	}
	return nil
}

// StatsQuery says what ReadStats reads.
type StatsQuery struct {
	// Minute is the current minute (unix seconds / 60): the sums cover it
	// and the StatsMinutesRead-1 before it, and its hour and the
	// StatsHoursRead-1 before it.
	Minute int64
	// Tenant, when not "", reads that tenant's counters and its count of
	// dead letters (by the DLQ index) only; the group fields stay zero.
	Tenant string
	// Platform-wide only: the group whose pending entries are summed over
	// PendingStreams, and the retry schedules whose members are counted.
	Group          string
	PendingStreams []string
	Schedules      []string
}

// StatsRead is what ReadStats found.
type StatsRead struct {
	// LastHour and Last24h sum each counter field over the minute and the
	// hour hashes.
	LastHour, Last24h map[string]int64
	// PerMinute and PerHour are the StatsPublished counter of each minute
	// hash (StatsMinutesRead values) and each hour hash (StatsHoursRead
	// values), oldest first: the last is the current minute or hour.
	PerMinute, PerHour []int64
	// DLQLength is the length of the DLQ summed over every partition's
	// (platform), or the tenant's entries in every partition's DLQ index.
	DLQLength int64
	// DLQByPartition is each partition's part of DLQLength, by partition
	// index (Keys.Partitions() values).
	DLQByPartition []int64
	// DLQTrimmed counts DLQ entries removed by retention, summed over
	// every partition's DLQ counters (platform only).
	DLQTrimmed int64
	// Pending sums the group's pending entries over PendingStreams;
	// OldestPendingID is the lowest of their oldest pending ids ("" when
	// none; compare ids across streams by time only).
	Pending         int64
	OldestPendingID string
	// RetriesScheduled counts the members of the retry schedules.
	RetriesScheduled int64
	// Unreadable holds, with more than one partition, the first error of
	// each partition whose keys could not be read (its Cluster master
	// away): the sums above leave it out. With one partition any error
	// fails the read.
	Unreadable map[int]error
}

// partFailed records err for the partition of key in out.Unreadable and
// reports true, or reports false when a failed partition must fail the
// whole read (one partition, or a key of no partition).
func (r *RDB) partFailed(out *StatsRead, key string, err error) bool {
	if r.keys.Partitions() == 1 {
		return false
	}
	p, ok := r.keys.PartitionOf(key)
	if !ok {
		return false
	}
	if out.Unreadable == nil {
		out.Unreadable = map[int]error{}
	}
	if _, seen := out.Unreadable[p]; !seen {
		out.Unreadable[p] = err
	}
	return true
}

// ReadStats reads the counters, the DLQ's size and the group's pending
// and scheduled counts in one round trip (a pipeline of 84 HGETALL of
// small hashes plus one command per stream and schedule, and two per
// partition for the DLQ; every command names one key, so a Cluster
// client splits the pipeline per node). It reads no
// stream entry: every number comes from a counter or a length Redis
// keeps. A stream without the group counts no pending entries.
func (r *RDB) ReadStats(ctx context.Context, q StatsQuery) (StatsRead, error) {
	out := StatsRead{LastHour: map[string]int64{}, Last24h: map[string]int64{},
		PerMinute: make([]int64, StatsMinutesRead), PerHour: make([]int64, StatsHoursRead)}
	pipe := r.c.Pipeline()
	minutes := make([]*redis.MapStringStringCmd, 0, StatsMinutesRead)
	hours := make([]*redis.MapStringStringCmd, 0, StatsHoursRead)
	hour := q.Minute / 60
	for i := range int64(StatsMinutesRead) {
		key := r.keys.StatsMinute(q.Minute - i)
		if q.Tenant != "" {
			key = r.keys.StatsTenantMinute(q.Tenant, q.Minute-i)
		}
		minutes = append(minutes, pipe.HGetAll(ctx, key))
	}
	for i := range int64(StatsHoursRead) {
		key := r.keys.StatsHour(hour - i)
		if q.Tenant != "" {
			key = r.keys.StatsTenantHour(q.Tenant, hour-i)
		}
		hours = append(hours, pipe.HGetAll(ctx, key))
	}
	parts := r.keys.Partitions()
	dlqLen := make([]*redis.IntCmd, parts)
	var trimmedStr []*redis.StringCmd
	pending := make([]*redis.XPendingCmd, 0, len(q.PendingStreams))
	schedules := make([]*redis.IntCmd, 0, len(q.Schedules))
	if q.Tenant != "" {
		lo, hi := dlqTenantRange(q.Tenant)
		for p := range parts {
			dlqLen[p] = pipe.ZLexCount(ctx, r.keys.Partition(p).DLQIndex(), lo, hi)
		}
	} else {
		trimmedStr = make([]*redis.StringCmd, parts)
		for p := range parts {
			pk := r.keys.Partition(p)
			dlqLen[p] = pipe.XLen(ctx, pk.DLQ())
			trimmedStr[p] = pipe.HGet(ctx, pk.DLQCounters(), DLQCounterTrimmed)
		}
		for _, s := range q.PendingStreams {
			pending = append(pending, pipe.XPending(ctx, s, q.Group))
		}
		for _, s := range q.Schedules {
			schedules = append(schedules, pipe.ZCard(ctx, s))
		}
	}
	_, _ = pipe.Exec(ctx) // every reply is checked below

	// cmds[0] is the current bucket: bucket i goes to per[len-1-i].
	sum := func(into map[string]int64, per []int64, cmds []*redis.MapStringStringCmd) error {
		for i, c := range cmds {
			m, err := c.Result()
			if err != nil {
				return fmt.Errorf("read stats: %w", err)
			}
			for f, v := range m {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					continue // not a counter: never written by AddStats
				}
				into[f] += n
				if f == StatsPublished {
					per[len(per)-1-i] = n
				}
			}
		}
		return nil
	}
	if err := sum(out.LastHour, out.PerMinute, minutes); err != nil {
		return out, err
	}
	if err := sum(out.Last24h, out.PerHour, hours); err != nil {
		return out, err
	}
	out.DLQByPartition = make([]int64, parts)
	for p, c := range dlqLen {
		n, err := c.Result()
		if err != nil && !isNoSuchKey(err) {
			if r.partFailed(&out, r.keys.Partition(p).DLQ(), err) {
				continue
			}
			return out, fmt.Errorf("read stats: dlq length of partition %d: %w", p, err)
		}
		out.DLQByPartition[p] = n
		out.DLQLength += n
	}
	for p, c := range trimmedStr {
		switch v, err := c.Result(); {
		case errors.Is(err, redis.Nil):
		case err != nil:
			if r.partFailed(&out, r.keys.Partition(p).DLQCounters(), err) {
				continue
			}
			return out, fmt.Errorf("read stats: dlq counters of partition %d: %w", p, err)
		default:
			n, _ := strconv.ParseInt(v, 10, 64)
			out.DLQTrimmed += n
		}
	}
	var oldest time.Time
	for i, c := range pending {
		p, err := c.Result()
		switch {
		case IsNoGroup(err) || isNoSuchKey(err):
			continue
		case err != nil:
			if r.partFailed(&out, q.PendingStreams[i], err) {
				continue
			}
			return out, fmt.Errorf("read stats: xpending %s: %w", q.PendingStreams[i], err)
		}
		out.Pending += p.Count
		if p.Count == 0 {
			continue
		}
		if t, ok := IDTime(p.Lower); ok && (out.OldestPendingID == "" || t.Before(oldest)) {
			out.OldestPendingID, oldest = p.Lower, t
		}
	}
	for i, c := range schedules {
		n, err := c.Result()
		if err != nil {
			if r.partFailed(&out, q.Schedules[i], err) {
				continue
			}
			return out, fmt.Errorf("read stats: zcard %s: %w", q.Schedules[i], err)
		}
		out.RetriesScheduled += n
	}
	return out, nil
}
