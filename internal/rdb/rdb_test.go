package rdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestBreakerOpensAndClosesByItself(t *testing.T) {
	now := time.Unix(0, 0)
	b := newBreaker(3, time.Second)
	b.now = func() time.Time { return now }

	steps := []struct {
		unavailable bool
		advance     time.Duration
		wantAllow   bool
	}{
		{true, 0, true},                        // 1 failure
		{true, 0, true},                        // 2 failures
		{false, 0, true},                       // success resets
		{true, 0, true},                        // 1
		{true, 0, true},                        // 2
		{true, 0, false},                       // 3: open
		{true, 500 * time.Millisecond, false},  // still open (a late failure extends)
		{false, 1500 * time.Millisecond, true}, // cool-down over, success closes
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		b.record(s.unavailable)
		if got, _ := b.allow(); got != s.wantAllow {
			t.Fatalf("step %d: allow = %v, want %v", i, got, s.wantAllow)
		}
	}
}

func TestUnavailableClassification(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{redis.Nil, false},
		{context.Canceled, false},
		{context.DeadlineExceeded, false},
		{io.EOF, true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{fmt.Errorf("wrapped: %w", io.ErrUnexpectedEOF), true},
		{redis.ErrPoolTimeout, true},
		// Refusals: Redis will not run anything for this client.
		{proto("NOAUTH Authentication required."), true},
		{proto("WRONGPASS invalid username-password pair or user is disabled."), true},
		{proto("ERR DB index is out of range"), true},
		{proto("ERR Protocol error: unauthenticated multibulk length"), true},
		// Reply errors: Redis serves, this command failed.
		{proto("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{proto("NOPERM this user has no permissions to run the 'xadd' command"), false},
	}
	for _, tt := range tests {
		if got := unavailable(tt.err); got != tt.want {
			t.Errorf("unavailable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestStreamIDs(t *testing.T) {
	cmp := []struct {
		a, b string
		want int
	}{
		{"1-0", "1-0", 0},
		{"1-0", "1-1", -1},
		{"2-0", "10-0", -1}, // numeric, not lexical
		{"10-5", "10-4", 1},
		{"0-0", "1700000000000-0", -1},
	}
	for _, c := range cmp {
		if got := CompareIDs(c.a, c.b); got != c.want {
			t.Errorf("CompareIDs(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	now := time.UnixMilli(1_700_000_000_000)
	if got := MinIDFor(now, time.Hour); got != "1699996400000-0" {
		t.Errorf("MinIDFor = %s", got)
	}
	if tm, ok := IDTime("1700000000000-7"); !ok || !tm.Equal(now) {
		t.Errorf("IDTime = %v %v", tm, ok)
	}
	if _, ok := IDTime("garbage"); ok {
		t.Error("IDTime(garbage) ok")
	}
}

func TestKeys(t *testing.T) {
	single := NewKeys("hyvve", false)
	if single.Main() != "hyvve:events:main" || single.DLQ() != "hyvve:events:dlq" || single.Replay() != "hyvve:events:replay" {
		t.Errorf("single-node keys %v", single.Streams())
	}
	cluster := NewKeys("hyvve", true)
	if cluster.Main() != "{hyvve}:events:main" {
		t.Errorf("cluster key %s", cluster.Main())
	}
}
