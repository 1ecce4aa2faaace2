package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/config"
	"github.com/hyvve/eventbus/internal/redistest"
)

// startServer serves the API with NewServer (connection timeouts and
// limits) on a loopback port and returns its base URL and address.
func startServer(t *testing.T, bus *eventbus.Bus, opt Options) (baseURL, addr string) {
	t.Helper()
	if opt.Auth == nil {
		opt.Auth = testAuth()
	}
	srv := NewServer(bus, opt)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return "http://" + ln.Addr().String(), ln.Addr().String()
}

func sharedBus(t *testing.T) (*eventbus.Bus, redis.UniversalClient, string) {
	t.Helper()
	c, prefix := redistest.Shared(t)
	bus, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return bus, c, prefix
}

// busFromSettings builds the bus as the server does: the Redis client
// from internal/config (its timeouts are part of what is tested).
func busFromSettings(t *testing.T, env map[string]string) *eventbus.Bus {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s, err := config.Load(fs, nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	client, err := s.RedisClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	bus, err := eventbus.New(s.BusConfig(client, nil))
	if err != nil {
		t.Fatal(err)
	}
	return bus
}

// waitClosed reads from conn until the server closes it (EOF or reset) and
// returns how long that took, failing after limit.
func waitClosed(t *testing.T, conn net.Conn, limit time.Duration) (time.Duration, []byte) {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	got, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v (read %q)", limit, got)
	}
	return time.Since(start), got
}

func TestIdleKeepAliveConnectionIsClosed(t *testing.T) {
	bus, _, _ := sharedBus(t)
	_, addr := startServer(t, bus, Options{Limits: Limits{IdleTimeout: 300 * time.Millisecond}})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: %v %v", resp, err)
	}
	resp.Body.Close()
	// Idle now: the server must close the connection after IdleTimeout
	// (the old server kept it open for ever).
	if took, _ := waitClosed(t, conn, 10*time.Second); took < 200*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", took)
	}
}

func TestBodyThatNeverArrivesIsCut(t *testing.T) {
	bus, _, _ := sharedBus(t)
	_, addr := startServer(t, bus, Options{Limits: Limits{ReadTimeout: 500 * time.Millisecond}})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers, then 10 of the promised 1000 bytes, then nothing.
	fmt.Fprintf(conn, "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"type\":\"a", keyPublisher)
	took, got := waitClosed(t, conn, 10*time.Second)
	if bytes.Contains(got, []byte(" 201 ")) {
		t.Errorf("a cut body was published: %q", got)
	}
	t.Logf("connection closed after %v: %q", took, got)
}

