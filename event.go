package eventbus

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// Envelope defaults (SPEC §2).
const (
	DefaultSource       = "platform"
	DefaultVersion      = "1.0"
	DefaultMaxEventSize = 1 << 20 // 1 MiB, the encoded envelope
	maxIDLength         = 256
	maxTypeLength       = 255
	// TimestampLayout is the wire form of Event.Timestamp: RFC 3339, UTC,
	// milliseconds.
	TimestampLayout = "2006-01-02T15:04:05.000Z07:00"
)

// ErrInvalidEvent is matched (errors.Is) by every validation error; the
// error is a *ValidationError naming the field.
var ErrInvalidEvent = errors.New("eventbus: invalid event")

// ErrEventTooLarge is matched (errors.Is) when the encoded envelope is over
// the size limit. It also matches ErrInvalidEvent.
var ErrEventTooLarge = errors.New("eventbus: event too large")

// ValidationError says which field of an event breaks which rule.
type ValidationError struct {
	// Index is the position of the event in a batch, -1 for a single
	// event.
	Index  int
	Field  string
	Reason string
	large  bool
}

func (e *ValidationError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("eventbus: invalid event [%d]: %s: %s", e.Index, e.Field, e.Reason)
	}
	return fmt.Sprintf("eventbus: invalid event: %s: %s", e.Field, e.Reason)
}

// Is matches ErrInvalidEvent, and ErrEventTooLarge for size errors.
func (e *ValidationError) Is(target error) bool {
	return target == ErrInvalidEvent || e.large && target == ErrEventTooLarge
}

// Event is the platform's event envelope (SPEC §2). On the wire it is the
// JSON object in the `event` field of a stream entry.
type Event struct {
	// ID is unique. Publish generates a ULID when it is empty; an ID given
	// by the caller is kept and makes the publish idempotent.
	ID string `json:"id"`
	// Type is lowercase dot-separated segments, {module}.{entity}.{action},
	// e.g. approval.item.approved.
	Type string `json:"type"`
	// Source defaults to "platform".
	Source string `json:"source"`
	// Timestamp is set to now when zero; encoded as RFC 3339 UTC with
	// milliseconds.
	Timestamp time.Time `json:"-"`
	// CorrelationID is generated when empty.
	CorrelationID string `json:"correlationId"`
	// TenantID and UserID are required.
	TenantID string `json:"tenantId"`
	UserID   string `json:"userId"`
	// Version defaults to "1.0".
	Version string `json:"version"`
	// Data is a JSON object; nil means {}.
	Data json.RawMessage `json:"data"`
	// Replay is set on replayed copies only.
	Replay *ReplayInfo `json:"replay,omitempty"`
}

// ReplayInfo marks a replayed copy of an event.
type ReplayInfo struct {
	JobID            string `json:"jobId"`
	OriginalStreamID string `json:"originalStreamId"`
	// Handlers limits delivery of the copy to these handlers; empty means
	// every matching handler of the group.
	Handlers []string `json:"handlers,omitempty"`
}

// NewEvent returns an event of type typ for tenant and user with data
// encoded as JSON. data must encode to a JSON object (a struct or a map);
// nil means {}.
func NewEvent(typ, tenantID, userID string, data any) (Event, error) {
	ev := Event{Type: typ, TenantID: tenantID, UserID: userID}
	if data != nil {
		raw, err := json.Marshal(data)
		if err != nil {
			return ev, &ValidationError{Index: -1, Field: "data", Reason: err.Error()}
		}
		ev.Data = raw
	}
	return ev, nil
}

// Bind decodes the event's data into v.
func (e Event) Bind(v any) error {
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("eventbus: bind data of %s: %w", e.ID, err)
	}
	return nil
}

// eventAlias has Event's fields without its methods.
type eventAlias Event

