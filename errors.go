package eventbus

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hyvve/eventbus/internal/rdb"
)

// What a failed write means. Every error of Publish and PublishBatch tells
// one of three things (see docs/errors.md):
//
//   - not written: a *ValidationError (ErrInvalidEvent, ErrEventTooLarge),
//     ErrUnavailable (Redis unreachable or refusing this client, or the
//     event not sent within Config.PublishTimeout), a reply error, or the
//     caller's context ending while the event was still queued. Nothing
//     was applied; retrying is safe.
//   - written: a nil error.
//   - outcome unknown: ErrOutcomeUnknown (an *OutcomeUnknownError). The
//     write was sent but no reply came (timeout, connection lost, Redis
//     paused): it may or may not have been applied. The error carries the
//     event ids (generated ones too); publishing again with the same ids is
//     deduplicated. ErrOutcomeUnknown never also matches ErrUnavailable.

// ErrUnavailable is returned (wrapped) by every operation while Redis
// cannot be reached or refuses this client (wrong password, bad database
// number). A circuit breaker makes calls fail at once after repeated
// failures; it lets one probe through per cool-down and closes by itself
// when Redis answers again. For a publish it means nothing was written.
var ErrUnavailable = rdb.ErrUnavailable

// ErrOutcomeUnknown is matched (errors.Is) when a write was sent to Redis
// but no reply came: it may or may not have been applied. The error is an
// *OutcomeUnknownError carrying the event ids.
var ErrOutcomeUnknown = errors.New("eventbus: outcome unknown")

// OutcomeUnknownError is returned by Publish and PublishBatch when the
// write was sent but its reply never came. EventIDs are the ids of the
// events concerned (generated ones included): publish the same events
// again with these ids to retry safely; the retry is deduplicated.
type OutcomeUnknownError struct {
	// TenantID scopes the event ids.
	TenantID string
	// EventIDs of the events whose write may or may not have happened, in
	// order (one for Publish; the whole batch for PublishBatch).
	EventIDs []string
	// Err is the cause (a timeout, a lost connection).
	Err error
}

func (e *OutcomeUnknownError) Error() string {
	return fmt.Sprintf("eventbus: outcome unknown for event(s) %s: %v (publish again with the same id(s) to retry safely)",
		strings.Join(e.EventIDs, ", "), e.Err)
}

// Is matches ErrOutcomeUnknown.
func (e *OutcomeUnknownError) Is(target error) bool { return target == ErrOutcomeUnknown }

// Unwrap returns the cause.
func (e *OutcomeUnknownError) Unwrap() error { return e.Err }
