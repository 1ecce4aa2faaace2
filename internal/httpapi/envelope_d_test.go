package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestPublishRoutesApplyEnvelopeRules: the HTTP routes refuse what the
// envelope rules refuse (issue 9, item 10) with 400 naming the field (and
// the index in a batch), and write nothing.
func TestPublishRoutesApplyEnvelopeRules(t *testing.T) {
	c, prefix := redistest.Shared(t)
	_, srv := newServer(t, c, prefix)
	head := `{"type":"approval.item.approved","tenantId":"tenant-a"`
	tests := []struct{ name, event, field string }{
		{"replay block", head + `,"userId":"u1","replay":{"jobId":"j","originalStreamId":"1-0"}}`, "replay"},
		{"invalid UTF-8 in data", head + `,"userId":"u1","data":{"a":"` + "\xff" + `"}}`, "data"},
		{"data 65 levels deep", head + `,"userId":"u1","data":` + strings.Repeat(`{"a":`, 64) + "{}" + strings.Repeat("}", 64) + `}`, "data"},
		{"user with a control character", head + `,"userId":"u\u0000"}`, "userId"},
		{"user with surrounding spaces", head + `,"userId":" u1 "}`, "userId"},
		{"user of 129 bytes", head + `,"userId":"` + strings.Repeat("u", 129) + `"}`, "userId"},
		{"source with a newline", head + `,"userId":"u1","source":"crm\n"}`, "source"},
		{"version of 65 bytes", head + `,"userId":"u1","version":"` + strings.Repeat("1", 65) + `"}`, "version"},
		{"zero timestamp", head + `,"userId":"u1","timestamp":"0001-01-01T00:00:00Z"}`, "timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, srv.URL+"/v1/events", keyPublisher, tt.event)
			if code, field := r.errorCode(t); r.status != http.StatusBadRequest || code != "invalid_event" || field != tt.field {
				t.Errorf("single: %d %s, want 400 invalid_event on %s", r.status, r.body, tt.field)
			}
			r = post(t, srv.URL+"/v1/events/batch", keyPublisher, "["+okEvent+","+tt.event+"]")
			var e errorBody
			json.Unmarshal(r.body, &e)
			if r.status != http.StatusBadRequest || e.Error.Field != tt.field {
				t.Errorf("batch: %d %s, want 400 on %s", r.status, r.body, tt.field)
			}
		})
	}
	if n := c.XLen(context.Background(), rdb.NewKeys(prefix, false).Main()).Val(); n != 0 {
		t.Errorf("%d entries written, want none", n)
	}
}
