package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/auth"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

const (
	jwtSecret    = "http-test-secret-0123456789"
	keyPublisher = "key-publisher-tenant-a"
	keyViewer    = "key-viewer-tenant-a-000"
	keyPlatform  = "key-platform-admin-0000"
)

func testAuth() *auth.Authenticator {
	keys, err := auth.ParseAPIKeys(keyPublisher + "=tenant-a:publisher," + keyViewer + "=tenant-a:viewer," + keyPlatform + "=*:admin")
	if err != nil {
		panic(err)
	}
	return auth.New(jwtSecret, keys)
}

func jwtFor(t *testing.T, tenant, role string) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "user-1", "tenantId": tenant, "role": role, "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(jwtSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type reply struct {
	status int
	body   []byte
}

func (r reply) errorCode(t *testing.T) (code, field string) {
	var e errorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Errorf("error body lacks code or message: %s", r.body)
	}
	return e.Error.Code, e.Error.Field
}

func post(t *testing.T, url, token, body string) reply {
	t.Helper()
	return send(t, http.MethodPost, url, token, strings.NewReader(body))
}

func getAuthed(t *testing.T, url, token string) reply {
	t.Helper()
	return send(t, http.MethodGet, url, token, nil)
}

// send makes one request, with a bearer token unless token is empty.
func send(t *testing.T, method, url, token string, body io.Reader) reply {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return reply{resp.StatusCode, buf.Bytes()}
}

const okEvent = `{"type":"approval.item.approved","tenantId":"tenant-a","userId":"u1","data":{"itemId":"i1"}}`

func TestPublishRoute(t *testing.T) {
	c, prefix := redistest.Shared(t)
	_, srv := newServer(t, c, prefix)
	url := srv.URL + "/v1/events"

	r := post(t, url, keyPublisher, okEvent)
	if r.status != http.StatusCreated {
		t.Fatalf("publish = %d %s", r.status, r.body)
	}
	var res struct{ ID, StreamID string }
	if err := json.Unmarshal(r.body, &res); err != nil || res.ID == "" || res.StreamID == "" {
		t.Fatalf("body %s", r.body)
	}
	if n := c.XLen(context.Background(), rdb.NewKeys(prefix, false).Main()).Val(); n != 1 {
		t.Errorf("%d entries", n)
	}

	withID := `{"id":"evt-1","type":"approval.item.approved","tenantId":"tenant-a","userId":"u1"}`
	first := post(t, url, jwtFor(t, "tenant-a", "owner"), withID)
	again := post(t, url, jwtFor(t, "tenant-a", "owner"), withID)
	if first.status != http.StatusCreated || again.status != http.StatusOK || !bytes.Equal(first.body, again.body) {
		t.Errorf("idempotent repeat: %d %s then %d %s", first.status, first.body, again.status, again.body)
	}

	// The tenant comes from the token when the event has none.
	if r := post(t, url, keyPublisher, `{"type":"approval.item.approved","userId":"u1"}`); r.status != http.StatusCreated {
		t.Errorf("event without tenant = %d %s", r.status, r.body)
	}

	tests := []struct {
		name, token, body string
		status            int
		code, field       string
	}{
		{"no token", "", okEvent, 401, "unauthenticated", ""},
		{"bad token", "nope", okEvent, 401, "unauthenticated", ""},
		{"jwt wrong secret", "a.b.c", okEvent, 401, "unauthenticated", ""},
		{"viewer may not publish", keyViewer, okEvent, 403, "forbidden", ""},
		{"jwt viewer", jwtFor(t, "tenant-a", "member"), okEvent, 403, "forbidden", ""},
		{"other tenant", keyPublisher, strings.Replace(okEvent, "tenant-a", "tenant-b", 1), 403, "forbidden", ""},
		{"jwt other tenant", jwtFor(t, "tenant-b", "admin"), okEvent, 403, "forbidden", ""},
		{"platform token needs a tenant", keyPlatform, `{"type":"a.b.c","userId":"u"}`, 400, "invalid_event", "tenantId"},
		{"missing user", keyPublisher, `{"type":"a.b.c","tenantId":"tenant-a"}`, 400, "invalid_event", "userId"},
		{"bad type", keyPublisher, `{"type":"Bad Type","tenantId":"tenant-a","userId":"u"}`, 400, "invalid_event", "type"},
		{"data array", keyPublisher, `{"type":"a.b","tenantId":"tenant-a","userId":"u","data":[1]}`, 400, "invalid_event", "data"},
		{"bad timestamp", keyPublisher, `{"type":"a.b","tenantId":"tenant-a","userId":"u","timestamp":"noon"}`, 400, "invalid_event", "timestamp"},
		{"not json", keyPublisher, `{"type":`, 400, "invalid_json", ""},
		{"too large", keyPublisher, `{"type":"a.b","tenantId":"tenant-a","userId":"u","data":{"x":"` + strings.Repeat("y", 1100<<10) + `"}}`, 413, "too_large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, url, tt.token, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			code, field := r.errorCode(t)
			if code != tt.code || field != tt.field {
				t.Errorf("code %q field %q, want %q %q", code, field, tt.code, tt.field)
			}
		})
	}
}