// MarshalJSON encodes the envelope with the wire timestamp layout and
// data {} when empty.
func (e Event) MarshalJSON() ([]byte, error) {
	a := eventAlias(e)
	if len(a.Data) == 0 {
		a.Data = json.RawMessage("{}")
	}
	var ts string
	if !e.Timestamp.IsZero() {
		ts = e.Timestamp.UTC().Format(TimestampLayout)
	}
	return json.Marshal(struct {
		*eventAlias
		Timestamp string `json:"timestamp"`
	}{&a, ts})
}

// wireEnvelope is the envelope as decoded from JSON: the timestamp stays
// a string so that a malformed one is reported by name.
type wireEnvelope struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Source        string          `json:"source"`
	Timestamp     string          `json:"timestamp"`
	CorrelationID string          `json:"correlationId"`
	TenantID      string          `json:"tenantId"`
	UserID        string          `json:"userId"`
	Version       string          `json:"version"`
	Data          json.RawMessage `json:"data"`
	Replay        *ReplayInfo     `json:"replay"`
}

func (w *wireEnvelope) event() (Event, error) {
	ev := Event{ID: w.ID, Type: w.Type, Source: w.Source, CorrelationID: w.CorrelationID,
		TenantID: w.TenantID, UserID: w.UserID, Version: w.Version, Data: w.Data, Replay: w.Replay}
	if w.Timestamp != "" {
		t, err := parseTimestamp(w.Timestamp)
		if err != nil {
			return ev, &ValidationError{Index: -1, Field: "timestamp", Reason: fmt.Sprintf("%q is not RFC 3339", w.Timestamp)}
		}
		ev.Timestamp = t.UTC()
	}
	return ev, nil
}

// UnmarshalJSON decodes the envelope. It reports a malformed timestamp as
// a *ValidationError naming the field; other rules are checked by
// Validate.
func (e *Event) UnmarshalJSON(b []byte) error {
	var w wireEnvelope
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	ev, err := w.event()
	*e = ev
	return err
}

// DecodeEvent parses the `event` field of a stream entry and validates it:
// id is required, plus every rule of Validate. A missing timestamp is left
// zero (the stream id tells when the entry was written). Any failure is a
// *ValidationError (errors.Is ErrInvalidEvent) naming the field, so a
// consumer can dead-letter the entry with the reason.
func DecodeEvent(payload []byte, maxSize int) (Event, error) {
	return decodeEvent(string(payload), maxSize)
}

// decodeEvent is DecodeEvent on a string (stream entries arrive as
// strings): the common shape is parsed by decodeFast, the rest by
// encoding/json.
func decodeEvent(payload string, maxSize int) (Event, error) {
	if maxSize > 0 && len(payload) > maxSize {
		return Event{}, &ValidationError{Index: -1, Field: "event", Reason: fmt.Sprintf("%d bytes, over the limit of %d", len(payload), maxSize), large: true}
	}
	w, ok := decodeFast(payload)
	if !ok {
		w = wireEnvelope{}
		if err := json.Unmarshal([]byte(payload), &w); err != nil {
			return Event{}, &ValidationError{Index: -1, Field: "event", Reason: "not a JSON object: " + err.Error()}
		}
	}
	ev, err := w.event()
	if err != nil {
		return ev, err
	}
	if ev.ID == "" {
		return ev, &ValidationError{Index: -1, Field: "id", Reason: "required"}
	}
	// Data came out of a valid JSON document: only its kind is checked.
	if err := ev.validate(false); err != nil {
		return ev, err
	}
	return ev, nil
}

// Validate checks the rules of SPEC §2 that do not depend on defaults:
// tenantId, userId, type, data, and the id and correlationId when set.
func (e *Event) Validate() error { return e.validate(true) }

