package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/eventbus/internal/redistest"
)

// TestProbesAnswerWithinTheirBudgetWhileRedisIsPaused: with Redis frozen
// (SIGSTOP) /readyz and /health/events answer 503 within the 2 s probe
// budget (they took 5 s when go-redis ignored the context deadline).
func TestProbesAnswerWithinTheirBudgetWhileRedisIsPaused(t *testing.T) {
	if testing.Short() {
		t.Skip("pauses its own Redis and times the probes: slow; run without -short")
	}
	rs := redistest.Start(t)
	bus := busFromSettings(t, map[string]string{"REDIS_URL": rs.URL(), "EVENTBUS_PREFIX": "paused"})
	if err := bus.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	t.Cleanup(srv.Close)
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before the pause = %d %v", code, body)
	}
	rs.Pause()
	defer rs.Resume()
	for _, path := range []string{"/readyz", "/health/events", "/readyz"} {
		start := time.Now()
		code, body := get(t, srv.URL+path)
		took := time.Since(start)
		// The probe budget is 2 s; before the fix go-redis held the call for
		// its 3 s read timeout whatever the deadline, so 2.9 s separates the
		// two with 0.9 s to spare for a loaded machine.
		if code != http.StatusServiceUnavailable || took > 2900*time.Millisecond {
			t.Errorf("%s with Redis paused = %d after %v (%v), want 503 within the 2s probe budget", path, code, took, body)
		}
		t.Logf("%s answered %d in %v", path, code, took)
	}
	rs.Resume()
	deadline := time.Now().Add(15 * time.Second)
	for code, _ := get(t, srv.URL+"/readyz"); code != http.StatusOK; code, _ = get(t, srv.URL+"/readyz") {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after resume = %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPublishWithWrongPasswordWritesNothingAndSaysSo: a Redis that refuses
// our password must never yield 201 (it did, with "streamId": ""); the
// answer is 503 "nothing was written". Needs engineer A's publish-path fix.
func TestPublishWithWrongPasswordWritesNothingAndSaysSo(t *testing.T) {
	rs := redistest.Start(t)
	if err := rs.Client(t).ConfigSet(context.Background(), "requirepass", "secret").Err(); err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(rs.URL(), "redis://", "redis://:wrong@", 1)
	bus := busFromSettings(t, map[string]string{"REDIS_URL": bad, "EVENTBUS_PREFIX": "wrongpw"})
	srv := httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	t.Cleanup(srv.Close)
	for _, tt := range []struct{ path, body string }{
		{"/v1/events", okEvent},
		{"/v1/events", strings.Replace(okEvent, "{", `{"id":"caller-id-1",`, 1)},
		{"/v1/events/batch", "[" + okEvent + "," + okEvent + "]"},
	} {
		r := post(t, srv.URL+tt.path, keyPublisher, tt.body)
		var e errorBody
		_ = json.Unmarshal(r.body, &e)
		if r.status != http.StatusServiceUnavailable || e.Error.Code != "redis_unavailable" || !strings.Contains(e.Error.Message, "nothing was written") {
			t.Errorf("POST %s against a Redis refusing our password = %d %s, want 503 redis_unavailable, nothing was written", tt.path, r.status, r.body)
		}
	}
	good := rs.Client(t)
	if err := good.Do(context.Background(), "AUTH", "secret").Err(); err != nil {
		t.Fatal(err)
	}
	main, _, _ := bus.Streams()
	if n, _ := good.Exists(context.Background(), main).Result(); n != 0 {
		t.Errorf("the main stream exists: something was written")
	}
}

// TestReadyzNoticesVanishedStreams: /readyz answered 200 for seconds after
// the streams were deleted; it now checks them, and the set-up loop is
// asked to recreate them at once.
func TestReadyzNoticesVanishedStreams(t *testing.T) {
	bus, c, _ := sharedBus(t)
	srv := httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := bus.Run(ctx); err != nil {
			t.Errorf("Run: %v", err) // nil after a cancellation
		}
	}()
	t.Cleanup(func() { cancel(); <-done })

	waitReady := func(want int) int {
		t.Helper()
		var code int
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if code, _ = get(t, srv.URL+"/readyz"); code == want {
				return code
			}
		}
		return code
	}
	if code := waitReady(http.StatusOK); code != http.StatusOK {
		t.Fatalf("/readyz after set-up = %d", code)
	}
	main, dlq, replay := bus.Streams()
	if err := c.Del(context.Background(), main, dlq, replay).Err(); err != nil {
		t.Fatal(err)
	}
	// At once: no waiting for the set-up loop's periodic check.
	code, body := get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz right after the streams were deleted = %d %v, want 503", code, body)
	}
	// The check asked for set-up: ready again well before the loop's 5 s
	// tick would have noticed (asserted loosely: within 10 s).
	start := time.Now()
	if code := waitReady(http.StatusOK); code != http.StatusOK {
		t.Fatalf("/readyz never recovered: %d", code)
	}
	t.Logf("ready again after %v", time.Since(start))
	if n, _ := c.Exists(context.Background(), main, dlq, replay).Result(); n != 3 {
		t.Errorf("%d of 3 streams recreated", n)
	}
}

