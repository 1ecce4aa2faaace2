package rdb

import (
	"fmt"
	"sync"
	"time"
)

// breaker is a consecutive-failure circuit breaker. While open, callers fail
// at once instead of waiting for dial or read timeouts against a Redis that
// is down. Once per cool-down it lets exactly one call through (the probe,
// "half-open") while every other call keeps failing at once: a success
// closes the breaker, a failure keeps it open for another cool-down. It
// never stays open for good, and a probe that never reports (a cancelled
// call) only delays the next probe by one cool-down.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu        sync.Mutex
	failures  int
	cause     string    // the last failure's error, told to refused callers
	openUntil time.Time // while failures >= threshold: when the next probe may go
}

func newBreaker(threshold int, cooldown time.Duration) *breaker {
	return &breaker{threshold: threshold, cooldown: cooldown, now: time.Now}
}

// allow reports whether a call may go to Redis now, and whether it is the
// probe: while the breaker is open it lets one call through per cool-down.
func (b *breaker) allow() (ok, probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures < b.threshold {
		return true, false
	}
	now := b.now()
	if now.Before(b.openUntil) {
		return false, false
	}
	b.openUntil = now.Add(b.cooldown) // the next probe slot
	return true, true
}

// refusal is the error of a call the breaker refuses: errBreakerOpen with
// the last failure's cause, so that a refused caller learns why Redis is
// unusable (down, or refusing our password).
func (b *breaker) refusal() error {
	b.mu.Lock()
	cause := b.cause
	b.mu.Unlock()
	if cause == "" {
		return errBreakerOpen
	}
	return fmt.Errorf("%w (last error: %s)", errBreakerOpen, cause)
}

// fail records a failed call with its cause.
func (b *breaker) fail(err error) {
	b.record(true)
	if err != nil {
		b.mu.Lock()
		b.cause = err.Error()
		b.mu.Unlock()
	}
}

// record counts the outcome of a call that went to Redis.
func (b *breaker) record(unavailable bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !unavailable {
		b.failures = 0
		b.openUntil = time.Time{}
		return
	}
	b.failures++
	if b.failures >= b.threshold {
		b.openUntil = b.now().Add(b.cooldown)
	}
}
