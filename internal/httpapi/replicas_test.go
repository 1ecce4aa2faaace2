package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// A batch whose events go to several partitions, one of which refuses
// writes (an ACL user without its keys), answers 503 partially_written
// with every event's result.
func TestPublishBatchPartiallyWritten(t *testing.T) {
	ctx := context.Background()
	admin, prefix := redistest.Shared(t)
	k := rdb.NewPartitionedKeys(prefix, false, 4, 0)
	user := "partial-http-" + prefix
	rules := []any{"ACL", "SETUSER", user, "reset", "on", ">pw", "+@all"}
	for p := range k.WritePartitions() {
		if p != 2 {
			rules = append(rules, "~"+k.Partition(p).Base()+":*")
		}
	}
	if err := admin.Do(ctx, rules...).Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", user) })
	c := redis.NewClient(&redis.Options{Addr: admin.Options().Addr, Username: user, Password: "pw"})
	t.Cleanup(func() { c.Close() })
	bus, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix, Partitions: 4,
		Partitioner: func(ev *eventbus.Event, n int) int { return int(ev.UserID[1]-'0') % n }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	t.Cleanup(srv.Close)
	ev := func(user string) string {
		return `{"type":"approval.item.approved","tenantId":"tenant-a","userId":"` + user + `","data":{}}`
	}
	r := post(t, srv.URL+"/v1/events/batch", keyPublisher, `{"events":[`+ev("u0")+`,`+ev("u2")+`,`+ev("u1")+`]}`)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", r.status, r.body)
	}
	var b partialBatchBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	if b.Error.Code != "partially_written" || len(b.Error.Results) != 3 {
		t.Fatalf("body %s", r.body)
	}
	for i, want := range []bool{true, false, true} {
		res := b.Error.Results[i]
		if res.Index != i || res.ID == "" || res.Written != want || (res.StreamID != "") != want || (res.Error == nil) != want {
			t.Errorf("result %d: %+v", i, res)
		}
	}
	if e := b.Error.Results[1].Error; e == nil || e.Code != "not_written" {
		t.Errorf("the refused event's error: %+v", e)
	}
}
