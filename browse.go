package eventbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/redis/go-redis/v9"
)

// ErrInvalidFilter is wrapped by the errors of Inspector.Events for a bad
// EventFilter; the error is a *FilterError naming the field.
var ErrInvalidFilter = errors.New("eventbus: invalid filter")

// FilterError is a bad field of an EventFilter. errors.Is(err,
// ErrInvalidFilter) holds for it.
type FilterError struct {
	// Field is the filter's field in the HTTP API's spelling: "type",
	// "from", "to", "cursor" or "limit".
	Field  string
	Reason string
}

func (e *FilterError) Error() string {
	return fmt.Sprintf("eventbus: invalid filter: %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidFilter) true.
func (e *FilterError) Is(target error) bool { return target == ErrInvalidFilter }

// Browsing bounds.
const (
	// DefaultBrowseLimit is the page size when EventFilter.Limit is 0.
	DefaultBrowseLimit = 50
	// MaxBrowseLimit is the largest EventFilter.Limit.
	MaxBrowseLimit = 100
	// BrowseReadMax is the most stream entries one Events call reads,
	// whatever matches: a page over a range where few entries match
	// returns fewer items than the limit, and a cursor to go on.
	BrowseReadMax = 1000
	// browseChunk is the COUNT of each XRANGE of a page.
	browseChunk = 250
)

// EventFilter selects the events Inspector.Events returns.
type EventFilter struct {
	// From and To bound the time the entry was written (its stream id),
	// both inclusive; the zero time leaves that end open.
	From, To time.Time
	// Types are subscription patterns ("*", "prefix.*" or an exact type);
	// an event matching any of them is returned. None: every type.
	Types []string
	// Cursor is the NextCursor of the previous page; "" starts at From.
	Cursor string
	// Limit is the most items of the page: 0 means DefaultBrowseLimit, at
	// most MaxBrowseLimit.
	Limit int
}

// BrowsedEvent is one entry of the main stream. An entry that is not a
// valid event is returned too, with Raw and DecodeError set (Event is
// then what could be read of it, possibly nil).
type BrowsedEvent struct {
	// StreamID is the entry's id in the main stream.
	StreamID string `json:"streamId"`
	// Time is when the entry was written (from its stream id).
	Time time.Time `json:"time"`
	// Event is the decoded event; nil when the entry is not a JSON event.
	Event *Event `json:"event,omitempty"`
	// Raw is the entry's event field as stored, for an invalid entry only.
	Raw string `json:"raw,omitempty"`
	// DecodeError says why the entry is not a valid event.
	DecodeError string `json:"decodeError,omitempty"`
}

// EventPage is one page of Inspector.Events.
type EventPage struct {
	Items []BrowsedEvent `json:"items"`
	// NextCursor continues the listing (EventFilter.Cursor); "" when the
	// range is exhausted.
	NextCursor string `json:"nextCursor"`
}

// Events lists the events of the main stream in scope that match f,
// oldest first (stream order, which is time order). A page reads at most
// BrowseReadMax entries, so its cost is bounded whatever matches: it
// stops at Limit items or at that bound, and NextCursor (the last entry
// read) continues from there; NextCursor is "" only when the range was
// read to its end (events written later are not in the page). Entries
// that are not valid events are returned with their raw text and decode
// error when their tenant (if readable) is in scope and, with a type
// filter, their type (if readable) matches: an entry whose tenant cannot
// be read is shown to AllTenants only, one whose type cannot be read
// only without a type filter. A bad filter is an error wrapping
// ErrInvalidFilter (a *FilterError naming the field); an invalid scope
// ErrInvalidScope.
func (in *Inspector) Events(ctx context.Context, scope Scope, f EventFilter) (EventPage, error) {
	if err := scope.Validate(); err != nil {
		return EventPage{}, err
	}
	limit, err := f.check()
	if err != nil {
		return EventPage{}, err
	}
	start, end := "-", "+"
	if !f.From.IsZero() {
		start = rdb.FirstIDAt(f.From)
	}
	if !f.To.IsZero() {
		end = rdb.LastIDAt(f.To)
	}
	if f.Cursor == rdb.MaxID {
		return EventPage{Items: []BrowsedEvent{}}, nil // nothing follows it
	}
	if f.Cursor != "" && (start == "-" || rdb.CompareIDs(f.Cursor, start) >= 0) {
		start = rdb.After(f.Cursor)
	}
	b := in.b
	main := b.rdb.Keys().Main()
	page := EventPage{Items: []BrowsedEvent{}}
	read := 0
	for read < BrowseReadMax {
		n := min(browseChunk, BrowseReadMax-read)
		msgs, err := b.rdb.Range(ctx, main, start, end, int64(n))
		if err != nil {
			return EventPage{}, wrapOp("browse events", err)
		}
		for _, m := range msgs {
			read++
			if it, ok := in.browsed(m, scope, f.Types); ok {
				page.Items = append(page.Items, it)
				if len(page.Items) == limit {
					page.NextCursor = m.ID
					return page, nil
				}
			}
		}
		if len(msgs) < n {
			return page, nil // the range is exhausted
		}
		page.NextCursor = msgs[len(msgs)-1].ID
		start = rdb.After(page.NextCursor)
	}
	return page, nil
}

// check validates f and returns its effective limit.
func (f EventFilter) check() (int, error) {
	bad := func(field, format string, a ...any) error {
		return &FilterError{Field: field, Reason: fmt.Sprintf(format, a...)}
	}
	for _, p := range f.Types {
		if err := validPattern(p); err != nil {
			return 0, bad("type", "%v", err)
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return 0, bad("to", "%s is before from %s", f.To.Format(time.RFC3339Nano), f.From.Format(time.RFC3339Nano))
	}
	if f.Cursor != "" && !rdb.ValidID(f.Cursor) {
		return 0, bad("cursor", "%q is not a cursor returned by a previous page", f.Cursor)
	}
	switch {
	case f.Limit < 0 || f.Limit > MaxBrowseLimit:
		return 0, bad("limit", "%d is not between 1 and %d", f.Limit, MaxBrowseLimit)
	case f.Limit == 0:
		return DefaultBrowseLimit, nil
	}
	return f.Limit, nil
}

// browsed decodes an entry and reports whether it is in scope and matches
// types.
func (in *Inspector) browsed(m redis.XMessage, scope Scope, types []string) (BrowsedEvent, bool) {
	it := BrowsedEvent{StreamID: m.ID}
	if t, ok := rdb.IDTime(m.ID); ok {
		it.Time = t
	}
	raw, ok := m.Values[rdb.FieldEvent].(string)
	if !ok {
		it.Raw = entryAsJSON(m)
		it.DecodeError = "entry has no event field"
		return it, scope.All() && len(types) == 0
	}
	ev, err := decodeEvent(raw, in.b.cfg.MaxEventSize)
	if err != nil {
		it.Raw, it.DecodeError = raw, err.Error()
		if ev.ID == "" && ev.Type == "" && ev.TenantID == "" {
			return it, scope.All() && len(types) == 0
		}
	}
	it.Event = &ev
	if !scope.Includes(ev.TenantID) {
		return it, false
	}
	if len(types) == 0 {
		return it, true
	}
	for _, p := range types {
		if matchPattern(p, ev.Type) {
			return it, true
		}
	}
	return it, false
}
