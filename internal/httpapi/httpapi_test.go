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
	"github.com/hyvve/eventbus/internal/redistest"
)

func newServer(t *testing.T, c redis.UniversalClient, prefix string) (*eventbus.Bus, *httptest.Server) {
	t.Helper()
	bus, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	t.Cleanup(srv.Close)
	return bus, srv
}

func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	return getAs(t, url, "")
}

// getAs is get with a bearer token (none when token is empty).
func getAs(t *testing.T, url, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: content type %q", url, ct)
	}
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: decode: %v", url, err)
	}
	return resp.StatusCode, body
}

func TestHealthRoutes(t *testing.T) {
	c, prefix := redistest.Shared(t)
	bus, srv := newServer(t, c, prefix)

	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before set-up = %d %v, want 503", code, body)
	}
	if err := bus.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after set-up = %d", code)
	}
	// The full report needs an admin token (see TestHealthEventsPublicView
	// for the anonymous view).
	code, body := getAs(t, srv.URL+"/health/events", keyPlatform)
	if code != http.StatusOK || body["healthy"] != true {
		t.Fatalf("/health/events = %d %v", code, body)
	}
	for _, k := range []string{"timestamp", "redis", "streams"} {
		if _, ok := body[k]; !ok {
			t.Errorf("missing %q in %v", k, body)
		}
	}
	streams := body["streams"].(map[string]any)
	for _, name := range []string{"main", "dlq", "replay"} {
		s, ok := streams[name].(map[string]any)
		if !ok {
			t.Fatalf("streams.%s missing", name)
		}
		for _, k := range []string{"name", "exists", "length", "firstEntryId", "lastEntryId", "groups"} {
			if _, ok := s[k]; !ok {
				t.Errorf("streams.%s lacks %q", name, k)
			}
		}
		g := s["groups"].([]any)[0].(map[string]any)
		for _, k := range []string{"name", "consumers", "pending", "lastDeliveredId", "lag"} {
			if _, ok := g[k]; !ok {
				t.Errorf("streams.%s.groups[0] lacks %q", name, k)
			}
		}
	}
}

func TestHealthRoutesWithRedisDown(t *testing.T) {
	rs := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: rs.Addr(), DialerRetries: 1, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	bus, srv := newServer(t, c, "down")
	if err := bus.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	rs.Stop()
	code, body := get(t, srv.URL+"/health/events")
	if code != http.StatusServiceUnavailable || body["healthy"] != false {
		t.Errorf("/health/events with Redis down = %d %v", code, body)
	}
	code, body = get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Redis down = %d", code)
	}
	if e, _ := body["error"].(map[string]any); e["code"] != "redis_unavailable" {
		t.Errorf("/readyz error = %v, want code redis_unavailable", body)
	}
}

func TestUnknownRoutesAnswerJSON(t *testing.T) {
	c, prefix := redistest.Shared(t)
	_, srv := newServer(t, c, prefix)
	for _, path := range []string{"/nope", "/v1/unknown"} {
		code, body := get(t, srv.URL+path)
		if e, _ := body["error"].(map[string]any); code != http.StatusNotFound || e["code"] != "not_found" {
			t.Errorf("%s = %d %v", path, code, body)
		}
	}
}
