package eventbus

import (
	"errors"
	"fmt"
	"slices"
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

// ErrNotReplicated is matched (errors.Is) when a publish was written on the
// Redis primary but WAIT did not confirm Config.MinReplicas replicas in
// Config.ReplicaTimeout. The error is a *NotReplicatedError.
var ErrNotReplicated = errors.New("eventbus: replication not confirmed")

// NotReplicatedError is returned by Publish and PublishBatch with
// Config.MinReplicas set when the events WERE written on the primary (they
// have stream ids) but their replication was not confirmed: a failover
// before the replicas catch up may lose them. It never matches
// ErrUnavailable or ErrOutcomeUnknown. Publishing again must reuse the
// same ids (generated ones included): the retry is deduplicated, never
// written twice; its own WAIT does not prove that the first write reached
// the replicas (see docs/errors.md).
type NotReplicatedError struct {
	// TenantID scopes the event ids ("" when a batch has several tenants).
	TenantID string
	// EventIDs and StreamIDs of the events written, in order.
	EventIDs  []string
	StreamIDs []string
	// Replicas is how many replicas confirmed the write; Wanted is
	// Config.MinReplicas.
	Replicas int
	Wanted   int
	// Err is why WAIT gave no reply, when it gave none.
	Err error
}

func (e *NotReplicatedError) Error() string {
	msg := fmt.Sprintf("eventbus: event(s) %s written as %s but confirmed by %d of %d replica(s)",
		strings.Join(e.EventIDs, ", "), strings.Join(e.StreamIDs, ", "), e.Replicas, e.Wanted)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is matches ErrNotReplicated.
func (e *NotReplicatedError) Is(target error) bool { return target == ErrNotReplicated }

// Unwrap returns the cause of a missing WAIT reply, if any.
func (e *NotReplicatedError) Unwrap() error { return e.Err }

// notReplicated turns an *rdb.NotReplicated in err into a
// *NotReplicatedError (nil when err has none).
func notReplicated(err error, tenantID string, ids, streamIDs []string) error {
	var nr *rdb.NotReplicated
	if !errors.As(err, &nr) {
		return nil
	}
	return &NotReplicatedError{TenantID: tenantID, EventIDs: ids, StreamIDs: streamIDs, Replicas: nr.Replicas, Wanted: nr.Wanted, Err: nr.Err}
}

// PartialBatchError is returned by PublishBatch when a batch spanning
// several partitions (Config.Partitions) was written to some of them and
// not to others: each partition's events are written all or none.
type PartialBatchError struct {
	// Published holds, in the batch's order, the result of every event
	// written (zero for the others).
	Published []Published
	// Errs holds, in the batch's order, nil for every event written and
	// its partition's error for the others: not written, outcome unknown
	// (*OutcomeUnknownError) or not replicated (*NotReplicatedError).
	Errs []error
}

func (e *PartialBatchError) Error() string {
	failed := 0
	var first error
	for _, err := range e.Errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	return fmt.Sprintf("eventbus: batch written in part: %d of %d events not written or not confirmed (first: %v)", failed, len(e.Errs), first)
}

// Unwrap returns the distinct errors of the events not written, so that
// errors.Is and errors.As see each kind.
func (e *PartialBatchError) Unwrap() []error {
	var out []error
	for _, err := range e.Errs {
		if err != nil && !slices.Contains(out, err) {
			out = append(out, err)
		}
	}
	return out
}
