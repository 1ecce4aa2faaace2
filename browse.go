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
	// StreamID is the entry's id in its partition's main stream.
	StreamID string `json:"streamId"`
	// Partition is the stable name of the partition whose main stream
	// holds the entry ("p3"; see Cursor); empty for the shared partition,
	// which with one partition (the default) holds every entry.
	Partition string `json:"partition,omitempty"`
	// Time is when the entry was written (from its stream id).
	Time time.Time `json:"time"`
	// Event is the decoded event; nil when the entry is not a JSON event.
	Event *Event `json:"event,omitempty"`
	// Raw is the entry's event field as stored, for an invalid entry only.
	Raw string `json:"raw,omitempty"`
	// DecodeError says why the entry is not a valid event.
	DecodeError string `json:"decodeError,omitempty"`
}

// Cursor names the entry across partitions: its StreamID in the shared
// partition (with one partition, always), "<Partition>-<StreamID>"
// otherwise. It is a cursor for Inspector.Events (the page after it) and
// the SSE id of the live tail.
func (e BrowsedEvent) Cursor() string { return rdb.FormatRef(e.Partition, e.StreamID) }

// EventPage is one page of Inspector.Events.
type EventPage struct {
	Items []BrowsedEvent `json:"items"`
	// NextCursor continues the listing (EventFilter.Cursor); "" when the
	// range is exhausted.
	NextCursor string `json:"nextCursor"`
}

// Events lists the events of the main streams in scope that match f,
// oldest first: every partition's main stream (and the shared one),
// merged by stream id (time), then partition name. A page reads at most
// BrowseReadMax entries, so its cost is bounded whatever matches: it
// stops at Limit items or at that bound, and NextCursor (the Cursor of
// the last entry read: its stream id with one partition) continues from
// there, every entry exactly once, ties of equal stream ids in several
// partitions included; NextCursor is "" only when the range was read to
// its end (events written later are not in the page). Entries that are
// not valid events are returned with their raw text and decode error
// when their tenant (if readable) is in scope and, with a type filter,
// their type (if readable) matches: an entry whose tenant cannot be read
// is shown to AllTenants only, one whose type cannot be read only without
// a type filter. A bad filter is an error wrapping ErrInvalidFilter (a
// *FilterError naming the field); an invalid scope ErrInvalidScope.
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
	b := in.b
	k := b.rdb.Keys()
	cName, cID, _ := rdb.ParseRef(f.Cursor)
	srcs := make([]*browseSource, k.Partitions())
	for p := range srcs {
		s := &browseSource{name: k.PartitionName(p), stream: k.MainPartition(p), start: start}
		switch {
		case f.Cursor == "":
		case s.name > cName: // the cursor's id itself is still ahead
			if start == "-" || rdb.CompareIDs(cID, start) > 0 {
				s.start = cID
			}
		case cID == rdb.MaxID:
			s.done = true
		case start == "-" || rdb.CompareIDs(cID, start) >= 0:
			s.start = rdb.After(cID)
		}
		srcs[p] = s
	}
	page := EventPage{Items: []BrowsedEvent{}}
	// The first read of each partition: a whole chunk with one partition,
	// less with several (their reads add up), but at least the limit.
	n := min(browseChunk, max(limit, browseChunk/len(srcs)))
	for read := 0; read < BrowseReadMax; read++ {
		if err := in.fillBrowse(ctx, srcs, end, n); err != nil {
			return EventPage{}, err
		}
		n = min(browseChunk, BrowseReadMax-read)
		var top *browseSource
		for _, s := range srcs {
			if len(s.buf) > 0 && (top == nil || rdb.CompareRefs(s.name, s.buf[0].ID, top.name, top.buf[0].ID) < 0) {
				top = s
			}
		}
		if top == nil {
			page.NextCursor = ""
			return page, nil // the range is exhausted
		}
		m := top.buf[0]
		top.buf = top.buf[1:]
		page.NextCursor = rdb.FormatRef(top.name, m.ID)
		if it, ok := in.browsed(m, scope, f.Types); ok {
			it.Partition = top.name
			page.Items = append(page.Items, it)
			if len(page.Items) == limit {
				return page, nil
			}
		}
	}
	for _, s := range srcs {
		if len(s.buf) > 0 || !s.done {
			return page, nil
		}
	}
	page.NextCursor = ""
	return page, nil
}

// browseSource is one partition's main stream in a merged browse:
// entries read ahead (oldest first) and where to read on.
type browseSource struct {
	name, stream string
	start        string // XRANGE start of the next read
	buf          []redis.XMessage
	done         bool // nothing after buf is left in the range
}

// fillBrowse reads up to n entries of each source that has none read
// ahead and is not done, in one pipeline.
func (in *Inspector) fillBrowse(ctx context.Context, srcs []*browseSource, end string, n int) error {
	var need []*browseSource
	var reads []rdb.RangeRead
	for _, s := range srcs {
		if len(s.buf) == 0 && !s.done {
			need = append(need, s)
			reads = append(reads, rdb.RangeRead{Stream: s.stream, Start: s.start, End: end, Count: int64(n)})
		}
	}
	if len(need) == 0 {
		return nil
	}
	res, err := in.b.rdb.Ranges(ctx, reads, false)
	if err != nil {
		return wrapOp("browse events", err)
	}
	for i, s := range need {
		s.buf = res[i]
		if len(s.buf) < n {
			s.done = true
		}
		if len(s.buf) > 0 {
			last := s.buf[len(s.buf)-1].ID
			if last == rdb.MaxID {
				s.done = true
			} else {
				s.start = rdb.After(last)
			}
		}
	}
	return nil
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
	if _, _, ok := rdb.ParseRef(f.Cursor); f.Cursor != "" && !ok {
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
