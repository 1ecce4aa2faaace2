package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestPartitionsOverHTTP: with 8 partitions the live tail streams the
// events of every partition (SSE id = the entry's cursor), browsing pages
// them all once, and a dead letter of a partition is listed and shown by
// its partition-named id.
func TestPartitionsOverHTTP(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	bus, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix, Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	ts := startTailServer(t, bus, Options{}, nil, nil)
	all := openStream(t, ts.url, keyPlatform, "", http.StatusOK)
	ts.waitHub(t, "the reader positioned", func(s hubState) bool { return s.clients == 1 && s.ready })

	const n = 40
	for i := range n {
		publishAll(t, bus, eventbus.Event{Type: "orders.order.created", TenantID: fmt.Sprintf("tenant-%d", i)})
	}
	parts := map[string]bool{}
	seen := map[string]bool{}
	timeout := time.After(30 * time.Second)
	for len(seen) < n {
		select {
		case ev, ok := <-all.events:
			if !ok {
				t.Fatalf("stream ended after %d events", len(seen))
			}
			var it eventbus.BrowsedEvent
			if err := json.Unmarshal([]byte(ev.data), &it); err != nil || it.Event == nil || it.Cursor() != ev.id || it.Partition == "" {
				t.Fatalf("data %s (id %s): %v", ev.data, ev.id, err)
			}
			if seen[it.Event.ID] {
				t.Fatalf("event %s sent twice", it.Event.ID)
			}
			seen[it.Event.ID] = true
			parts[it.Partition] = true
		case <-timeout:
			t.Fatalf("%d of %d events after 30s", len(seen), n)
		}
	}
	if len(parts) < 6 {
		t.Errorf("events of %d partitions, want most of 8", len(parts))
	}

	get := func(path string, out any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+keyPlatform)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, out) != nil {
			t.Fatalf("GET %s = %d %s", path, resp.StatusCode, body)
		}
	}
	browsed := map[string]bool{}
	cursor := ""
	for range 100 {
		var page eventbus.EventPage
		get("/v1/events?limit=7&cursor="+cursor, &page)
		for _, it := range page.Items {
			if browsed[it.Event.ID] {
				t.Fatalf("event %s browsed twice", it.Event.ID)
			}
			browsed[it.Event.ID] = true
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(browsed) != n {
		t.Errorf("%d events browsed, want %d", len(browsed), n)
	}

	k := rdb.NewPartitionedKeys(prefix, false, 8, 0)
	meta, _ := json.Marshal(eventbus.DeadLetter{EventID: "ev-1", Type: "orders.x", TenantID: "tenant-a", Handler: "h", Group: eventbus.DefaultGroup, Reason: "boom"})
	sids, err := rdb.New(c, k, rdb.Options{}).AddDLQ(ctx, []rdb.DLQAdd{{Partition: 3, Payload: `{"id":"ev-1"}`, Meta: meta}})
	if err != nil {
		t.Fatal(err)
	}
	id := rdb.FormatRef(k.PartitionName(3), sids[0])
	var list eventbus.DLQPage
	get("/admin/events/dlq", &list)
	if len(list.Items) != 1 || list.Items[0].ID != id {
		t.Fatalf("DLQ list %+v, want the entry %s", list, id)
	}
	var entry eventbus.DLQEntry
	get("/admin/events/dlq/entries/"+id, &entry)
	if entry.ID != id || entry.EventID != "ev-1" {
		t.Fatalf("DLQ entry %+v", entry)
	}
}