// TestHealthEventsPublicView: anonymous callers get numbers and generic
// warnings, never stream names, Redis addresses or error text; an admin
// token, or HealthDetails, gets the full report.
func TestHealthEventsPublicView(t *testing.T) {
	rs := redistest.Start(t)
	bus := busFromSettings(t, map[string]string{"REDIS_URL": rs.URL(), "EVENTBUS_PREFIX": "public"})
	if err := bus.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	plain := httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	t.Cleanup(plain.Close)
	detailed := httptest.NewServer(New(bus, Options{Auth: testAuth(), HealthDetails: true}))
	t.Cleanup(detailed.Close)
	main, _, _ := bus.Streams()

	raw := func(url, token string) (int, string) {
		t.Helper()
		r := send(t, http.MethodGet, url, token, nil)
		return r.status, string(r.body)
	}

	code, body := raw(plain.URL+"/health/events", "")
	t.Logf("anonymous view: %s", body)
	if code != http.StatusOK || strings.Contains(body, main) || strings.Contains(body, `"name"`) {
		t.Errorf("anonymous, healthy: %d %s", code, body)
	}
	var pub struct {
		Healthy bool
		Streams map[string]struct {
			Exists bool
			Length int64
			Groups []struct {
				Self               bool
				Consumers, Pending int64
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &pub); err != nil || !pub.Healthy || !pub.Streams["main"].Exists ||
		len(pub.Streams["main"].Groups) != 1 || !pub.Streams["main"].Groups[0].Self {
		t.Errorf("anonymous view %s: %v", body, err)
	}
	for _, tok := range []string{keyPlatform, jwtFor(t, "tenant-a", "owner")} {
		if code, body := raw(plain.URL+"/health/events", tok); code != http.StatusOK || !strings.Contains(body, main) {
			t.Errorf("admin/owner token: %d %s, want the full report", code, body)
		}
	}
	for _, tok := range []string{keyPublisher, keyViewer, "junk"} {
		if _, body := raw(plain.URL+"/health/events", tok); strings.Contains(body, main) {
			t.Errorf("token %q (not admin) sees names: %s", tok, body)
		}
	}
	if code, body := raw(detailed.URL+"/health/events", ""); code != http.StatusOK || !strings.Contains(body, main) {
		t.Errorf("HealthDetails, anonymous: %d %s, want the full report", code, body)
	}

	rs.Stop()
	code, body = raw(plain.URL+"/health/events", "")
	t.Logf("anonymous view, Redis down: %s", body)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "redis unreachable") {
		t.Errorf("anonymous, Redis down: %d %s", code, body)
	}
	for _, leak := range []string{"127.0.0.1", rs.Addr(), "refused", "dial", main} {
		if strings.Contains(body, leak) {
			t.Errorf("anonymous view with Redis down shows %q: %s", leak, body)
		}
	}
	if _, body := raw(plain.URL+"/health/events", keyPlatform); !strings.Contains(body, "refused") && !strings.Contains(body, "unavailable") {
		t.Errorf("admin view with Redis down lacks the error: %s", body)
	}
}

// TestPublishToAPausedRedisAnswersOutcomeUnknown: a publish whose write
// was sent to a frozen Redis must not claim "nothing was written": it
// answers 504 outcome_unknown with the event id, within the publish
// timeout, and a retry with that id after Redis resumes is deduplicated
// (written once). Needs engineer A's publish path.
func TestPublishToAPausedRedisAnswersOutcomeUnknown(t *testing.T) {
	if testing.Short() {
		t.Skip("pauses its own Redis and waits out the publish timeout: slow; run without -short")
	}
	rs := redistest.Start(t)
	bus := busFromSettings(t, map[string]string{"REDIS_URL": rs.URL(), "EVENTBUS_PREFIX": "pausedpub", "EVENTBUS_PUBLISH_TIMEOUT": "1s"})
	srv := httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	t.Cleanup(srv.Close)
	if r := post(t, srv.URL+"/v1/events", keyPublisher, okEvent); r.status != http.StatusCreated {
		t.Fatalf("publish before the pause = %d %s", r.status, r.body)
	}
	rs.Pause()
	defer rs.Resume()
	start := time.Now()
	r := post(t, srv.URL+"/v1/events", keyPublisher, okEvent)
	took := time.Since(start)
	var e errorBody
	_ = json.Unmarshal(r.body, &e)
	if r.status != http.StatusGatewayTimeout || e.Error.Code != "outcome_unknown" || len(e.Error.EventIDs) != 1 {
		t.Fatalf("publish to a paused Redis = %d %s after %v, want 504 outcome_unknown with the event id", r.status, r.body, took)
	}
	if took > 4*time.Second {
		t.Errorf("answered after %v with a 1s publish timeout", took)
	}
	rs.Resume()
	id := e.Error.EventIDs[0]
	retry := strings.Replace(okEvent, "{", `{"id":"`+id+`",`, 1)
	var rr reply
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if rr = post(t, srv.URL+"/v1/events", keyPublisher, retry); rr.status == http.StatusCreated || rr.status == http.StatusOK {
			break
		}
	}
	if rr.status != http.StatusCreated && rr.status != http.StatusOK {
		t.Fatalf("retry with id %s after resume = %d %s", id, rr.status, rr.body)
	}
	main, _, _ := bus.Streams()
	if n := rs.Client(t).XLen(context.Background(), main).Val(); n != 2 {
		t.Errorf("%d entries after one publish, one unknown outcome and its retry; want 2 (the retry deduplicated)", n)
	}
}
