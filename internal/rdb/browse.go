package rdb

import (
	"strconv"
	"strings"
	"time"
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
