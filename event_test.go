package eventbus

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func validEvent() Event {
	return Event{Type: "approval.item.approved", TenantID: "t1", UserID: "u1", Data: json.RawMessage(`{"itemId":"i1"}`)}
}

func TestValidateNamesTheField(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Event)
		field string
	}{
		{"empty tenant", func(e *Event) { e.TenantID = "" }, "tenantId"},
		{"blank tenant", func(e *Event) { e.TenantID = "  " }, "tenantId"},
		{"empty user", func(e *Event) { e.UserID = "" }, "userId"},
		{"empty type", func(e *Event) { e.Type = "" }, "type"},
		{"uppercase type", func(e *Event) { e.Type = "Approval.item.approved" }, "type"},
		{"one segment", func(e *Event) { e.Type = "approval" }, "type"},
		{"empty segment", func(e *Event) { e.Type = "approval..approved" }, "type"},
		{"trailing dot", func(e *Event) { e.Type = "approval.item." }, "type"},
		{"space in type", func(e *Event) { e.Type = "approval.item approved" }, "type"},
		{"digit first", func(e *Event) { e.Type = "approval.1item" }, "type"},
		{"data array", func(e *Event) { e.Data = json.RawMessage(`[1,2]`) }, "data"},
		{"data string", func(e *Event) { e.Data = json.RawMessage(`"x"`) }, "data"},
		{"data null", func(e *Event) { e.Data = json.RawMessage(`null`) }, "data"},
		{"data broken", func(e *Event) { e.Data = json.RawMessage(`{"a":`) }, "data"},
		{"id control char", func(e *Event) { e.ID = "a\nb" }, "id"},
		{"id too long", func(e *Event) { e.ID = strings.Repeat("x", 300) }, "id"},
		{"correlation blank", func(e *Event) { e.CorrelationID = " " }, "correlationId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := validEvent()
			tt.edit(&ev)
			_, _, err := prepare(&ev, time.Now(), DefaultMaxEventSize)
			var ve *ValidationError
			if !errors.Is(err, ErrInvalidEvent) || !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			if ve.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", ve.Field, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Errorf("message %q does not name %s", err, tt.field)
			}
		})
	}
}

func TestValidTypes(t *testing.T) {
	for _, typ := range []string{"approval.item.approved", "user.created", "crm.deal-stage.changed", "a.b.c.d.e", "billing.invoice_v2.paid"} {
		ev := validEvent()
		ev.Type = typ
		if err := ev.Validate(); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
}

func TestPrepareFillsDefaults(t *testing.T) {
	ev := validEvent()
	ev.Data = nil
	now := time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.FixedZone("x", 3600))
	payload, generated, err := prepare(&ev, now, DefaultMaxEventSize)
	if err != nil {
		t.Fatal(err)
	}
	if !generated || len(ev.ID) != 26 || len(ev.CorrelationID) != 26 {
		t.Errorf("id %q (generated %v), correlation %q: want ULIDs", ev.ID, generated, ev.CorrelationID)
	}
	if ev.Source != "platform" || ev.Version != "1.0" {
		t.Errorf("source %q version %q", ev.Source, ev.Version)
	}
	var wire map[string]any
	if err := json.Unmarshal(payload, &wire); err != nil {
		t.Fatal(err)
	}
	if wire["timestamp"] != "2026-01-02T02:04:05.678Z" {
		t.Errorf("timestamp %v, want RFC 3339 UTC with milliseconds", wire["timestamp"])
	}
	if d, ok := wire["data"].(map[string]any); !ok || len(d) != 0 {
		t.Errorf("data %v, want {}", wire["data"])
	}
	for _, k := range []string{"id", "type", "source", "timestamp", "correlationId", "tenantId", "userId", "version", "data"} {
		if _, ok := wire[k]; !ok {
			t.Errorf("wire form lacks %q: %s", k, payload)
		}
	}
	if _, ok := wire["replay"]; ok {
		t.Errorf("replay present on a normal event: %s", payload)
	}

	// Caller-supplied values are kept.
	ev = validEvent()
	ev.ID, ev.CorrelationID, ev.Source, ev.Version = "my-id", "corr", "crm", "2.0"
	if _, generated, err = prepare(&ev, now, DefaultMaxEventSize); err != nil || generated {
		t.Fatalf("generated %v err %v", generated, err)
	}
	if ev.ID != "my-id" || ev.CorrelationID != "corr" || ev.Source != "crm" || ev.Version != "2.0" {
		t.Errorf("caller values replaced: %+v", ev)
	}
}

