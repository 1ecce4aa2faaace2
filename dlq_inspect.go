package eventbus

import (
	"context"
	"errors"
)

// errTODO marks the dead-letter methods still being built.
var errTODO = errors.New("eventbus: not implemented yet")

// DeadLetters lists the dead letters in scope that match opts.Filter,
// newest first, one page at a time. A tenant scope (or Filter.TenantID)
// reads that tenant's entries only, through the DLQ index; a page reads
// at most DLQReadMax entries, so it may hold fewer items than the limit
// and a cursor to go on. A bad filter is a *FilterError naming the field
// ("type", "handler", "tenantId", "from", "to", "q", "cursor", "limit");
// an invalid scope ErrInvalidScope.
func (in *Inspector) DeadLetters(ctx context.Context, scope Scope, opts DLQListOptions) (DLQPage, error) {
	return DLQPage{}, errTODO
}

// DeadLettersOf returns every dead letter in scope of the event eventID
// (one per failed handler), oldest first, in a constant number of Redis
// calls (the DLQ index). ErrNotFound when there is none in scope.
func (in *Inspector) DeadLettersOf(ctx context.Context, scope Scope, eventID string) (EventDeadLetters, error) {
	return EventDeadLetters{}, errTODO
}

// DeadLetter returns the DLQ entry id in scope. ErrNotFound when it does
// not exist or is another tenant's.
func (in *Inspector) DeadLetter(ctx context.Context, scope Scope, id string) (DLQEntry, error) {
	return DLQEntry{}, errTODO
}

// Redrive sends every dead letter in scope of the event eventID back to
// its failed handler (only that handler), with the same event id and a
// fresh retry budget: it runs again as soon as a consumer of its group
// reads the retry. Removing each DLQ entry and scheduling its retry are
// one atomic step. It returns how many were redriven; ErrNotFound when
// the event has no dead letter in scope; ErrRedriveLimit when none was
// redriven because each reached Config.MaxRedrives; ErrNotRedrivable when
// none is a valid event. The action is written to the audit log.
func (in *Inspector) Redrive(ctx context.Context, scope Scope, actor Actor, eventID string) (int64, error) {
	return 0, errTODO
}

// RedriveMany redrives the dead letters of sel in scope. Without confirm
// it changes nothing and returns the count that would be acted on
// (DryRun). Each entry is redriven atomically (removed from the DLQ and
// scheduled in one step), so a crash half-way leaves every entry either
// still in the DLQ or redriven. The action is written to the audit log.
func (in *Inspector) RedriveMany(ctx context.Context, scope Scope, actor Actor, sel DLQSelection, confirm bool) (BulkResult, error) {
	return BulkResult{}, errTODO
}

// DeleteDeadLetters removes every dead letter in scope of the event
// eventID and returns how many; ErrNotFound when there is none. The
// action is written to the audit log.
func (in *Inspector) DeleteDeadLetters(ctx context.Context, scope Scope, actor Actor, eventID string) (int64, error) {
	return 0, errTODO
}

// Purge removes the dead letters of sel in scope. Without confirm it
// changes nothing and returns the count that would be removed (DryRun).
// The action is written to the audit log.
func (in *Inspector) Purge(ctx context.Context, scope Scope, actor Actor, sel DLQSelection, confirm bool) (BulkResult, error) {
	return BulkResult{}, errTODO
}
