package rdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestBreakerHalfOpenLetsOneProbeThrough: once the cool-down is over, one
// call goes through (the probe) and every other fails at once until the
// probe's outcome is known or another cool-down has passed.
func TestBreakerHalfOpenLetsOneProbeThrough(t *testing.T) {
	type step struct {
		advance   time.Duration
		record    string // "", "fail", "ok": the outcome recorded before asking
		wantAllow bool
		wantProbe bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"closed lets everything through", []step{
			{0, "", true, false}, {0, "fail", true, false}, {0, "fail", true, false}, {0, "", true, false},
		}},
		{"opens at the threshold", []step{
			{0, "fail", true, false}, {0, "fail", true, false}, {0, "fail", false, false},
			{999 * time.Millisecond, "", false, false},
		}},
		{"one probe per cool-down", []step{
			{0, "fail", true, false}, {0, "fail", true, false}, {0, "fail", false, false},
			{time.Second, "", true, true}, // the probe
			{0, "", false, false},         // the others fail at once
			{500 * time.Millisecond, "", false, false},
			{500 * time.Millisecond, "", true, true}, // the probe never reported: another one
			{0, "", false, false},
		}},
		{"a failed probe keeps it open for a cool-down", []step{
			{0, "fail", true, false}, {0, "fail", true, false}, {0, "fail", false, false},
			{time.Second, "", true, true},
			{0, "fail", false, false},
			{999 * time.Millisecond, "", false, false},
			{time.Millisecond, "", true, true},
		}},
		{"a successful probe closes it", []step{
			{0, "fail", true, false}, {0, "fail", true, false}, {0, "fail", false, false},
			{time.Second, "", true, true},
			{0, "ok", true, false}, {0, "", true, false}, {0, "fail", true, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			b := newBreaker(3, time.Second)
			b.now = func() time.Time { return now }
			for i, s := range tt.steps {
				now = now.Add(s.advance)
				switch s.record {
				case "fail":
					b.record(true)
				case "ok":
					b.record(false)
				}
				ok, probe := b.allow()
				if ok != s.wantAllow || probe != s.wantProbe {
					t.Fatalf("step %d: allow = %v, probe = %v; want %v, %v", i, ok, probe, s.wantAllow, s.wantProbe)
				}
			}
		})
	}
}

// TestBreakerOneProbeAmongConcurrentCallers: many callers at the end of a
// cool-down: exactly one goes through.
func TestBreakerOneProbeAmongConcurrentCallers(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(0, 0)
	b := newBreaker(3, time.Second)
	b.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	for range 3 {
		b.record(true)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	var through atomic.Int64
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if ok, _ := b.allow(); ok {
				through.Add(1)
			}
		})
	}
	wg.Wait()
	if n := through.Load(); n != 1 {
		t.Fatalf("%d calls went through, want exactly 1", n)
	}
}

// TestWriteErrorClassification: what a failed write means.
func TestWriteErrorClassification(t *testing.T) {
	readTimeout := &net.OpError{Op: "read", Err: timeoutErr{}}
	tests := []struct {
		name    string
		err     error
		written string // "no" or "unknown"
		unavail bool
	}{
		{"dial refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, "no", true},
		{"pool timeout", redis.ErrPoolTimeout, "no", true},
		{"breaker open", wrapUnavailable(errBreakerOpen), "no", true},
		{"client closed", redis.ErrClosed, "no", true},
		{"wrong password", proto("WRONGPASS invalid username-password pair"), "no", true},
		{"no password", proto("NOAUTH Authentication required."), "no", true},
		{"bad db", proto("ERR DB index is out of range"), "no", true},
		{"reply error", proto("WRONGTYPE Operation against a key holding the wrong kind of value"), "no", false},
		{"read timeout", readTimeout, "unknown", false},
		{"read timeout marked by the hook", wrapUnavailable(readTimeout), "unknown", false},
		{"EOF after write", io.EOF, "unknown", false},
		{"reset", fmt.Errorf("read: %w", errors.New("connection reset by peer")), "unknown", false},
		{"ctx ended in flight", context.DeadlineExceeded, "unknown", false},
	}
	for _, tt := range tests {
		err := writeError(tt.err)
		var ou *OutcomeUnknown
		unknown := errors.As(err, &ou)
		if got := map[bool]string{true: "unknown", false: "no"}[unknown]; got != tt.written {
			t.Errorf("%s: written %s, want %s (%v)", tt.name, got, tt.written, err)
		}
		if got := errors.Is(err, ErrUnavailable); got != tt.unavail {
			t.Errorf("%s: ErrUnavailable %v, want %v (%v)", tt.name, got, tt.unavail, err)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// proto returns a Redis error reply as go-redis parses it.
func proto(msg string) error {
	c := redis.NewCmd(context.Background())
	c.SetErr(redisError(msg))
	return c.Err()
}

type redisError string

func (e redisError) Error() string { return string(e) }
func (redisError) RedisError()     {}