func TestPublishSizeLimitIsTheEnvelope(t *testing.T) {
	c, prefix := redistest.Shared(t)
	_, srv := newServer(t, c, prefix)
	// Just over 1 MiB of data: the body passes the reader limit, the
	// envelope check refuses it with 413.
	body := `{"type":"a.b","tenantId":"tenant-a","userId":"u","data":{"x":"` + strings.Repeat("y", 1<<20) + `"}}`
	r := post(t, srv.URL+"/v1/events", keyPublisher, body)
	if code, _ := r.errorCode(t); r.status != http.StatusRequestEntityTooLarge || code != "too_large" {
		t.Errorf("status %d code %s", r.status, code)
	}
}

func TestPublishBatchRoute(t *testing.T) {
	c, prefix := redistest.Shared(t)
	_, srv := newServer(t, c, prefix)
	url := srv.URL + "/v1/events/batch"
	ctx := context.Background()

	r := post(t, url, keyPublisher, "["+okEvent+","+okEvent+"]")
	var list []struct{ ID, StreamID string }
	if r.status != http.StatusCreated || json.Unmarshal(r.body, &list) != nil || len(list) != 2 || list[0].StreamID >= list[1].StreamID {
		t.Fatalf("batch = %d %s", r.status, r.body)
	}
	r = post(t, url, keyPublisher, `{"events":[`+okEvent+`]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("wrapped batch = %d %s", r.status, r.body)
	}
	withIDs := `[{"id":"b1","type":"a.b","tenantId":"tenant-a","userId":"u"},{"id":"b2","type":"a.b","tenantId":"tenant-a","userId":"u"}]`
	if r := post(t, url, keyPublisher, withIDs); r.status != http.StatusCreated {
		t.Fatalf("ids batch = %d %s", r.status, r.body)
	}
	if r := post(t, url, keyPublisher, withIDs); r.status != http.StatusOK {
		t.Fatalf("repeated ids batch = %d %s, want 200", r.status, r.body)
	}
	before := c.XLen(ctx, rdb.NewKeys(prefix, false).Main()).Val()

	r = post(t, url, keyPublisher, "["+okEvent+`,{"type":"a.b","tenantId":"tenant-a"}]`)
	var e errorBody
	json.Unmarshal(r.body, &e)
	if r.status != http.StatusBadRequest || e.Error.Field != "userId" || e.Error.Index == nil || *e.Error.Index != 1 {
		t.Errorf("bad batch = %d %s, want 400 naming event 1 userId", r.status, r.body)
	}
	if r := post(t, url, keyPublisher, "["+okEvent+","+strings.Replace(okEvent, "tenant-a", "tenant-b", 1)+"]"); r.status != http.StatusForbidden {
		t.Errorf("foreign event in batch = %d", r.status)
	}
	if r := post(t, url, keyPublisher, "[]"); r.status != http.StatusBadRequest {
		t.Errorf("empty batch = %d", r.status)
	}
	if after := c.XLen(ctx, rdb.NewKeys(prefix, false).Main()).Val(); after != before {
		t.Errorf("refused batches wrote %d entries", after-before)
	}
}

func TestPublishRouteRedisDown(t *testing.T) {
	rs := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: rs.Addr(), DialerRetries: 1, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	_, srv := newServer(t, c, "down")
	rs.Stop()
	for _, path := range []string{"/v1/events", "/v1/events/batch"} {
		body := okEvent
		if strings.HasSuffix(path, "batch") {
			body = "[" + okEvent + "]"
		}
		r := post(t, srv.URL+path, keyPublisher, body)
		if code, _ := r.errorCode(t); r.status != http.StatusServiceUnavailable || code != "redis_unavailable" {
			t.Errorf("%s with Redis down = %d %s", path, r.status, r.body)
		}
	}
}

func TestEventStatusRoute(t *testing.T) {
	c, prefix := redistest.Shared(t)
	bus, srv := newServer(t, c, prefix)
	if err := bus.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := post(t, srv.URL+"/v1/events", keyPublisher, okEvent)
	var res struct{ ID, StreamID string }
	json.Unmarshal(r.body, &res)
	withID := post(t, srv.URL+"/v1/events", keyPublisher, `{"id":"order-9","type":"a.b","tenantId":"tenant-a","userId":"u"}`)
	if withID.status != http.StatusCreated {
		t.Fatal(withID.status)
	}
	for _, id := range []string{res.ID, "order-9"} {
		got := getAuthed(t, srv.URL+"/v1/events/"+id, keyViewer)
		var st struct{ EventID, State, TenantID string }
		if got.status != http.StatusOK || json.Unmarshal(got.body, &st) != nil || st.State != "PENDING" || st.TenantID != "tenant-a" {
			t.Errorf("status of %s = %d %s, want 200 PENDING", id, got.status, got.body)
		}
	}
	if got := getAuthed(t, srv.URL+"/v1/events/"+res.ID, keyPlatform); got.status != http.StatusOK {
		t.Errorf("platform token: %d", got.status)
	}
	if got := getAuthed(t, srv.URL+"/v1/events/"+res.ID, jwtFor(t, "tenant-b", "admin")); got.status != http.StatusNotFound {
		t.Errorf("other tenant: %d %s, want 404", got.status, got.body)
	}
	if got := getAuthed(t, srv.URL+"/v1/events/01M8CQBDJDK8HJJ84QSN7WEB8Y", keyPublisher); got.status != http.StatusNotFound {
		t.Errorf("unknown id: %d, want 404", got.status)
	}
	if got := getAuthed(t, srv.URL+"/v1/events/"+res.ID, "nope"); got.status != http.StatusUnauthorized {
		t.Errorf("bad token: %d", got.status)
	}
}
