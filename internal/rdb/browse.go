package rdb

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Stream-id helpers for browsing a stream by time. Stream ids are
// "<ms>-<seq>" with ms the Unix time in milliseconds of the write.

// FirstIDAt is the smallest stream id written at or after t: an inclusive
// XRANGE start. Times before 1970 give "0-0".
func FirstIDAt(t time.Time) string { return MinIDFor(t, 0) }

// LastIDAt is the largest stream id written at or before t (in its
// millisecond): an inclusive XRANGE end. Times before 1970 give "0-0".
func LastIDAt(t time.Time) string {
	ms := t.UnixMilli()
	if ms < 0 {
		return "0-0"
	}
	return strconv.FormatInt(ms, 10) + "-" + strconv.FormatUint(^uint64(0), 10)
}

// ValidID reports whether id is a complete stream id, "<ms>-<seq>" with
// both parts unsigned 64-bit decimal numbers.
func ValidID(id string) bool {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		return false
	}
	for _, p := range []string{ms, seq} {
		if p == "" || p[0] == '+' {
			return false
		}
		if _, err := strconv.ParseUint(p, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// MaxID is the largest stream id: nothing can follow it.
const MaxID = "18446744073709551615-18446744073709551615"

// After is the exclusive XRANGE start just after id (Redis refuses it for
// MaxID, which callers check first).
func After(id string) string { return "(" + id }

// Entry references across partitions.
//
// An entry of a partition's stream (main or DLQ) is named, outside this
// package, by a reference: its stream id when it is in the shared
// partition (the un-partitioned keys: with one partition, every entry),
// and "<name>-<stream id>" otherwise, where name is the partition's
// stable name (PartitionName: its key base without the prefix, e.g. "p3",
// or "p3.12" with a salted cluster tag). References are URL-safe (letters,
// digits, '.', '-') and stay valid across configuration changes: a
// partition's name is its key names, which a previous layout keeps.
// References are ordered by stream id, then by partition name (the shared
// partition's "" first): a total order in which pages of a merged listing
// continue exactly where the previous one stopped.

// FormatRef is the reference of the entry id of the partition named name.
func FormatRef(name, id string) string {
	if name == "" {
		return id
	}
	return name + "-" + id
}

// ParseRef splits a reference into partition name and stream id; ok is
// false when s is not one (a complete stream id, optionally preceded by a
// name of letters, digits and dots and a "-").
func ParseRef(s string) (name, id string, ok bool) {
	if strings.Count(s, "-") == 2 {
		i := strings.IndexByte(s, '-')
		name, s = s[:i], s[i+1:]
		if name == "" {
			return "", "", false
		}
		for _, c := range name {
			if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' {
				return "", "", false
			}
		}
	}
	if !ValidID(s) {
		return "", "", false
	}
	return name, s, true
}

// CompareRefs orders entries of several partitions: by stream id, then
// by partition name.
func CompareRefs(aName, aID, bName, bID string) int {
	if c := CompareIDs(aID, bID); c != 0 {
		return c
	}
	return strings.Compare(aName, bName)
}

// RangeRead is one XRANGE (or XREVRANGE) of a batch.
type RangeRead struct {
	Stream     string
	Start, End string // as XRANGE takes them (XREVRANGE: End is the high end)
	Count      int64
}

// Ranges runs reads (XRANGE, or XREVRANGE with rev) in one pipeline (on
// a Redis Cluster, one per node) and returns their entries in order.
func (r *RDB) Ranges(ctx context.Context, reads []RangeRead, rev bool) ([][]redis.XMessage, error) {
	cmds := make([]*redis.XMessageSliceCmd, len(reads))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, rd := range reads {
			if rev {
				cmds[i] = p.XRevRangeN(ctx, rd.Stream, rd.End, rd.Start, rd.Count)
			} else {
				cmds[i] = p.XRangeN(ctx, rd.Stream, rd.Start, rd.End, rd.Count)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("xrange: %w", err)
	}
	out := make([][]redis.XMessage, len(cmds))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}
