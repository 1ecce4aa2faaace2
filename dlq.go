package eventbus

import (
	"encoding/json"
	"errors"
	"time"
)

// AttemptError is one failed attempt of a handler.
type AttemptError struct {
	Attempt int       `json:"attempt"` // 1 for the first run; 0 for an entry that is not a valid event
	At      time.Time `json:"at"`
	Message string    `json:"message"`
	Stack   string    `json:"stack,omitempty"` // for panics
}

// DeadLetter describes a DLQ entry (SPEC §5). On the wire a DLQ entry has
// the field `event` (the envelope exactly as it was delivered, or the
// entry's fields as JSON when it had no usable event) and the field `dlq`
// (this struct as JSON).
type DeadLetter struct {
	// ID is the DLQ entry's stream id (set when read back).
	ID       string `json:"id,omitempty"`
	EventID  string `json:"eventId,omitempty"`
	Type     string `json:"type,omitempty"`
	TenantID string `json:"tenantId,omitempty"`
	Handler  string `json:"handler,omitempty"` // empty for an entry that is not a valid event
	// Handlers is set for an entry dead-lettered as a whole because it was
	// delivered MaxDeliveries times without an outcome (it crashed or hung
	// its consumers): every handler that had not run, in order. Handler is
	// the first of them, the one that was running when the consumers died
	// (unless they died between handlers).
	Handlers         []string       `json:"handlers,omitempty"`
	Group            string         `json:"group"`
	Stream           string         `json:"stream"` // where the event was delivered from
	OriginalStreamID string         `json:"originalStreamId"`
	Attempts         int            `json:"attempts"`
	Errors           []AttemptError `json:"errors"`
	MovedAt          time.Time      `json:"movedAt"`
	Reason           string         `json:"reason"`
	// StatusID names the event's status hash when it is not the event's
	// scoped id (a replayed copy's); empty otherwise.
	StatusID string `json:"statusId,omitempty"`
	// Redrives counts how often this event and handler were redriven from
	// the DLQ before this entry was written; a redrive is refused once it
	// reaches Config.MaxRedrives.
	Redrives int `json:"redrives,omitempty"`
}

// Dead-letter management (Inspector methods in dlq_inspect.go).

// ErrRedriveLimit is returned when a dead letter was redriven
// Config.MaxRedrives times already: redriving it again would loop. The
// HTTP API answers 409.
var ErrRedriveLimit = errors.New("eventbus: redrive limit reached")

// ErrNotRedrivable is returned for a dead letter that cannot go back to a
// handler: an entry that was not a valid event (no handler, no event).
var ErrNotRedrivable = errors.New("eventbus: dead letter cannot be redriven")

// Dead-letter listing bounds.
const (
	// DLQReadMax is the most DLQ entries one DeadLetters page reads,
	// whatever matches: a page where few entries match returns fewer items
	// than the limit and a cursor to go on.
	DLQReadMax = 1000
)

// DLQFilter selects dead letters. Every set field must match.
type DLQFilter struct {
	// Types are type patterns ("*", "prefix.*" or an exact type); a dead
	// letter matching any of them matches. None: every type.
	Types []string `json:"types,omitempty"`
	// Handler is a handler name (exact). A dead letter of several handlers
	// (Handlers) matches when any of them is Handler.
	Handler string `json:"handler,omitempty"`
	// TenantID narrows the scope to one tenant; it must be in the scope.
	TenantID string `json:"tenantId,omitempty"`
	// From and To bound MovedAt (the DLQ entry's id), both inclusive; the
	// zero time leaves that end open.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Query is text looked for, case-insensitively, in the reason and in
	// every attempt's error message.
	Query string `json:"q,omitempty"`
}

// DLQListOptions is a DeadLetters request.
type DLQListOptions struct {
	Filter DLQFilter
	// Cursor is the NextCursor of the previous page; "" starts at the
	// newest entry.
	Cursor string
	// Limit is the most items of the page: 0 means DefaultBrowseLimit, at
	// most MaxBrowseLimit.
	Limit int
}

// DLQItem is one dead letter in a listing.
type DLQItem struct {
	// ID is the DLQ entry's stream id.
	ID       string   `json:"id"`
	EventID  string   `json:"eventId"`
	Type     string   `json:"type"`
	TenantID string   `json:"tenantId"`
	Handler  string   `json:"handler"`
	Handlers []string `json:"handlers,omitempty"`
	Group    string   `json:"group"`
	Attempts int      `json:"attempts"`
	// LastError is the last attempt's error message.
	LastError string    `json:"lastError"`
	MovedAt   time.Time `json:"movedAt"`
	Reason    string    `json:"reason"`
	// Redrives counts how often this dead letter's event and handler were
	// redriven before.
	Redrives int `json:"redrives"`
}

// DLQPage is one page of Inspector.DeadLetters.
type DLQPage struct {
	Items []DLQItem `json:"items"`
	// NextCursor continues the listing; "" when it was read to its end.
	NextCursor string `json:"nextCursor"`
}

// DLQEntry is one dead letter in full: its metadata (every attempt's
// error with stacks) and the event as it was delivered.
type DLQEntry struct {
	DeadLetter
	// Event is the envelope as it was delivered (JSON) when it is valid
	// JSON; otherwise nil and Raw holds the text.
	Event json.RawMessage `json:"event,omitempty"`
	// Raw is the event field as stored when it is not valid JSON.
	Raw string `json:"raw,omitempty"`
}

// EventDeadLetters is every dead letter of one event in scope: one per
// failed handler (more when it was dead-lettered again after a redrive).
type EventDeadLetters struct {
	EventID string     `json:"eventId"`
	Entries []DLQEntry `json:"entries"`
}

// DLQSelection names the dead letters of a bulk action: by DLQ entry ids,
// by event ids (every dead letter of each), or by a filter. Exactly one of
// the three must be set.
type DLQSelection struct {
	IDs      []string   `json:"ids,omitempty"`
	EventIDs []string   `json:"eventIds,omitempty"`
	Filter   *DLQFilter `json:"filter,omitempty"`
}

// BulkResult is the outcome of a bulk redrive or purge. Without confirm
// (a dry run) only Matched is set and nothing changed.
type BulkResult struct {
	// Matched counts the dead letters selected (in scope).
	Matched int64 `json:"matched"`
	// Redriven counts the dead letters sent back to their handler.
	Redriven int64 `json:"redriven"`
	// Deleted counts the dead letters removed.
	Deleted int64 `json:"deleted"`
	// OverLimit counts those not redriven because of the redrive limit.
	OverLimit int64 `json:"overLimit,omitempty"`
	// NotRedrivable counts those not redriven because they are not valid
	// events.
	NotRedrivable int64 `json:"notRedrivable,omitempty"`
	// Gone counts those selected but no longer there when acted on
	// (redriven, deleted or trimmed meanwhile).
	Gone int64 `json:"gone,omitempty"`
	// DryRun is true when nothing was changed (no confirm).
	DryRun bool `json:"dryRun"`
}

// Actor is who performs an admin write, for the audit log.
type Actor struct {
	Subject  string
	TenantID string // "*" for a platform token
	Role     string
}