// validate checks the rules; checkData false trusts that Data is valid
// JSON (it was decoded from a valid document) and checks only its kind.
func (e *Event) validate(checkData bool) error {
	bad := func(field, reason string) error { return &ValidationError{Index: -1, Field: field, Reason: reason} }
	if strings.TrimSpace(e.TenantID) == "" {
		return bad("tenantId", "required")
	}
	if strings.TrimSpace(e.UserID) == "" {
		return bad("userId", "required")
	}
	if err := validType(e.Type); err != nil {
		return bad("type", err.Error())
	}
	if e.ID != "" {
		if err := validToken(e.ID); err != nil {
			return bad("id", err.Error())
		}
	}
	if e.CorrelationID != "" {
		if err := validToken(e.CorrelationID); err != nil {
			return bad("correlationId", err.Error())
		}
	}
	if len(e.Data) > 0 {
		d := bytes.TrimLeft(e.Data, " \t\r\n")
		if len(d) == 0 || d[0] != '{' || checkData && !json.Valid(d) {
			return bad("data", "must be a JSON object")
		}
	}
	return nil
}

// validType accepts lowercase dot-separated segments: at least two, each
// starting with a letter, then letters, digits, '_' or '-'.
func validType(t string) error {
	if t == "" {
		return errors.New("required")
	}
	if len(t) > maxTypeLength {
		return fmt.Errorf("longer than %d bytes", maxTypeLength)
	}
	if !strings.Contains(t, ".") {
		return fmt.Errorf("%q: want lowercase dot-separated segments such as approval.item.approved", t)
	}
	for seg := range strings.SplitSeq(t, ".") {
		if seg == "" || seg[0] < 'a' || seg[0] > 'z' {
			return fmt.Errorf("%q: each segment must start with a lowercase letter", t)
		}
		for i := 1; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return fmt.Errorf("%q: only lowercase letters, digits, '_' and '-' within segments", t)
			}
		}
	}
	return nil
}

func validToken(s string) error {
	if len(s) > maxIDLength {
		return fmt.Errorf("longer than %d bytes", maxIDLength)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return errors.New("contains control characters")
		}
	}
	if strings.TrimSpace(s) == "" {
		return errors.New("blank")
	}
	return nil
}

// prepare fills in defaults, validates and encodes ev. generated reports
// whether the bus made the id (no idempotency check needed).
func prepare(ev *Event, now time.Time, maxSize int) (payload []byte, generated bool, err error) {
	if err := ev.Validate(); err != nil {
		return nil, false, err
	}
	if ev.ID == "" {
		ev.ID = newULID(now)
		generated = true
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = newULID(now)
	}
	if ev.Source == "" {
		ev.Source = DefaultSource
	}
	if ev.Version == "" {
		ev.Version = DefaultVersion
	}
	if ev.Timestamp.IsZero() {
		ev.Timestamp = now
	}
	ev.Timestamp = ev.Timestamp.UTC().Truncate(time.Millisecond)
	if y := ev.Timestamp.Year(); y < 0 || y > 9999 {
		return nil, false, &ValidationError{Index: -1, Field: "timestamp", Reason: fmt.Sprintf("year %d in UTC: RFC 3339 allows 0000 to 9999", y)}
	}
	if len(ev.Data) == 0 {
		ev.Data = json.RawMessage("{}")
	}
	payload = appendEnvelope(make([]byte, 0, 256+len(ev.Data)), ev)
	if len(payload) > maxSize {
		return nil, false, &ValidationError{Index: -1, Field: "event",
			Reason: fmt.Sprintf("%d bytes encoded, over the limit of %d", len(payload), maxSize), large: true}
	}
	return payload, generated, nil
}

// newULID returns a ULID for time t with 64 random bits from math/rand/v2
// (per-thread ChaCha8, seeded by the runtime from the OS): no lock and no
// system call, where ulid.Make serialises every caller on one monotonic
// source. The last 16 bits mark the id as the bus's (see ulidMark). Ids of
// one millisecond are unique (64 bits) but not ordered.
func newULID(t time.Time) string {
	var id ulid.ULID
	_ = id.SetTime(ulid.Timestamp(t))
	binary.BigEndian.PutUint64(id[6:14], rand.Uint64())
	binary.BigEndian.PutUint16(id[14:], ulidMark(&id))
	return id.String()
}
