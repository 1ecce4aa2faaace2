package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestBrowseEventsRoute: GET /v1/events for every kind of token and
// tenantId (a tenant token sees its own tenant only, and another tenant
// answers 404; a platform token sees all or the tenant it names), the
// filters, paging by cursor, and 400 naming the bad parameter.
func TestBrowseEventsRoute(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	bus, srv := newServer(t, c, prefix)
	if err := bus.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	var all []string // "type/tenant" in stream order
	for _, e := range []struct{ typ, tenant string }{
		{"orders.order.created", "tenant-a"}, {"orders.order.paid", "tenant-b"},
		{"billing.invoice.sent", "tenant-a"}, {"orders.order.created", "tenant-b"},
	} {
		if _, err := bus.Publish(ctx, eventbus.Event{Type: e.typ, TenantID: e.tenant, UserID: "u"}); err != nil {
			t.Fatal(err)
		}
		all = append(all, e.typ+"/"+e.tenant)
	}
	adminB := jwtFor(t, "tenant-b", "admin")
	viewerB := jwtFor(t, "tenant-b", "viewer")
	type page struct {
		Items []struct {
			StreamID string         `json:"streamId"`
			Time     time.Time      `json:"time"`
			Event    eventbus.Event `json:"event"`
		} `json:"items"`
		NextCursor *string `json:"nextCursor"`
	}
	list := func(r reply) []string {
		var p page
		if err := json.Unmarshal(r.body, &p); err != nil || p.Items == nil || p.NextCursor == nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		var out []string
		for _, it := range p.Items {
			out = append(out, it.Event.Type+"/"+it.Event.TenantID)
		}
		return out
	}
	pick := func(idx ...int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, all[i])
		}
		return out
	}
	for _, tt := range []struct {
		name, token, query string
		want               int
		items              []string
		field              string
	}{
		{"tenant viewer, own tenant", keyViewer, "", 200, pick(0, 2), ""},
		{"tenant viewer, own tenantId", keyViewer, "tenantId=tenant-a", 200, pick(0, 2), ""},
		{"tenant viewer, other tenantId", keyViewer, "tenantId=tenant-b", 404, nil, ""},
		{"tenant publisher", keyPublisher, "", 200, pick(0, 2), ""},
		{"tenant-b admin", adminB, "", 200, pick(1, 3), ""},
		{"tenant-b viewer, type", viewerB, "type=orders.order.created", 200, pick(3), ""},
		{"tenant-b admin, other tenantId", adminB, "tenantId=tenant-a", 404, nil, ""},
		{"platform, all", keyPlatform, "", 200, all, ""},
		{"platform, empty tenantId", keyPlatform, "tenantId=", 200, all, ""},
		{"platform, tenant-b", keyPlatform, "tenantId=tenant-b", 200, pick(1, 3), ""},
		{"platform, unknown tenant", keyPlatform, "tenantId=tenant-z", 200, nil, ""},
		{"platform, blank tenantId", keyPlatform, "tenantId=%20", 400, nil, "tenantId"},
		{"types comma", keyPlatform, "type=orders.order.paid,billing.*", 200, pick(1, 2), ""},
		{"types repeated", keyPlatform, "type=orders.order.paid&type=billing.*", 200, pick(1, 2), ""},
		{"future from", keyPlatform, "from=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), 200, nil, ""},
		{"past to", keyPlatform, "to=2020-01-01T00:00:00Z", 200, nil, ""},
		{"range", keyPlatform, "from=2020-01-01T00:00:00Z&to=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339Nano)), 200, all, ""},
		{"bad type", keyPlatform, "type=orders*", 400, nil, "type"},
		{"bad from", keyPlatform, "from=yesterday", 400, nil, "from"},
		{"bad to", keyPlatform, "to=2020-13-01", 400, nil, "to"},
		{"to before from", keyPlatform, "from=2021-01-01T00:00:00Z&to=2020-01-01T00:00:00Z", 400, nil, "to"},
		{"bad cursor", keyPlatform, "cursor=abc", 400, nil, "cursor"},
		{"limit 0", keyPlatform, "limit=0", 400, nil, "limit"},
		{"limit 101", keyPlatform, "limit=101", 400, nil, "limit"},
		{"limit x", keyPlatform, "limit=x", 400, nil, "limit"},
		{"no token", "", "", 401, nil, ""},
	} {
		r := getAuthed(t, srv.URL+"/v1/events?"+tt.query, tt.token)
		if r.status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.want)
			continue
		}
		if tt.want != 200 {
			code, field := r.errorCode(t)
			if field != tt.field || (tt.want == 404 && code != "not_found") {
				t.Errorf("%s: code %q field %q, want field %q", tt.name, code, field, tt.field)
			}
			continue
		}
		if got := list(r); !slices.Equal(got, tt.items) {
			t.Errorf("%s: items %v, want %v", tt.name, got, tt.items)
		}
	}
	// Paging by cursor returns each event once, in order.
	var got []string
	cursor := ""
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatal("too many pages")
		}
		r := getAuthed(t, srv.URL+"/v1/events?limit=1&cursor="+url.QueryEscape(cursor), keyPlatform)
		if r.status != 200 {
			t.Fatalf("page %d: %d %s", i, r.status, r.body)
		}
		got = append(got, list(r)...)
		var p page
		_ = json.Unmarshal(r.body, &p)
		if *p.NextCursor == "" {
			break
		}
		cursor = *p.NextCursor
	}
	if !slices.Equal(got, all) {
		t.Errorf("paged %v, want %v", got, all)
	}
	// The status route still answers next to it.
	if r := getAuthed(t, srv.URL+"/v1/events/nope", keyPlatform); r.status != http.StatusNotFound {
		t.Errorf("GET /v1/events/nope = %d", r.status)
	}
}
