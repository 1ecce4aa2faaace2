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
	"unicode"
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
	// MaxNameLength bounds tenantId and userId, in bytes.
	MaxNameLength = 128
	// MaxLabelLength bounds source and version, in bytes.
	MaxLabelLength = 64
	// MaxDataDepth is the deepest nesting of objects and arrays in data;
	// data's own object is level 1.
	MaxDataDepth = 64
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
//
// Rules checked by Validate (and so by Publish, PublishBatch and the HTTP
// API) and by DecodeEvent on the consuming side, each failure a
// *ValidationError naming the field:
//
//   - tenantId and userId: required, 1 to 128 bytes; source and version,
//     when set, 1 to 64 bytes. All four: valid UTF-8, no control
//     characters (unicode.IsControl: C0, DEL, C1), no leading or trailing
//     white space.
//   - id and correlationId, when set: at most 256 bytes, valid UTF-8, no
//     control characters, not blank.
//   - type: lowercase dot-separated segments (see the field).
//   - data: a JSON object of valid UTF-8, nesting objects and arrays at
//     most MaxDataDepth (64) levels deep, data's own object being level 1.
//   - timestamp: a present timestamp must be RFC 3339 with a year from
//     0000 to 9999 in UTC and must not be the zero instant
//     (0001-01-01T00:00:00Z, at millisecond precision); an absent, null
//     or empty one means unset.
//   - replay: refused on publish (it marks the bus's own replayed
//     copies); accepted by DecodeEvent.
//   - traceContext, when set: traceparent is required and must be a W3C
//     traceparent (version, 32 hex trace id, 16 hex parent id, flags;
//     lowercase, ids not all zero); tracestate, when set, must be a W3C
//     tracestate. Refused on publish when malformed; DecodeEvent drops a
//     malformed one (the consumer runs the handlers without a parent
//     span) instead of refusing the event.
//
// The encoded envelope must also fit Config.MaxEventSize.
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
	// milliseconds. The zero time.Time means unset, so a library caller
	// cannot publish the zero instant itself; in JSON (the HTTP API,
	// DecodeEvent) a timestamp that is present but the zero instant is
	// refused instead of being replaced.
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
	// Replay is set on replayed copies only, which the bus writes itself:
	// publishing an event with Replay set is refused.
	Replay *ReplayInfo `json:"replay,omitempty"`
	// TraceContext is the W3C trace context of the publish, which consumer
	// spans take as their parent. Publish sets it from its producer span
	// when a tracer records one (or ctx carries a span context); a value
	// set by the caller is the producer span's parent when ctx carries no
	// span, and travels unchanged when there is no span at all.
	TraceContext *TraceContext `json:"traceContext,omitempty"`
}

// TraceContext carries W3C Trace Context (https://www.w3.org/TR/trace-context/)
// in the envelope.
type TraceContext struct {
	Traceparent string `json:"traceparent"`
	Tracestate  string `json:"tracestate,omitempty"`
}

// ReplayInfo marks a replayed copy of an event.
type ReplayInfo struct {
	JobID            string `json:"jobId"`
	OriginalStreamID string `json:"originalStreamId"`
	// OriginalStream is the stream the original was read from, set by a
	// partitioned bus (Config.Partitions > 1), where one stream id may
	// exist in several partitions; empty with one partition.
	OriginalStream string `json:"originalStream,omitempty"`
	// Group is the consumer group whose handlers run the copy: the
	// consumers of every other group acknowledge it without running
	// anything. Empty (copies written before replays had a group) means
	// every group.
	Group string `json:"group,omitempty"`
	// Handlers limits delivery of the copy to these handlers; empty means
	// every matching handler of the group. The bus's replay jobs always
	// name them (the group's handlers resolved when the job started).
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
	// TraceContext never fails the decoding: a value that is not an
	// object of strings is marked Bad.
	TraceContext wireTraceContext `json:"traceContext"`
}

