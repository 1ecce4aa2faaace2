package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestDashboardMount: GET / serves the dashboard's page without a token
// (it holds no data); every other unknown path, under /v1/ and /admin/
// too, keeps the JSON 404, and a data route still needs a token.
func TestDashboardMount(t *testing.T) {
	c, prefix := redistest.Shared(t)
	_, srv := newServer(t, c, prefix)

	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/html") {
		t.Errorf("GET / = %d %q, want 200 text/html", resp.StatusCode, ct)
	}
	for _, path := range []string{"/v1/nope", "/admin/nope", "/index.html", "/v1/", "/admin/"} {
		code, body := get(t, srv.URL+path)
		if e, _ := body["error"].(map[string]any); code != http.StatusNotFound || e["code"] != "not_found" {
			t.Errorf("%s = %d %v, want the JSON 404", path, code, body)
		}
	}
	if r := post(t, srv.URL+"/", "", "{}"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d %s, want 405", r.status, r.body)
	}
	for _, path := range []string{"/v1/me", "/admin/consumers"} {
		if r := getAuthed(t, srv.URL+path, ""); r.status != http.StatusUnauthorized {
			t.Errorf("%s without a token = %d %s, want 401", path, r.status, r.body)
		}
	}
}

// TestMe: GET /v1/me answers who the token is, for every role.
func TestMe(t *testing.T) {
	c, prefix := redistest.Shared(t)
	_, srv := newServer(t, c, prefix)
	for _, tt := range []struct {
		name, token string
		want        meBody
	}{
		{"viewer key", keyViewer, meBody{Subject: "api-key-2", TenantID: "tenant-a", Role: "viewer"}},
		{"publisher key", keyPublisher, meBody{Subject: "api-key-1", TenantID: "tenant-a", Role: "publisher"}},
		{"platform admin key", keyPlatform, meBody{Subject: "api-key-3", TenantID: "*", Role: "admin", CanAdmin: true}},
		{"tenant owner jwt", jwtFor(t, "tenant-b", "owner"), meBody{Subject: "user-1", TenantID: "tenant-b", Role: "owner", CanAdmin: true}},
		{"member jwt", jwtFor(t, "tenant-b", "member"), meBody{Subject: "user-1", TenantID: "tenant-b", Role: "member"}},
	} {
		r := getAuthed(t, srv.URL+"/v1/me", tt.token)
		var got meBody
		if err := json.Unmarshal(r.body, &got); err != nil || r.status != http.StatusOK || got != tt.want {
			t.Errorf("%s: %d %s, want 200 %+v", tt.name, r.status, r.body, tt.want)
		}
	}
}

// TestConsumersRoute: GET /admin/consumers lists the running consumer
// with its handlers, pending count and idle time, for admins and owners
// of any tenant; other roles get 403.
func TestConsumersRoute(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	bus, srv := newServer(t, c, prefix)
	if err := bus.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	if r := getAuthed(t, srv.URL+"/admin/consumers", keyPlatform); r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != `{"items":[]}` {
		t.Errorf("before any consumer ran: %d %s, want 200 with no items", r.status, r.body)
	}
	cons, err := bus.NewConsumer(eventbus.ConsumerConfig{Name: "dash-c1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Handle("h1", "orders.order.placed", eventbus.HandlerFunc(func(context.Context, eventbus.Event) error { return nil })); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cons.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	var got consumersBody
	waitUntil(t, 10*time.Second, "the consumer to be listed", func() bool {
		r := getAuthed(t, srv.URL+"/admin/consumers", keyPlatform)
		got = consumersBody{}
		return r.status == http.StatusOK && json.Unmarshal(r.body, &got) == nil && len(got.Items) == 1
	})
	it := got.Items[0]
	if it.Name != "dash-c1" || !slices.Equal(it.Handlers, []string{"h1"}) || it.Pending != 0 || it.LastSeen.IsZero() ||
		it.IdleMs < 0 || it.IdleMs > 60_000 {
		t.Errorf("consumer = %+v, want dash-c1 running h1, nothing pending, seen within a minute", it)
	}
	for _, tt := range []struct {
		name, token string
		want        int
	}{
		{"tenant admin", jwtFor(t, "tenant-b", "admin"), http.StatusOK},
		{"tenant owner", jwtFor(t, "tenant-b", "owner"), http.StatusOK},
		{"viewer", keyViewer, http.StatusForbidden},
		{"publisher", keyPublisher, http.StatusForbidden},
		{"member", jwtFor(t, "tenant-b", "member"), http.StatusForbidden},
	} {
		r := getAuthed(t, srv.URL+"/admin/consumers", tt.token)
		if r.status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.want)
		}
	}
}
