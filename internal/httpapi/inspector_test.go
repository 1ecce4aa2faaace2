package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestEventStatusRouteReadsThroughTheInspector: GET /v1/events/{id}
// answers, for every token and query, exactly what the Inspector answers
// in the token's scope (its own tenant; a platform token: ?tenantId= or
// every tenant), and 404 where the Inspector finds nothing.
func TestEventStatusRouteReadsThroughTheInspector(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	bus, srv := newServer(t, c, prefix)
	if err := bus.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	made, err := bus.Publish(ctx, eventbus.Event{Type: "a.b", TenantID: "tenant-a", UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"tenant-a", "tenant-b"} {
		if _, err := bus.Publish(ctx, eventbus.Event{ID: "order-9", Type: "a.b", TenantID: tenant, UserID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	in := bus.Inspector()
	adminB := jwtFor(t, "tenant-b", "admin")
	for _, tt := range []struct {
		name, token, path string
		scope             eventbus.Scope
		want              int
	}{
		{"own bus-made id", keyViewer, made.ID, eventbus.TenantScope("tenant-a"), http.StatusOK},
		{"own caller id", keyViewer, "order-9", eventbus.TenantScope("tenant-a"), http.StatusOK},
		{"other tenant's bus-made id", adminB, made.ID, eventbus.TenantScope("tenant-b"), http.StatusNotFound},
		{"same caller id, own tenant", adminB, "order-9", eventbus.TenantScope("tenant-b"), http.StatusOK},
		{"query tenant ignored for a tenant token", adminB, made.ID + "?tenantId=tenant-a", eventbus.TenantScope("tenant-b"), http.StatusNotFound},
		{"platform, bus-made id", keyPlatform, made.ID, eventbus.AllTenants(), http.StatusOK},
		{"platform, empty tenantId", keyPlatform, made.ID + "?tenantId=", eventbus.AllTenants(), http.StatusOK},
		{"platform, caller id without tenant", keyPlatform, "order-9", eventbus.AllTenants(), http.StatusNotFound},
		{"platform, caller id of tenant-a", keyPlatform, "order-9?tenantId=tenant-a", eventbus.TenantScope("tenant-a"), http.StatusOK},
		{"platform, caller id of tenant-b", keyPlatform, "order-9?tenantId=tenant-b", eventbus.TenantScope("tenant-b"), http.StatusOK},
		{"platform, bus-made id in the wrong tenant", keyPlatform, made.ID + "?tenantId=tenant-b", eventbus.TenantScope("tenant-b"), http.StatusNotFound},
		{"platform, blank tenantId", keyPlatform, made.ID + "?tenantId=%20", eventbus.TenantScope(" "), http.StatusNotFound},
	} {
		got := getAuthed(t, srv.URL+"/v1/events/"+tt.path, tt.token)
		if got.status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, got.status, got.body, tt.want)
			continue
		}
		id, _, _ := bytes.Cut([]byte(tt.path), []byte("?"))
		st, err := in.Status(ctx, tt.scope, string(id))
		if tt.want != http.StatusOK {
			if err == nil {
				t.Errorf("%s: the route answered %d, the Inspector found %+v", tt.name, got.status, st)
			}
			continue
		}
		want, _ := json.Marshal(st)
		if err != nil || !bytes.Equal(bytes.TrimSpace(got.body), want) {
			t.Errorf("%s: route %s, Inspector %s %v", tt.name, got.body, want, err)
		}
	}
}