// wireTraceContext is the traceContext key as decoded. Present is false
// for an absent or null key; Bad is true for one that is not an object
// whose traceparent and tracestate are strings.
type wireTraceContext struct {
	Traceparent, Tracestate string
	Present, Bad            bool
}

// UnmarshalJSON decodes b leniently: a later key replaces an earlier one
// whole, and a value of the wrong shape marks it Bad instead of failing.
func (w *wireTraceContext) UnmarshalJSON(b []byte) error {
	*w = wireTraceContext{}
	if string(b) == "null" {
		return nil
	}
	var v struct {
		Traceparent string `json:"traceparent"`
		Tracestate  string `json:"tracestate"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		w.Present, w.Bad = true, true
		return nil
	}
	*w = wireTraceContext{Traceparent: v.Traceparent, Tracestate: v.Tracestate, Present: true}
	return nil
}

func (w *wireEnvelope) event() (Event, error) {
	ev := Event{ID: w.ID, Type: w.Type, Source: w.Source, CorrelationID: w.CorrelationID,
		TenantID: w.TenantID, UserID: w.UserID, Version: w.Version, Data: w.Data, Replay: w.Replay}
	if tc := w.TraceContext; tc.Present && !tc.Bad {
		ev.TraceContext = &TraceContext{Traceparent: tc.Traceparent, Tracestate: tc.Tracestate}
	}
	if w.Timestamp != "" {
		t, err := parseTimestamp(w.Timestamp)
		if err != nil {
			return ev, &ValidationError{Index: -1, Field: "timestamp", Reason: fmt.Sprintf("%q is not RFC 3339", w.Timestamp)}
		}
		t = t.UTC()
		if t.Truncate(time.Millisecond).IsZero() {
			return ev, &ValidationError{Index: -1, Field: "timestamp", Reason: fmt.Sprintf("%q is the zero instant: omit the field to mean now", w.Timestamp)}
		}
		if y := t.Year(); y < 0 || y > 9999 {
			return ev, &ValidationError{Index: -1, Field: "timestamp", Reason: fmt.Sprintf("%q is year %d in UTC: RFC 3339 allows 0000 to 9999", w.Timestamp, y)}
		}
		ev.Timestamp = t
	}
	return ev, nil
}

// UnmarshalJSON decodes the envelope. It reports a malformed or zero
// timestamp, and a traceContext that is not an object of strings, as a
// *ValidationError naming the field; other rules are checked by Validate.
func (e *Event) UnmarshalJSON(b []byte) error {
	var w wireEnvelope
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	ev, err := w.event()
	*e = ev
	if err == nil && w.TraceContext.Bad {
		err = &ValidationError{Index: -1, Field: "traceContext", Reason: "must be an object with string members traceparent and tracestate"}
	}
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
	ev.TraceContext = ev.TraceContext.sanitized()
	if ev.ID == "" {
		return ev, &ValidationError{Index: -1, Field: "id", Reason: "required"}
	}
	// Data came out of a valid JSON document: its kind, UTF-8 and depth
	// are checked. Replay is allowed (replayed copies carry it).
	if err := ev.validate(false); err != nil {
		return ev, err
	}
	return ev, nil
}

// Validate checks the rules of SPEC §2 that do not depend on defaults
// (see Event): tenantId, userId, source, version, type, data, the id and
// correlationId when set, and that Replay is not set.
func (e *Event) Validate() error { return e.validate(true) }

// validate checks the rules. publish true is the publishing side: Replay
// is refused and Data is checked to be valid JSON; false is DecodeEvent,
// where Data came out of a valid JSON document and Replay is allowed.
func (e *Event) validate(publish bool) error {
	bad := func(field, reason string) error { return &ValidationError{Index: -1, Field: field, Reason: reason} }
	if err := validName(e.TenantID, MaxNameLength, true); err != nil {
		return bad("tenantId", err.Error())
	}
	if err := validName(e.UserID, MaxNameLength, true); err != nil {
		return bad("userId", err.Error())
	}
	if err := validType(e.Type); err != nil {
		return bad("type", err.Error())
	}
	if err := validName(e.Source, MaxLabelLength, false); err != nil {
		return bad("source", err.Error())
	}
	if err := validName(e.Version, MaxLabelLength, false); err != nil {
		return bad("version", err.Error())
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
		if err := validData(e.Data, publish); err != nil {
			return bad("data", err.Error())
		}
	}
	if publish && e.Replay != nil {
		return bad("replay", "set by the bus on replayed copies only; not allowed on publish")
	}
	if publish && e.TraceContext != nil {
		if err := e.TraceContext.validate(); err != nil {
			return bad("traceContext", err.Error())
		}
	}
	return nil
}

// validData checks that d is a JSON object (fully validated when
// checkJSON, else only its first byte: it came out of a valid document),
// valid UTF-8 (json.Valid accepts invalid UTF-8 inside strings) and at
// most MaxDataDepth levels deep.
func validData(d json.RawMessage, checkJSON bool) error {
	t := bytes.TrimLeft(d, " \t\r\n")
	if len(t) == 0 || t[0] != '{' || checkJSON && !json.Valid(t) {
		return errors.New("must be a JSON object")
	}
	if !utf8.Valid(t) {
		return errors.New("not valid UTF-8")
	}
	// Deeper than MaxDataDepth takes more than 2*MaxDataDepth brackets.
	if len(t) > 2*MaxDataDepth && jsonDepth(t) > MaxDataDepth {
		return fmt.Errorf("nested more than %d levels deep", MaxDataDepth)
	}
	return nil
}

// jsonDepth returns the deepest nesting of objects and arrays in the valid
// JSON document d, in one pass without allocating. It stops counting once
// over MaxDataDepth.
func jsonDepth(d []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(d); i++ {
		for i < len(d) && !depthByte[d[i]] {
			i++
		}
		if i == len(d) {
			break
		}
		switch d[i] {
		case '{', '[':
			depth++
			if depth > deepest {
				deepest = depth
				if deepest > MaxDataDepth {
					return deepest
				}
			}
		case '}', ']':
			depth--
		case '"':
			// Skip the string; a backslash escapes the next byte. The
			// document is valid, so the closing quote is there.
			for i++; i < len(d); i++ {
				for i < len(d) && !stringByte[d[i]] {
					i++
				}
				if i == len(d) || d[i] == '"' {
					break
				}
				i++ // the byte after a backslash
			}
		}
	}
	return deepest
}

// depthByte marks the bytes jsonDepth looks at outside strings,
// stringByte those inside.
var depthByte, stringByte = func() (outside, inside [256]bool) {
	for _, c := range []byte(`{}[]"`) {
		outside[c] = true
	}
	inside['"'], inside['\\'] = true, true
	return outside, inside
}()

// validName checks tenantId, userId, source and version: at most limit
// bytes, valid UTF-8, no control characters, no leading or trailing
// white space; empty is "required" when required, else allowed.
func validName(s string, limit int, required bool) error {
	if s == "" {
		if required {
			return errors.New("required")
		}
		return nil
	}
	if len(s) > limit {
		return fmt.Errorf("%d bytes, longer than %d", len(s), limit)
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < ' ' || c == 0x7f {
				return errors.New("contains control characters")
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return errors.New("not valid UTF-8")
		}
		if unicode.IsControl(r) {
			return errors.New("contains control characters")
		}
		i += size
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		if strings.TrimSpace(s) == "" {
			return errors.New("blank")
		}
		return errors.New("leading or trailing white space")
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
	if ev.Timestamp.IsZero() { // set, but within a millisecond of the zero instant
		return nil, false, &ValidationError{Index: -1, Field: "timestamp", Reason: "the zero instant 0001-01-01T00:00:00.000Z means unset"}
	}
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
