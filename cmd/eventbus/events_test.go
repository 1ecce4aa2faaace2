package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestEventsListCommand: eventbus events list prints a table (or JSON
// lines with --json) of what the Inspector returns, the next cursor on
// stderr; exit 1 when Redis fails, 2 on bad usage.
func TestEventsListCommand(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	bus, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	var pubs []eventbus.Published
	for _, e := range []struct{ typ, tenant string }{{"crm.deal.won", "t1"}, {"crm.deal.lost", "t2"}, {"billing.invoice.sent", "t1"}} {
		p, err := bus.Publish(ctx, eventbus.Event{Type: e.typ, TenantID: e.tenant, UserID: "u"})
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, p)
	}
	bad, err := c.XAdd(ctx, &redis.XAddArgs{Stream: rdb.NewKeys(prefix, false).Main(), Values: []any{rdb.FieldEvent, "not json"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	env := inspectEnv(sharedURL(), prefix)

	// The table: a header, one row per event, the bad entry with its error.
	code, out, errOut := runRead(t, env, "events", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 5 || errOut != "" {
		t.Fatalf("events list: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "STREAM ID TIME TYPE TENANT EVENT ID" {
		t.Errorf("header %q", lines[0])
	}
	for i, p := range pubs {
		f := strings.Fields(lines[i+1])
		if len(f) != 5 || f[0] != p.StreamID || f[4] != p.ID || !strings.HasSuffix(f[1], "Z") {
			t.Errorf("row %d %q, want stream id %s and event id %s", i, lines[i+1], p.StreamID, p.ID)
		}
	}
	if !strings.HasPrefix(lines[4], bad) || !strings.Contains(lines[4], "invalid: ") {
		t.Errorf("bad entry row %q", lines[4])
	}

	// Filters, limit and the cursor on stderr; --json prints JSON lines.
	code, out, errOut = runRead(t, env, "events", "list", "--tenant", "t1", "--type", "crm.*,billing.*", "--limit", "1", "--json")
	var it eventbus.BrowsedEvent
	if code != 0 || json.Unmarshal([]byte(out), &it) != nil || it.Event == nil || it.Event.ID != pubs[0].ID || errOut != "next cursor: "+pubs[0].StreamID+"\n" {
		t.Fatalf("first page: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, errOut = runRead(t, env, "events", "list", "--tenant", "t1", "--type", "crm.*", "--type", "billing.*", "--json", "--cursor", pubs[0].StreamID)
	if code != 0 || json.Unmarshal([]byte(out), &it) != nil || it.Event.ID != pubs[2].ID || errOut != "" {
		t.Fatalf("second page: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runRead(t, env, "events", "list", "--from", "2999-01-01T00:00:00Z")
	if code != 0 || strings.Count(out, "\n") != 1 {
		t.Errorf("future --from: exit %d, stdout %q", code, out)
	}

	for _, tt := range []struct {
		args      []string
		stderrHas string
	}{
		{[]string{"events"}, `"list"`},
		{[]string{"events", "show"}, `"list"`},
		{[]string{"events", "list", "extra"}, "unexpected argument"},
		{[]string{"events", "list", "--type", "crm*"}, "--type"},
		{[]string{"events", "list", "--from", "yesterday"}, "RFC 3339"},
		{[]string{"events", "list", "--from", "2021-01-01T00:00:00Z", "--to", "2020-01-01T00:00:00Z"}, "--to"},
		{[]string{"events", "list", "--cursor", "abc"}, "--cursor"},
		{[]string{"events", "list", "--limit", "0"}, "--limit"},
		{[]string{"events", "list", "--limit", "101"}, "--limit"},
		{[]string{"events", "list", "--tenant", ""}, "--tenant"},
	} {
		code, out, errOut := runRead(t, env, tt.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tt.stderrHas) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 mentioning %q", tt.args, code, out, errOut, tt.stderrHas)
		}
	}

	// Redis not there: exit 1, saying so.
	down := inspectEnv("redis://"+freeAddr(t), prefix)
	code, out, errOut = runRead(t, down, "events", "list", "--timeout", "5s")
	if code != 1 || out != "" || !strings.Contains(errOut, "redis unavailable") {
		t.Errorf("Redis down: exit %d, stdout %q, stderr %q; want exit 1 saying redis unavailable", code, out, errOut)
	}
}
