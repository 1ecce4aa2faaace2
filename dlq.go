package eventbus

import "time"

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
}
