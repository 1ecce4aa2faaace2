package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hyvve/eventbus"
)

// envelopeSize is the size of the JSON envelope every system publishes.
const envelopeSize = 305

// envelope is the platform's event envelope (SPEC §2) in its wire order.
type envelope struct {
	ID            string          `json:"id"`
	Type          string          `json:"type"`
	Source        string          `json:"source"`
	Timestamp     string          `json:"timestamp"`
	CorrelationID string          `json:"correlationId"`
	TenantID      string          `json:"tenantId"`
	UserID        string          `json:"userId"`
	Version       string          `json:"version"`
	Data          json.RawMessage `json:"data"`
}

// The realistic values of the benchmark's event. The ids are ULIDs (26
// characters), as the bus generates them.
var template = envelope{
	ID:            "01KAZ3M5Q8R2T4V6X8Z0B2D4F6",
	Type:          "approval.item.approved",
	Source:        eventbus.DefaultSource,
	Timestamp:     "2025-11-26T19:56:00.123Z",
	CorrelationID: "01KAZ3M5Q8R2T4V6X8Z0B2D4F7",
	TenantID:      "tenant-0042",
	UserID:        "user-0007",
	Version:       eventbus.DefaultVersion,
}

// envelopes holds the payloads of the run.
type envelopes struct {
	raw          []byte         // the 305-byte envelope for raw go-redis and Watermill
	data         []byte         // its data object
	event        eventbus.Event // what eventbus publishes: the bus fills in id, source, timestamp...
	eventbusSize int            // size of the envelope eventbus encodes for event
	dataOverhead int            // envelope size minus data size
}

func newEnvelopes() (*envelopes, error) {
	e := &envelopes{}
	empty := template
	empty.Data = json.RawMessage(`{}`)
	b, err := json.Marshal(empty)
	if err != nil {
		return nil, err
	}
	e.dataOverhead = len(b) - 2
	want := envelopeSize - e.dataOverhead
	base := `{"itemId":"item-0007d2","approvalId":"appr-0931","note":"`
	pad := want - len(base) - len(`"}`)
	if pad < 0 {
		return nil, fmt.Errorf("envelope: data too long for %d bytes", envelopeSize)
	}
	e.data = []byte(base + strings.Repeat("x", pad) + `"}`)
	e.raw = e.withData(e.data)
	if len(e.raw) != envelopeSize {
		return nil, fmt.Errorf("envelope is %d bytes, want %d", len(e.raw), envelopeSize)
	}
	e.event = eventbus.Event{Type: template.Type, TenantID: template.TenantID, UserID: template.UserID, Data: e.data}
	e.eventbusSize, err = eventbusEncodedSize(e.event)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// withData returns the template envelope with data.
func (e *envelopes) withData(data []byte) []byte {
	env := template
	env.Data = data
	b, err := json.Marshal(env)
	if err != nil {
		panic(err) // data is always valid JSON built here
	}
	return b
}

// eventbusEncodedSize is the size of the envelope the bus writes for ev:
// ev with the defaults Publish fills in (ULID ids, now, source, version).
func eventbusEncodedSize(ev eventbus.Event) (int, error) {
	ev.ID = template.ID
	ev.CorrelationID = template.CorrelationID
	ev.Source = eventbus.DefaultSource
	ev.Version = eventbus.DefaultVersion
	ev.Timestamp = time.Now().UTC().Truncate(time.Millisecond)
	b, err := json.Marshal(ev)
	return len(b), err
}

// latencyData is a data object carrying the event's sequence number and
// scheduled send time, padded so that the whole envelope stays 305 bytes.
// Warm-up events have i < 0.
func (e *envelopes) latencyData(i int, at time.Time) []byte {
	head := `{"i":` + strconv.Itoa(i) + `,"at":` + strconv.FormatInt(at.UnixNano(), 10) + `,"pad":"`
	pad := max(0, envelopeSize-e.dataOverhead-len(head)-len(`"}`))
	return []byte(head + strings.Repeat("x", pad) + `"}`)
}

// stamp is what a latency handler reads back.
type stamp struct {
	I  int   `json:"i"`
	At int64 `json:"at"`
}

// parseEnvelopeStamp decodes a whole envelope (as raw go-redis and
// Watermill handlers get it) and returns its stamp.
func parseEnvelopeStamp(b []byte) (stamp, error) {
	var env struct {
		Data stamp `json:"data"`
	}
	err := json.Unmarshal(b, &env)
	return env.Data, err
}
