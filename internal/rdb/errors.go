package rdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable is returned (wrapped) by every call while Redis cannot be
// reached or refuses this client: connection refused or reset, timeouts, a
// dataset still loading, an authentication or database-selection refusal
// (NOAUTH, WRONGPASS, "DB index is out of range"), or the circuit breaker
// open after repeated such failures.
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
		// replica/failover in progress; or it refuses this client (wrong
		// or missing password, a database number it does not have), which
		// go-redis reports when it sets up a connection.
		return strings.HasPrefix(msg, "LOADING") || strings.HasPrefix(msg, "MASTERDOWN") ||
			strings.HasPrefix(msg, "TRYAGAIN") || strings.HasPrefix(msg, "CLUSTERDOWN") ||
			isRefusal(err)
	}
	// Network errors, EOF, pool timeouts: Redis is not there.
	return true
}

// isRefusal reports an authentication or database-selection refusal:
// Redis is there but will not run anything for this client.
func isRefusal(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.HasPrefix(msg, "NOAUTH") || strings.HasPrefix(msg, "WRONGPASS") ||
		strings.Contains(msg, "DB index is out of range") ||
		strings.Contains(msg, "invalid DB index") || strings.Contains(msg, "invalid password") ||
		strings.Contains(msg, "unauthenticated") // "Protocol error: unauthenticated multibulk length"
}

// unavailableError marks a cause with ErrUnavailable while keeping it
// reachable on its own (see cause).
type unavailableError struct{ err error }

func (e *unavailableError) Error() string        { return ErrUnavailable.Error() + ": " + e.err.Error() }
func (e *unavailableError) Unwrap() []error      { return []error{ErrUnavailable, e.err} }
func (e *unavailableError) Is(target error) bool { return target == ErrUnavailable }

// wrapUnavailable marks err with ErrUnavailable, keeping the original cause.
func wrapUnavailable(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return err
	}
	return &unavailableError{err: err}
}

// cause strips the ErrUnavailable mark that the hook adds, so that an
// error whose outcome is unknown does not also claim "nothing written".
func cause(err error) error {
	var ue *unavailableError
	if errors.As(err, &ue) {
		return ue.err
	}
	return err
}

// notSent reports whether err proves that a write never reached Redis (or
// that Redis refused it without running it): a dial that failed, a pool
// with no free connection, a closed client, the breaker open, an
// authentication or database refusal, or any reply error (Redis answered
// without applying the write: a script error, WRONGTYPE, NOSCRIPT...).
// Every other failure (a read timeout, EOF or reset after the write was
// sent, a context that ended while the call was in flight) may have been
// applied: its outcome is unknown.
func notSent(err error) bool {
	if errors.Is(err, errBreakerOpen) || errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) {
		return true
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// OutcomeUnknown wraps the cause of a write whose outcome is unknown: it
// was (or may have been) sent, and no reply came.
type OutcomeUnknown struct{ Err error }

func (e *OutcomeUnknown) Error() string { return "outcome unknown: " + e.Err.Error() }

// Unwrap returns the cause.
func (e *OutcomeUnknown) Unwrap() error { return e.Err }

// writeError classifies the failure of a write: ErrUnavailable (nothing
// written) when notSent says so, else an *OutcomeUnknown with the cause
// stripped of ErrUnavailable.
func writeError(err error) error {
	var ou *OutcomeUnknown
	if errors.As(err, &ou) {
		return err
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !isRefusal(err) && !unavailable(err) {
		return err // Redis answered with an error: nothing was applied
	}
	if notSent(err) {
		return wrapUnavailable(err)
	}
	return &OutcomeUnknown{Err: cause(err)}
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

// NotReplicated is the error of a write that Redis applied on the primary
// (it has a stream id) but whose replication to Wanted replicas WAIT did
// not confirm: Replicas acknowledged it in time. Err, when set, is why the
// WAIT reply itself is missing.
type NotReplicated struct {
	Replicas int
	Wanted   int
	Err      error
}

func (e *NotReplicated) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("written on the primary, replication to %d replica(s) not confirmed: %v", e.Wanted, e.Err)
	}
	return fmt.Sprintf("written on the primary, confirmed by %d of %d replica(s)", e.Replicas, e.Wanted)
}

// Unwrap returns the cause of a missing WAIT reply (nil otherwise).
func (e *NotReplicated) Unwrap() error { return e.Err }
