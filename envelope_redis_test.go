package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// badEnvelopes break one envelope rule each (issue 9, item 10).
var badEnvelopes = []struct {
	name, field string
	edit        func(*eventbus.Event)
}{
	{"replay set by the client", "replay", func(e *eventbus.Event) { e.Replay = &eventbus.ReplayInfo{JobID: "j", OriginalStreamID: "1-0"} }},
	{"invalid UTF-8 in data", "data", func(e *eventbus.Event) { e.Data = json.RawMessage("{\"a\":\"\xff\xfe\"}") }},
	{"data 65 levels deep", "data", func(e *eventbus.Event) {
		e.Data = json.RawMessage(strings.Repeat(`{"a":`, 64) + "{}" + strings.Repeat("}", 64))
	}},
	{"tenant with a control character", "tenantId", func(e *eventbus.Event) { e.TenantID = "t1\x1b" }},
	{"tenant with a trailing space", "tenantId", func(e *eventbus.Event) { e.TenantID = "t1 " }},
	{"user of 1 MB", "userId", func(e *eventbus.Event) { e.UserID = strings.Repeat("u", 1<<20) }},
	{"source with a newline", "source", func(e *eventbus.Event) { e.Source = "crm\n" }},
	{"version of 65 bytes", "version", func(e *eventbus.Event) { e.Version = strings.Repeat("1", 65) }},
}

// TestPublishRefusesBadEnvelopes: Publish and PublishBatch refuse each
// broken rule with a *ValidationError naming the field, and write nothing.
func TestPublishRefusesBadEnvelopes(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.MaxEventSize = 4 << 20 })
	for _, tt := range badEnvelopes {
		t.Run(tt.name, func(t *testing.T) {
			ev := approved("t1")
			tt.edit(&ev)
			_, err := b.Publish(ctx, ev)
			var ve *eventbus.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.field || ve.Index != -1 {
				t.Errorf("Publish: %v, want a *ValidationError on %s", err, tt.field)
			}
			_, err = b.PublishBatch(ctx, []eventbus.Event{approved("t1"), ev})
			if !errors.As(err, &ve) || ve.Field != tt.field || ve.Index != 1 {
				t.Errorf("PublishBatch: %v, want a *ValidationError on [1] %s", err, tt.field)
			}
		})
	}
	if n := c.XLen(ctx, testKeys(prefix).Main()).Val(); n != 0 {
		t.Errorf("%d entries written, want none", n)
	}
}

// TestEntriesBreakingEnvelopeRulesGoToDLQ: entries written by other
// producers that break the rules are dead-lettered with the reason; a
// replayed copy's replay block is not a reason.
func TestEntriesBreakingEnvelopeRulesGoToDLQ(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	cons := fastConsumer(t, b, nil)
	runs := newCounter()
	mustHandle(t, cons, "h", "*", func(_ context.Context, ev eventbus.Event) error { runs.add(ev.ID); return nil })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	runConsumer(t, cons)
	main := testKeys(prefix).Main()
	head := `{"id":"x","type":"a.b","tenantId":"t","userId":"u"`
	bad := []struct{ event, reason string }{
		{head + `,"data":{"a":"` + "\xff" + `"}}`, "data"},
		{head + `,"data":` + strings.Repeat(`{"a":`, 64) + "{}" + strings.Repeat("}", 64) + `}`, "data"},
		{`{"id":"x","type":"a.b","tenantId":"t\u0007","userId":"u"}`, "tenantId"},
		{`{"id":"x","type":"a.b","tenantId":"t","userId":" u"}`, "userId"},
		{head + `,"source":"` + strings.Repeat("s", 65) + `"}`, "source"},
		{head + `,"version":"1\n"}`, "version"},
		{head + `,"timestamp":"0001-01-01T00:00:00Z"}`, "timestamp"},
	}
	want := map[string]string{} // stream id -> reason
	add := func(event string) string {
		t.Helper()
		id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: main, Values: []string{rdb.FieldEvent, event}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for _, e := range bad {
		want[add(e.event)] = e.reason
	}
	replayed := `{"id":"r1","type":"a.b","tenantId":"t","userId":"u","replay":{"jobId":"j","originalStreamId":"1-0"}}`
	add(replayed)
	waitFor(t, 10*time.Second, "the entry with a replay block handled", func() bool { return runs.get("r1") == 1 })
	waitFor(t, 10*time.Second, "every bad entry in the DLQ", func() bool {
		return c.XLen(ctx, testKeys(prefix).DLQ()).Val() >= int64(len(bad))
	})
	dlq := c.XRange(ctx, testKeys(prefix).DLQ(), "-", "+").Val()
	if len(dlq) != len(bad) {
		t.Fatalf("%d DLQ entries, want %d", len(dlq), len(bad))
	}
	for _, e := range dlq {
		var dl eventbus.DeadLetter
		if err := json.Unmarshal([]byte(e.Values[rdb.FieldDLQ].(string)), &dl); err != nil {
			t.Fatalf("DLQ entry %s: %v", e.ID, err)
		}
		if reason, ok := want[dl.OriginalStreamID]; !ok || !strings.Contains(dl.Reason, reason) {
			t.Errorf("entry %s reason %q, want it to mention %q", dl.OriginalStreamID, dl.Reason, reason)
		}
	}
}
