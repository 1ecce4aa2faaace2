package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// The shared Redis has no replica: with MinReplicas 1 every publish is
// written on the primary and answered 504 not_replicated with its ids.
func TestPublishNotReplicated(t *testing.T) {
	c, prefix := redistest.Shared(t)
	bus, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix, MinReplicas: 1, ReplicaTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	t.Cleanup(srv.Close)
	main := rdb.NewKeys(prefix, false).Main()
	for _, tc := range []struct {
		path, body string
		n          int
	}{
		{"/v1/events", okEvent, 1},
		{"/v1/events", `{"id":"01J0000000000000000000000A","type":"approval.item.approved","tenantId":"tenant-a","userId":"u1","data":{}}`, 1},
		{"/v1/events/batch", `{"events":[` + okEvent + `,` + okEvent + `]}`, 2},
	} {
		r := post(t, srv.URL+tc.path, keyPublisher, tc.body)
		if r.status != http.StatusGatewayTimeout {
			t.Fatalf("%s: status %d, want 504: %s", tc.path, r.status, r.body)
		}
		var b notReplicatedBody
		if err := json.Unmarshal(r.body, &b); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		if b.Error.Code != "not_replicated" || b.Error.Message == "" || b.Error.Wanted != 1 || b.Error.Replicas != 0 ||
			len(b.Error.EventIDs) != tc.n || len(b.Error.StreamIDs) != tc.n {
			t.Fatalf("%s: body %s", tc.path, r.body)
		}
		for _, id := range b.Error.StreamIDs { // written on the primary
			if got, err := c.XRange(context.Background(), main, id, id).Result(); err != nil || len(got) != 1 {
				t.Errorf("entry %s: %v %v", id, got, err)
			}
		}
	}
}
