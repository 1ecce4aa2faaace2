package rdb

import (
	"fmt"
	"strconv"
)

// The Redis schema besides key names (those are in keys.go): the fields
// of stream entries and status hashes, the retry schedule's members, the
// status ids of replayed copies and the kinds of settle operations. The
// root package, the Lua scripts (through luaSchema) and the tests use these
// names; no other place spells them.

// Fields of stream entries.
const (
	// FieldEvent holds the event envelope (JSON) in entries of the main,
	// replay and DLQ streams. In the DLQ it is the envelope exactly as it
	// was delivered, or the entry's fields as JSON when it had no usable
	// event.
	FieldEvent = "event"
	// FieldRetry holds a scheduled retry's data (JSON) in entries of a
	// group's retries stream.
	FieldRetry = "retry"
	// FieldDLQ holds a dead letter's metadata (JSON) in DLQ entries.
	FieldDLQ = "dlq"
	// FieldAudit holds an audit record (JSON) in entries of the audit
	// stream (Keys.Audit).
	FieldAudit = "audit"
)

// Fields of an event's status hash (Keys.Status).
const (
	// StatusStream is the event's id in the stream it was delivered from.
	StatusStream = "stream"
	// StatusType is the event's type.
	StatusType = "type"
	// StatusTenant is the event's tenant.
	StatusTenant = "tenant"
	// StatusOpen counts the event's retries still open (scheduled or
	// running); the hash keeps its open TTL while it is above 0.
	StatusOpen = "open"
	// StatusHandlerPrefix starts the field of each handler's record (JSON):
	// "h:<handler>". See StatusHandlerField.
	StatusHandlerPrefix = "h:"
)

// States of a handler's record (the JSON under StatusHandlerField).
const (
	HandlerSucceeded = "succeeded" // the handler succeeded (first run or a retry)
	HandlerRetrying  = "retrying"  // failed; a retry is scheduled or running
	HandlerDLQ       = "dlq"       // failed for good; dead-lettered
)

// StatusHandlerField is the status hash field holding handler's record.
func StatusHandlerField(handler string) string { return StatusHandlerPrefix + handler }

// RetryMember names one scheduled retry in a group's retry schedule and
// retry data hash: "<handler>|<stream id>|<event id>", where stream id is
// the event's id in the stream it was delivered from. One event has at
// most one open retry per handler.
func RetryMember(handler, streamID, eventID string) string {
	return handler + "|" + streamID + "|" + eventID
}

// ReplayStatusID names the status hash of a replayed copy:
// "replay:<job>:<scoped id>", so that a replay never touches the original
// delivery's record. scopedID is the event's ScopedID.
func ReplayStatusID(jobID, scopedID string) string {
	return "replay:" + jobID + ":" + scopedID
}

// ScopedID names an event within its tenant: event ids chosen by callers
// are unique per tenant only. The tenant's length goes first, so that no
// two (tenant, id) pairs give the same string.
func ScopedID(tenantID, eventID string) string {
	return strconv.Itoa(len(tenantID)) + ":" + tenantID + ":" + eventID
}

// Kinds of settle operations (SettleOp.Kind).
const (
	// OpDone records a handler's success (or, with no DLQ entry, a status
	// record only).
	OpDone = "done"
	// OpRetry records a failure and schedules the handler's next attempt.
	OpRetry = "retry"
	// OpDLQ records a final failure and writes a DLQ entry.
	OpDLQ = "dlq"
)

// luaSchema is the prologue of every Lua script that names fields or op
// kinds: the schema's names as Lua locals, so that scripts read
// F_EVENT, S_OPEN, OP_RETRY... instead of repeating literals.
var luaSchema = fmt.Sprintf(`
local F_EVENT, F_RETRY, F_DLQ = %q, %q, %q
local S_STREAM, S_TYPE, S_TENANT, S_OPEN, S_HANDLER = %q, %q, %q, %q, %q
local OP_DONE, OP_RETRY, OP_DLQ = %q, %q, %q
`, FieldEvent, FieldRetry, FieldDLQ,
	StatusStream, StatusType, StatusTenant, StatusOpen, StatusHandlerPrefix,
	OpDone, OpRetry, OpDLQ)