func TestHeadersOverTheLimitAnswer431(t *testing.T) {
	bus, _, _ := sharedBus(t)
	base, _ := startServer(t, bus, Options{Limits: Limits{MaxHeaderBytes: 8 << 10}})
	req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
	req.Header.Set("X-Filler", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers over an 8 KiB limit = %d, want 431", resp.StatusCode)
	}
	// Within the limit still works.
	req.Header.Set("X-Filler", strings.Repeat("a", 1<<10))
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("small headers: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// held is a publish whose body is never finished, so that it stays in
// flight (holding a request slot and its body reservation) until release.
type held struct {
	t             *testing.T
	addr          string
	contentLength int
	conn          net.Conn
}

// holdRequest starts a held request; it is released when the test ends.
func holdRequest(t *testing.T, addr string, contentLength int) *held {
	t.Helper()
	h := &held{t: t, addr: addr, contentLength: contentLength}
	h.start()
	t.Cleanup(h.release)
	return h
}

func (h *held) start() {
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		h.t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/events/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n[", keyPublisher, h.contentLength)
	h.conn = conn
}

func (h *held) release() { h.conn.Close() }

// ensure starts the request again if the server already answered it (it
// may have been refused while a request of the test itself held the
// slot); it reports whether the request is still in flight.
func (h *held) ensure() bool {
	_ = h.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := h.conn.Read(b[:])
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	h.conn.Close()
	h.start()
	return false
}

// waitStatus polls GET/POST until the answer has status want or the
// deadline passes, returning the last reply.
func waitStatus(t *testing.T, want int, do func() reply) reply {
	t.Helper()
	var r reply
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if r = do(); r.status == want {
			return r
		}
	}
	return r
}

func TestConcurrencyLimitAnswers503AndProbesStillAnswer(t *testing.T) {
	bus, _, _ := sharedBus(t)
	if err := bus.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	base, addr := startServer(t, bus, Options{Limits: Limits{MaxRequests: 1, ReadTimeout: time.Minute}})
	hold := holdRequest(t, addr, 1000)

	var retryAfter string
	r := waitStatus(t, http.StatusServiceUnavailable, func() reply {
		hold.ensure()
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/events/nope", nil)
		req.Header.Set("Authorization", "Bearer "+keyPublisher)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		retryAfter = resp.Header.Get("Retry-After")
		return reply{resp.StatusCode, b}
	})
	if r.status != http.StatusServiceUnavailable || retryAfter == "" {
		t.Fatalf("with the only slot taken: %d %s (Retry-After %q), want 503 with Retry-After", r.status, r.body, retryAfter)
	}
	if code, _ := r.errorCode(t); code != "overloaded" {
		t.Errorf("code %q", code)
	}
	for _, p := range []string{"/healthz", "/readyz", "/health/events"} {
		if code, body := get(t, base+p); code != http.StatusOK {
			t.Errorf("probe %s while requests are full = %d %v", p, code, body)
		}
	}
	hold.release()
	if r := waitStatus(t, http.StatusNotFound, func() reply { return getAuthed(t, base+"/v1/events/nope", keyPublisher) }); r.status != http.StatusNotFound {
		t.Errorf("after the slot was freed: %d %s", r.status, r.body)
	}
}

func TestBodyMemoryBudget(t *testing.T) {
	bus, _, _ := sharedBus(t)
	budget := int64(3 << 20)
	base, addr := startServer(t, bus, Options{Limits: Limits{MaxBodyMemory: budget, ReadTimeout: time.Minute}})

	// A body larger than the whole budget can never be served: 413, at
	// once, before a byte of it is read.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/events/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n[", keyPublisher, budget+1)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("body over the budget: %v %v, want 413", resp, err)
	}

	// Two bodies in flight take 2.5 MiB of the 3 MiB: a third of 1 MiB
	// waits for none of them and is refused with 503.
	holdBig := holdRequest(t, addr, 2<<20)
	holdSmall := holdRequest(t, addr, 512<<10)
	batch := "[" + okEvent + "]"
	pad := strings.Repeat(" ", 1<<20-len(batch))
	r := waitStatus(t, http.StatusServiceUnavailable, func() reply {
		if !holdBig.ensure() || !holdSmall.ensure() {
			return reply{}
		}
		return post(t, base+"/v1/events/batch", keyPublisher, batch+pad)
	})
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("1 MiB body with 2.5 of 3 MiB held = %d %s, want 503", r.status, r.body)
	}
	if code, _ := r.errorCode(t); code != "overloaded" {
		t.Errorf("code %q", code)
	}
	holdSmall.release()
	if r := waitStatus(t, http.StatusCreated, func() reply { return post(t, base+"/v1/events/batch", keyPublisher, batch+pad) }); r.status != http.StatusCreated {
		t.Errorf("after a body was released: %d %s", r.status, r.body)
	}
}

func TestRequestIDs(t *testing.T) {
	bus, _, _ := sharedBus(t)
	srv := httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	t.Cleanup(srv.Close)
	do := func(id string) string {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/healthz", nil)
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Request-Id")
	}
	a, b := do(""), do("")
	if a == "" || b == "" || a == b {
		t.Errorf("generated ids %q %q: want two different ids", a, b)
	}
	if got := do("trace-42.abc:def_1"); got != "trace-42.abc:def_1" {
		t.Errorf("sane incoming id answered %q", got)
	}
	for _, bad := range []string{"has space", strings.Repeat("x", 200), "quote\"", "<script>"} {
		if got := do(bad); got == bad || got == "" {
			t.Errorf("incoming id %q answered %q, want a generated one", bad, got)
		}
	}
	// Errors carry it too.
	r := send(t, http.MethodGet, srv.URL+"/nope", "", nil)
	if r.status != http.StatusNotFound {
		t.Errorf("/nope = %d", r.status)
	}
}

