package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/hyvve/eventbus/internal/rdb"
)

// Event states (SPEC §4).
const (
	StatePending    = "PENDING"    // published, not yet delivered to the group
	StateProcessing = "PROCESSING" // delivered, handlers running
	StateCompleted  = "COMPLETED"  // every matching handler succeeded
	StateFailed     = "FAILED"     // a handler failed; its retry is scheduled
	StateDLQ        = "DLQ"        // a handler's failures sent the event to the DLQ
)

// ErrNotFound is returned when an event (or another record) is not known.
var ErrNotFound = errors.New("eventbus: not found")

// A status lookup that must search the main stream for a ULID (its status
// hash and idempotency record gone, or never made) reads entries inside
// Redis only, in the window [ULID time - clockSkew, ULID time +
// PublishTimeout + clockSkew], at most statusLocatePerCall entries per
// script call and statusLocateMax in all; Redis sends back only the stream
// id, type and tenant of a match.
const (
	statusLocatePerCall = 1000
	statusLocateMax     = 5000
)

// EventStatus is the state of one event in the bus's group.
type EventStatus struct {
	EventID       string          `json:"eventId"`
	State         string          `json:"state"`
	StreamID      string          `json:"streamId,omitempty"`
	Type          string          `json:"type,omitempty"`
	TenantID      string          `json:"tenantId,omitempty"`
	Attempts      int             `json:"attempts"`
	LastError     string          `json:"lastError,omitempty"`
	NextAttemptAt *time.Time      `json:"nextAttemptAt,omitempty"`
	Handlers      []HandlerStatus `json:"handlers"`
}

// HandlerStatus is one handler's outcome for an event.
type HandlerStatus struct {
	Name          string     `json:"name"`
	State         string     `json:"state"` // succeeded, retrying, dlq
	Attempts      int        `json:"attempts"`
	LastError     string     `json:"lastError,omitempty"`
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
	UpdatedAt     time.Time  `json:"updatedAt"`
}

// Status is the same as Inspector().Status with the scope of tenantID, or
// AllTenants when tenantID is "" (then only ids the bus generated, ULIDs,
// can be found). A blank tenantID finds nothing (ErrNotFound, as before
// scopes existed): no event has a blank tenant.
func (b *Bus) Status(ctx context.Context, tenantID, eventID string) (EventStatus, error) {
	scope := AllTenants()
	if tenantID != "" {
		scope = TenantScope(tenantID)
	}
	st, err := b.Inspector().Status(ctx, scope, eventID)
	if errors.Is(err, ErrInvalidScope) {
		return st, ErrNotFound
	}
	return st, err
}

// Status reports the state of the event eventID in the bus's group,
// without scanning a stream. Event ids given by callers are unique per
// tenant, so a TenantScope is needed to find them; with AllTenants only
// ids the bus generated (ULIDs) can be found, and the tenant is read from
// the entry. With a TenantScope, another tenant's event is not found.
//
//   - Events with a failure (and multi-handler events in flight) have a
//     status hash, written in the same atomic steps as the acks: it gives
//     the outcome per handler, attempts, last error and next attempt.
//   - Otherwise the entry is located through the idempotency record
//     (caller-supplied ids) or the time in its ULID, and the group's
//     pending list and last delivered id tell PENDING, PROCESSING or
//     COMPLETED. The ULID search runs inside Redis over the entries
//     written from 2s before the ULID's time to PublishTimeout + 2s after
//     it, reading at most 1,000 entries per script call and 5,000 in all
//     (a few milliseconds of Redis time at most), and returns only the
//     match's stream id, type and tenant: no body crosses the network,
//     whatever other tenants wrote. An event written later than that
//     window (Redis stalled while it was in flight), or in a window
//     holding more than 5,000 entries, may not be found.
//
// A completed event without failures leaves no key behind. ErrNotFound
// when the event cannot be located (unknown id, another tenant's event,
// or a caller-supplied id older than the idempotency window);
// ErrInvalidScope for a scope naming no tenant.
func (in *Inspector) Status(ctx context.Context, scope Scope, eventID string) (EventStatus, error) {
	if err := scope.Validate(); err != nil {
		return EventStatus{EventID: eventID, Handlers: []HandlerStatus{}}, err
	}
	st, err := in.status(ctx, scope.TenantID(), eventID)
	if err == nil && !scope.Includes(st.TenantID) {
		// Defence in depth: keys are per tenant, so this cannot happen.
		return EventStatus{EventID: eventID, Handlers: []HandlerStatus{}}, ErrNotFound
	}
	return st, err
}

// status reads the status of event eventID of tenant tenantID, "" for
// every tenant (bus-made ids only).
func (in *Inspector) status(ctx context.Context, tenantID, eventID string) (EventStatus, error) {
	b := in.b
	st := EventStatus{EventID: eventID, TenantID: tenantID, Handlers: []HandlerStatus{}}
	var err error
	part := -1 // the event's partition, once known
	if tenantID == "" {
		if st.StreamID, st.Type, st.TenantID, part, err = b.locate(ctx, "", eventID); err != nil {
			return st, err
		}
	}
	statusID := rdb.ScopedID(st.TenantID, eventID)
	hp, h, err := b.rdb.StatusHash(ctx, b.cfg.Group, statusID)
	if err != nil {
		return st, wrapOp("status", err)
	}
	if b.fromHash(&st, h) {
		return st, nil
	}
	if part < 0 && hp >= 0 && st.StreamID != "" {
		part = hp
	}
	// No hash, or only successes recorded: the event is in flight or done.
	if st.StreamID == "" || part < 0 {
		if st.StreamID, st.Type, _, part, err = b.locate(ctx, st.TenantID, eventID); err != nil {
			return st, err
		}
	}
	main := b.rdb.Keys().MainPartition(part)
	pending, err := b.rdb.IsPending(ctx, main, b.cfg.Group, st.StreamID)
	if err != nil {
		return st, wrapOp("status", err)
	}
	last, err := b.rdb.LastDelivered(ctx, main, b.cfg.Group)
	if err != nil {
		return st, wrapOp("status", err)
	}
	switch {
	case pending:
		st.State = StateProcessing
	case rdb.CompareIDs(st.StreamID, last) > 0:
		st.State = StatePending
	default:
		// Acknowledged. A failure recorded between the read of the status
		// hash above and the pending check shows now: settling writes the
		// hash and acknowledges in one atomic step.
		h, err := b.rdb.StatusHashIn(ctx, part, b.cfg.Group, statusID)
		if err != nil {
			return st, wrapOp("status", err)
		}
		if b.fromHash(&st, h) {
			return st, nil
		}
		st.State = StateCompleted
	}
	return st, nil
}