func TestPrepareRejectsTimestampsOutsideRFC3339Years(t *testing.T) {
	for _, ts := range []time.Time{
		time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("x", -5*3600)), // 10000 in UTC
		time.Date(0, 1, 1, 0, 30, 0, 0, time.FixedZone("y", 3600)),         // -0001 in UTC
	} {
		ev := validEvent()
		ev.Timestamp = ts
		_, _, err := prepare(&ev, time.Now(), DefaultMaxEventSize)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "timestamp" {
			t.Errorf("%v: err %v, want a timestamp error", ts, err)
		}
	}
}

func TestPrepareSizeLimit(t *testing.T) {
	ev := validEvent()
	ev.Data = json.RawMessage(`{"blob":"` + strings.Repeat("x", 2000) + `"}`)
	_, _, err := prepare(&ev, time.Now(), 1000)
	if !errors.Is(err, ErrEventTooLarge) || !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("err = %v, want ErrEventTooLarge and ErrInvalidEvent", err)
	}
}

func TestDecodeEvent(t *testing.T) {
	tests := []struct {
		name, payload, field string
	}{
		{"valid", `{"id":"e1","type":"a.b.c","tenantId":"t","userId":"u","data":{},"timestamp":"2025-12-03T10:00:00.000Z"}`, ""},
		{"valid without optional fields", `{"id":"e1","type":"a.b.c","tenantId":"t","userId":"u"}`, ""},
		{"not json", `garbage`, "event"},
		{"json array", `[1]`, "event"},
		{"missing id", `{"type":"a.b.c","tenantId":"t","userId":"u"}`, "id"},
		{"missing tenant", `{"id":"e","type":"a.b.c","userId":"u"}`, "tenantId"},
		{"bad type", `{"id":"e","type":"ABC","tenantId":"t","userId":"u"}`, "type"},
		{"bad timestamp", `{"id":"e","type":"a.b","tenantId":"t","userId":"u","timestamp":"yesterday"}`, "timestamp"},
		{"data not object", `{"id":"e","type":"a.b","tenantId":"t","userId":"u","data":5}`, "data"},
		{"wrong field type", `{"id":5,"type":"a.b","tenantId":"t","userId":"u"}`, "event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := DecodeEvent([]byte(tt.payload), DefaultMaxEventSize)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if ev.ID != "e1" {
					t.Errorf("id %q", ev.ID)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("err = %v, want field %s", err, tt.field)
			}
		})
	}
}

// FuzzDecodeEvent: any input decodes to a valid event or a
// *ValidationError; never a panic. A decoded event survives a round trip.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"id":"e1","type":"a.b.c","tenantId":"t","userId":"u","data":{},"timestamp":"2025-12-03T10:00:00.000Z"}`))
	f.Add([]byte(`{"id":"e1","type":"a.b","tenantId":"t","userId":"u","data":{"x":[1,{"y":null}]},"replay":{"jobId":"j","originalStreamId":"1-0"}}`))
	f.Add([]byte(`{"id":"","type":"","data":null}`))
	f.Add([]byte(`not json`))
	f.Add([]byte(`{"timestamp":"2025-13-45T99:00:00Z"}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := DecodeEvent(payload, DefaultMaxEventSize)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
			}
			return
		}
		again, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := DecodeEvent(again, 0)
		if err != nil {
			t.Fatalf("round trip of %s: %v", again, err)
		}
		if back.ID != ev.ID || back.Type != ev.Type || back.TenantID != ev.TenantID || !back.Timestamp.Equal(ev.Timestamp.Truncate(time.Millisecond)) {
			t.Fatalf("round trip changed the event: %+v -> %+v", ev, back)
		}
	})
}