func TestOtherMethodsAnswer405WithAllow(t *testing.T) {
	bus, _, _ := sharedBus(t)
	srv := httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	t.Cleanup(srv.Close)
	tests := []struct {
		method, path, allow string
	}{
		{http.MethodPost, "/healthz", "GET, HEAD"},
		{http.MethodDelete, "/readyz", "GET, HEAD"},
		{http.MethodPut, "/health/events", "GET, HEAD"},
		{http.MethodPut, "/v1/events", "GET, HEAD, POST"}, // GET browses (item 3 of issue 10)
		{http.MethodDelete, "/v1/events/batch", "GET, HEAD, POST"},
		{http.MethodPatch, "/v1/events/abc", "GET, HEAD"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body errorBody
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tt.allow || body.Error.Code != "method_not_allowed" {
			t.Errorf("%s %s = %d Allow %q body %+v, want 405 Allow %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Allow"), body, tt.allow)
		}
	}
	if r := send(t, http.MethodGet, srv.URL+"/nope", "", nil); r.status != http.StatusNotFound {
		t.Errorf("unknown path = %d", r.status)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestInternalErrorsAreLoggedNotShown(t *testing.T) {
	bus, c, _ := sharedBus(t)
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	srv := httptest.NewServer(New(bus, Options{Auth: testAuth(), Logger: logger}))
	t.Cleanup(srv.Close)
	// The main stream is a string: XADD fails with WRONGTYPE, an error
	// that is neither the caller's fault nor an outage.
	main, _, _ := bus.Streams()
	if err := c.Set(context.Background(), main, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", strings.NewReader(okEvent))
	req.Header.Set("Authorization", "Bearer "+keyPublisher)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("publish onto a string key = %d %s, want 500", resp.StatusCode, body)
	}
	if bytes.Contains(body, []byte("WRONGTYPE")) || bytes.Contains(body, []byte(main)) || !bytes.Contains(body, []byte(id)) || id == "" {
		t.Errorf("500 body %s: want a generic message with the request id %q and no internal text", body, id)
	}
	if l := logs.String(); !strings.Contains(l, id) || !strings.Contains(l, "WRONGTYPE") {
		t.Errorf("log lacks the request id %q or the error: %s", id, l)
	}
}

func TestPublishErrorMapping(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter bool
		ids        []string
		msg        string
	}{
		{"unavailable", fmt.Errorf("eventbus: publish: %w", eventbus.ErrUnavailable), 503, "redis_unavailable", true, nil, "nothing was written"},
		{"outcome unknown", fmt.Errorf("eventbus: publish: %w", &eventbus.OutcomeUnknownError{TenantID: "t", EventIDs: []string{"e1", "e2"}, Err: context.DeadlineExceeded}), 504, "outcome_unknown", false, []string{"e1", "e2"}, "may or may not have been written"},
		{"outcome unknown of an outage", &eventbus.OutcomeUnknownError{TenantID: "t", EventIDs: []string{"e3"}, Err: eventbus.ErrUnavailable}, 504, "outcome_unknown", false, []string{"e3"}, `same "id"`},
		{"request ended while queued", context.Canceled, 503, "timeout", true, nil, "nothing was written"},
		{"deadline while queued", fmt.Errorf("eventbus: publish: %w", context.DeadlineExceeded), 503, "timeout", true, nil, "nothing was written"},
		{"internal", errors.New("WRONGTYPE secret detail"), 500, "internal", false, nil, "request id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			w.Header().Set("X-Request-Id", "rid-1")
			s.writePublishError(w, httptest.NewRequest(http.MethodPost, "/v1/events", nil), tt.err)
			var body errorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if w.Code != tt.status || body.Error.Code != tt.code || (w.Header().Get("Retry-After") != "") != tt.retryAfter ||
				fmt.Sprint(body.Error.EventIDs) != fmt.Sprint(tt.ids) || !strings.Contains(body.Error.Message, tt.msg) {
				t.Errorf("= %d %s (Retry-After %q)", w.Code, w.Body, w.Header().Get("Retry-After"))
			}
			if strings.Contains(w.Body.String(), "secret detail") {
				t.Errorf("internal text shown: %s", w.Body)
			}
		})
	}
}

func TestServerErrorLogGoesThroughSlog(t *testing.T) {
	var logs syncBuffer
	srv := NewServer(nil, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if srv.ErrorLog == nil {
		t.Fatal("ErrorLog not set: net/http would print plain text lines")
	}
	srv.ErrorLog.Printf("http: TLS handshake error from 127.0.0.1:1: EOF")
	var line map[string]any
	if err := json.Unmarshal([]byte(logs.String()), &line); err != nil || !strings.Contains(fmt.Sprint(line["msg"]), "TLS handshake") {
		t.Errorf("log line %q is not a JSON slog record: %v", logs.String(), err)
	}
}
