package eventbus

import (
	"context"
	"errors"
	"time"
)

// Replay job states.
const (
	ReplayPending   = "pending"
	ReplayRunning   = "running"
	ReplayCompleted = "completed"
	ReplayFailed    = "failed"
	ReplayCancelled = "cancelled"
)

// ErrReplayFinished is returned by CancelReplay for a job that has ended
// already (completed, failed or cancelled). The HTTP API answers 409.
var ErrReplayFinished = errors.New("eventbus: replay job has finished")

// ErrInvalidReplay is wrapped by the errors of StartReplay for a request
// it refuses; the error is a *ReplayError naming the field and saying why.
var ErrInvalidReplay = errors.New("eventbus: invalid replay request")

// ReplayError is a refused replay request: Field is the request's field
// in the HTTP API's spelling ("from", "to", "types", "tenantId",
// "handlers", "rate"), Reason says why and, for a window outside the main
// stream, what is still there. errors.Is(err, ErrInvalidReplay) holds.
type ReplayError struct {
	Field  string
	Reason string
}

func (e *ReplayError) Error() string {
	return "eventbus: invalid replay request: " + e.Field + ": " + e.Reason
}

// Is makes errors.Is(err, ErrInvalidReplay) true.
func (e *ReplayError) Is(target error) bool { return target == ErrInvalidReplay }

// ReplayRequest describes a replay: the events of the main stream written
// between From and To (both inclusive) that match Types and TenantID are
// copied to the replay stream, where only Handlers of the bus's group run
// them.
type ReplayRequest struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Types are type patterns; none: every type.
	Types []string `json:"types,omitempty"`
	// TenantID limits the replay to one tenant; "" means every tenant in
	// the caller's scope (a tenant scope forces its tenant).
	TenantID string `json:"tenantId,omitempty"`
	// Handlers are the handler names of the group that run the copies;
	// none: every handler the group's live consumers have registered when
	// the job starts.
	Handlers []string `json:"handlers,omitempty"`
	// Rate limits the copies written per second; 0: as fast as the
	// runner goes.
	Rate int `json:"rate,omitempty"`
	// DryRun scans and counts the matching events and writes nothing.
	DryRun bool `json:"dryRun,omitempty"`
}

// ReplayJob is a replay job and its progress.
type ReplayJob struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Group is the consumer group whose handlers run the copies.
	Group   string        `json:"group"`
	Request ReplayRequest `json:"request"`
	// Progress is 0 to 100: how far the runner is through the window.
	Progress int `json:"progress"`
	// EstimatedEvents is the estimate made at start of the events the job
	// will copy (see StartReplay for how exact it is).
	EstimatedEvents int64 `json:"estimatedEvents"`
	// Scanned counts main stream entries read, Matched those that matched
	// the filters, Written the copies written to the replay stream, Errors
	// the entries skipped because they could not be copied (not valid
	// events).
	Scanned int64 `json:"scanned"`
	Matched int64 `json:"matched"`
	Written int64 `json:"written"`
	Errors  int64 `json:"errors"`
	// Cursor is the last main stream id the job has read.
	Cursor string `json:"cursor,omitempty"`
	// Error says why a failed job failed.
	Error string `json:"error,omitempty"`
	// RequestedBy is the subject of the actor that started the job, and
	// RequestedByTenant its tenant ("*" for a platform actor).
	RequestedBy       string     `json:"requestedBy"`
	RequestedByTenant string     `json:"requestedByTenant"`
	CreatedAt         time.Time  `json:"createdAt"`
	StartedAt         *time.Time `json:"startedAt"`
	FinishedAt        *time.Time `json:"finishedAt"`
}

// ReplayPage is one page of Inspector.Replays.
type ReplayPage struct {
	Items []ReplayJob `json:"items"`
	// NextCursor continues the listing; "" at its end.
	NextCursor string `json:"nextCursor"`
}

// StartReplay validates req in scope and records a pending job that a
// replay runner (Bus.Run, in any process) picks up. A tenant scope forces
// req.TenantID to its tenant (another tenant: ErrNotFound). A refused
// request is a *ReplayError. The start is written to the audit log.
func (in *Inspector) StartReplay(ctx context.Context, scope Scope, actor Actor, req ReplayRequest) (ReplayJob, error) {
	return ReplayJob{}, errors.New("eventbus: not implemented yet")
}

// Replay returns job id in scope; ErrNotFound when it does not exist or
// belongs to another tenant.
func (in *Inspector) Replay(ctx context.Context, scope Scope, id string) (ReplayJob, error) {
	return ReplayJob{}, errors.New("eventbus: not implemented yet")
}

// Replays lists the jobs in scope, newest first. cursor is the previous
// page's NextCursor; limit 0 means DefaultBrowseLimit, at most
// MaxBrowseLimit.
func (in *Inspector) Replays(ctx context.Context, scope Scope, cursor string, limit int) (ReplayPage, error) {
	return ReplayPage{}, errors.New("eventbus: not implemented yet")
}

// CancelReplay stops job id in scope: a pending job is cancelled at once,
// a running one by its runner within a second. ErrNotFound for an
// unknown job or another tenant's; ErrReplayFinished for a job that has
// ended. The cancel is written to the audit log.
func (in *Inspector) CancelReplay(ctx context.Context, scope Scope, actor Actor, id string) (ReplayJob, error) {
	return ReplayJob{}, errors.New("eventbus: not implemented yet")
}