// fromHash fills st from the event's status hash h and reports whether
// the hash decides the state (a retry open, or a dead letter); with only
// successes recorded, or no hash, the entry decides.
func (b *Bus) fromHash(st *EventStatus, h map[string]string) bool {
	if len(h) == 0 {
		return false
	}
	st.StreamID, st.Type = h[rdb.StatusStream], h[rdb.StatusType]
	st.Handlers = st.Handlers[:0]
	for k, v := range h {
		name, ok := strings.CutPrefix(k, rdb.StatusHandlerPrefix)
		if !ok {
			continue
		}
		var rec handlerRecord
		if json.Unmarshal([]byte(v), &rec) != nil {
			continue
		}
		st.Handlers = append(st.Handlers, HandlerStatus{Name: name, State: rec.State, Attempts: rec.Attempts,
			LastError: rec.LastError, NextAttemptAt: rec.NextAttemptAt, UpdatedAt: rec.UpdatedAt})
	}
	sort.Slice(st.Handlers, func(i, j int) bool { return st.Handlers[i].Name < st.Handlers[j].Name })
	b.summarise(st)
	return st.State != ""
}

// summarise derives the event's state from its handlers: DLQ if any
// handler was dead-lettered, FAILED if any retry is scheduled; "" when
// every recorded handler succeeded (the entry decides).
func (b *Bus) summarise(st *EventStatus) {
	var lastAt time.Time
	for _, hs := range st.Handlers {
		st.Attempts = max(st.Attempts, hs.Attempts)
		if hs.LastError != "" && hs.UpdatedAt.After(lastAt) {
			st.LastError, lastAt = hs.LastError, hs.UpdatedAt
		}
		if hs.NextAttemptAt != nil && (st.NextAttemptAt == nil || hs.NextAttemptAt.Before(*st.NextAttemptAt)) {
			st.NextAttemptAt = hs.NextAttemptAt
		}
		switch hs.State {
		case handlerDLQ:
			st.State = StateDLQ
		case handlerRetrying:
			if st.State != StateDLQ {
				st.State = StateFailed
			}
		}
	}
}

// locate finds the main-stream entry of event eventID of tenant tenantID
// ("" for any tenant: ULID ids only), its type and tenant, and its
// partition. It looks in the tenant's partition (default Partitioner)
// first, then in the others.
func (b *Bus) locate(ctx context.Context, tenantID, eventID string) (streamID, typ, tenant string, part int, err error) {
	k := b.rdb.Keys()
	order := make([]int, 0, k.Partitions())
	if first, err := b.partition(&Event{TenantID: tenantID, ID: eventID}); err == nil && b.cfg.Partitioner == nil {
		order = append(order, first)
	}
	for p := range k.Partitions() {
		if !slices.Contains(order, p) {
			order = append(order, p)
		}
	}
	u, uerr := ulid.ParseStrict(eventID)
	for _, p := range order {
		main := k.MainPartition(p)
		if tenantID != "" {
			id, err := b.rdb.IdempotentStreamID(ctx, p, tenantID, eventID)
			if err != nil {
				return "", "", "", -1, wrapOp("status", err)
			}
			if id != "" {
				msgs, err := b.rdb.Range(ctx, main, id, id, 1)
				if err != nil {
					return "", "", "", -1, wrapOp("status", err)
				}
				if len(msgs) == 0 {
					return "", "", "", -1, ErrNotFound // trimmed
				}
				w := entryEnvelope(msgs[0].Values)
				return id, w.Type, w.TenantID, p, nil
			}
		}
		if uerr != nil {
			continue
		}
		t := ulid.Time(u.Time())
		start := rdb.MinIDFor(t.Add(-clockSkew), 0)
		end := strconv.FormatInt(t.Add(b.cfg.PublishTimeout+clockSkew).UnixMilli(), 10)
		l, found, err := b.rdb.Locate(ctx, main, start, end, eventID, tenantID, statusLocatePerCall, statusLocateMax)
		switch {
		case errors.Is(err, rdb.ErrLocateCap):
			continue // budget spent: the lookup stays cheap
		case err != nil:
			return "", "", "", -1, wrapOp("status", err)
		case found:
			return l.StreamID, l.Type, l.TenantID, p, nil
		}
	}
	return "", "", "", -1, ErrNotFound
}

// entryEnvelope decodes the id, type and tenant of an entry's event.
func entryEnvelope(values map[string]any) (w struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	TenantID string `json:"tenantId"`
}) {
	s, _ := values[rdb.FieldEvent].(string)
	_ = json.Unmarshal([]byte(s), &w)
	return w
}
