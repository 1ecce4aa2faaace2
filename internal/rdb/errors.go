package rdb

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable is returned (wrapped) by every call while Redis cannot be
// reached: connection refused or reset, timeouts, a dataset still loading,
// or the circuit breaker open after repeated such failures.
var ErrUnavailable = errors.New("eventbus: redis unavailable")

// unavailable reports whether err means Redis could not serve the call, as
// opposed to a reply error (WRONGTYPE, NOGROUP...) or the caller's own
// cancellation.
func unavailable(err error) bool {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, redis.TxFailedErr):
		return false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.Is(err, redis.ErrClosed):
		return false
	case errors.Is(err, ErrUnavailable):
		return true
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		// Redis answers but cannot serve: still loading its dataset, or a
		// replica/failover in progress.
		return strings.HasPrefix(msg, "LOADING") || strings.HasPrefix(msg, "MASTERDOWN") ||
			strings.HasPrefix(msg, "TRYAGAIN") || strings.HasPrefix(msg, "CLUSTERDOWN")
	}
	// Network errors, EOF, pool timeouts: Redis is not there.
	return true
}

// wrapUnavailable marks err with ErrUnavailable, keeping the original cause.
func wrapUnavailable(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// IsNoGroup reports a NOGROUP reply: the stream or its consumer group is
// gone (Redis flushed, or restarted without persistence).
func IsNoGroup(err error) bool {
	if err == nil {
		return false
	}
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "NOGROUP")
}

// isBusyGroup reports the BUSYGROUP reply of XGROUP CREATE: the group exists.
func isBusyGroup(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "BUSYGROUP")
}

// isNoSuchKey reports the "no such key" reply of XINFO on a missing stream.
func isNoSuchKey(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.Contains(rerr.Error(), "no such key")
}
