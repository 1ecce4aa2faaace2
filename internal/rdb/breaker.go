package rdb

import (
	"sync"
	"time"
)

// breaker is a consecutive-failure circuit breaker. While open, callers fail
// at once instead of waiting for dial or read timeouts against a Redis that
// is down. After the cool-down every call is let through again ("half-open");
// the first success closes the breaker, a failure opens it for another
// cool-down. It never stays open for good.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu        sync.Mutex
	failures  int
	openUntil time.Time
}

func newBreaker(threshold int, cooldown time.Duration) *breaker {
	return &breaker{threshold: threshold, cooldown: cooldown, now: time.Now}
}

// allow reports whether a call may go to Redis now.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.now().Before(b.openUntil)
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
