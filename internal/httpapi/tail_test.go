package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
)

// tailServer serves the API with newHTTPServer on a loopback port; mutate may
// tune the Server (hub buffer, heartbeat) before it serves, and wrap the
// listener.
type tailServer struct {
	url  string
	http *http.Server
	api  *Server
	done chan struct{}
}

func startTailServer(t *testing.T, bus *eventbus.Bus, opt Options, mutate func(*Server), wrap func(net.Listener) net.Listener) *tailServer {
	t.Helper()
	if opt.Auth == nil {
		opt.Auth = testAuth()
	}
	srv, api := newHTTPServer(bus, opt)
	if mutate != nil {
		mutate(api)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &tailServer{url: "http://" + ln.Addr().String(), http: srv, api: api, done: make(chan struct{})}
	if wrap != nil {
		ln = wrap(ln)
	}
	go func() { defer close(ts.done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close(); <-ts.done })
	return ts
}

// waitHub polls the hub's state until cond holds.
func (ts *tailServer) waitHub(t *testing.T, what string, cond func(hubState) bool) {
	t.Helper()
	waitUntil(t, 20*time.Second, what, func() bool { return cond(ts.api.hub.state()) })
}

// sseEvent is one Server-Sent Event.
type sseEvent struct{ id, event, data string }

// sseClient reads one stream's events into a channel (closed at the end
// of the stream).
type sseClient struct {
	resp   *http.Response
	events chan sseEvent
	cancel context.CancelFunc
}

// openStream opens GET /v1/events/stream?query with token and checks the
// status; for a 200 it starts reading the events.
func openStream(t *testing.T, base, token, query string, wantStatus int) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+streamPath+"?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != wantStatus {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("stream %q = %d %s, want %d", query, resp.StatusCode, body, wantStatus)
	}
	c := &sseClient{resp: resp, events: make(chan sseEvent, 1000), cancel: cancel}
	t.Cleanup(c.close)
	if wantStatus != http.StatusOK {
		resp.Body.Close()
		close(c.events)
		return c
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	go func() {
		defer close(c.events)
		readSSE(resp.Body, c.events)
	}()
	return c
}

func (c *sseClient) close() { c.cancel(); c.resp.Body.Close() }

// readSSE parses events from r until it ends.
func readSSE(r io.Reader, out chan<- sseEvent) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.event != "" {
				out <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		}
	}
}

// until collects the "event" events' entries until one of type stop
// (not collected), failing on a dropped message or a timeout.
func (c *sseClient) until(t *testing.T, stop string) []eventbus.BrowsedEvent {
	t.Helper()
	var got []eventbus.BrowsedEvent
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok {
				t.Fatalf("stream ended after %d events", len(got))
			}
			if ev.event != "event" {
				t.Fatalf("unexpected %q event: %s", ev.event, ev.data)
			}
			var it eventbus.BrowsedEvent
			if err := json.Unmarshal([]byte(ev.data), &it); err != nil || it.StreamID != ev.id {
				t.Fatalf("data %s (id %s): %v", ev.data, ev.id, err)
			}
			if it.Event != nil && it.Event.Type == stop {
				return got
			}
			got = append(got, it)
		case <-timeout:
			t.Fatalf("no %s event after %d events", stop, len(got))
		}
	}
}

func publishAll(t *testing.T, bus *eventbus.Bus, evs ...eventbus.Event) {
	t.Helper()
	for _, e := range evs {
		if e.UserID == "" {
			e.UserID = "u"
		}
		if _, err := bus.Publish(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

func typesAndTenants(items []eventbus.BrowsedEvent) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Event.Type+"/"+it.Event.TenantID)
	}
	return out
}

// TestLiveTailFiltersAndTenants: two clients with different filters each
// get exactly their events, a tenant token never sees another tenant's
// events and asking for another tenant answers 404; bad parameters 400.
func TestLiveTailFiltersAndTenants(t *testing.T) {
	bus, _, _ := sharedBus(t)
	if err := bus.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts := startTailServer(t, bus, Options{}, nil, nil)
	a := openStream(t, ts.url, keyViewer, "type=orders.*", http.StatusOK)                                        // tenant-a token
	b := openStream(t, ts.url, keyPlatform, "tenantId=tenant-b&type=billing.*,orders.order.paid", http.StatusOK) // platform, one tenant
	all := openStream(t, ts.url, keyPlatform, "", http.StatusOK)
	ts.waitHub(t, "three clients registered and the reader positioned", func(s hubState) bool { return s.clients == 3 && s.ready })
	if st := ts.api.hub.starts.Load(); st != 1 {
		t.Errorf("%d readers started for three clients, want 1", st)
	}

	publishAll(t, bus,
		eventbus.Event{Type: "orders.order.created", TenantID: "tenant-a"},
		eventbus.Event{Type: "orders.order.paid", TenantID: "tenant-b"},
		eventbus.Event{Type: "billing.invoice.sent", TenantID: "tenant-a"},
		eventbus.Event{Type: "orders.order.created", TenantID: "tenant-b"},
		eventbus.Event{Type: "billing.invoice.sent", TenantID: "tenant-b"},
		eventbus.Event{Type: "orders.order.paid", TenantID: "tenant-a"},
		// the end markers
		eventbus.Event{Type: "orders.zz.end", TenantID: "tenant-a"},
		eventbus.Event{Type: "orders.order.paid", TenantID: "tenant-b", Data: json.RawMessage(`{"end":true}`)},
	)
	if got, want := typesAndTenants(a.until(t, "orders.zz.end")), []string{"orders.order.created/tenant-a", "orders.order.paid/tenant-a"}; !slices.Equal(got, want) {
		t.Errorf("tenant-a orders.* client got %v, want %v", got, want)
	}
	var gotB []string
	for _, it := range b.untilData(t, `{"end":true}`) {
		gotB = append(gotB, it.Event.Type+"/"+it.Event.TenantID)
	}
	if want := []string{"orders.order.paid/tenant-b", "billing.invoice.sent/tenant-b"}; !slices.Equal(gotB, want) {
		t.Errorf("tenant-b client got %v, want %v", gotB, want)
	}
	if got := all.until(t, "orders.zz.end"); len(got) != 6 {
		t.Errorf("unfiltered platform client got %v, want all 6", typesAndTenants(got))
	}

	// Refusals, answered before any stream starts.
	openStream(t, ts.url, keyViewer, "tenantId=tenant-b", http.StatusNotFound)
	openStream(t, ts.url, keyViewer, "type=a*b", http.StatusBadRequest)
	openStream(t, ts.url, keyPlatform, "tenantId=%20", http.StatusBadRequest)
	openStream(t, ts.url, "not-a-token", "", http.StatusUnauthorized)
}

// untilData is until, stopping at the entry whose data is data.
func (c *sseClient) untilData(t *testing.T, data string) []eventbus.BrowsedEvent {
	t.Helper()
	var got []eventbus.BrowsedEvent
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-c.events:
			if !ok || ev.event != "event" {
				t.Fatalf("stream ended or %q after %d events", ev.event, len(got))
			}
			var it eventbus.BrowsedEvent
			if err := json.Unmarshal([]byte(ev.data), &it); err != nil {
				t.Fatal(err)
			}
			if string(it.Event.Data) == data {
				return got
			}
			got = append(got, it)
		case <-timeout:
			t.Fatalf("no entry with data %s after %d events", data, len(got))
		}
	}
}

// smallBuffers makes the server's socket send buffers small, so that a
// client that stops reading blocks the server's writes after a few KB.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestLiveTailDropsASlowClient: a client that stops reading is dropped
// (its stream ends with a "dropped" message once it reads again) while
// the others receive every event.
func TestLiveTailDropsASlowClient(t *testing.T) {
	bus, _, _ := sharedBus(t)
	if err := bus.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts := startTailServer(t, bus, Options{Limits: Limits{WriteTimeout: 20 * time.Second}},
		func(s *Server) { s.hub.buffer = 4 }, func(ln net.Listener) net.Listener { return smallBuffers{ln} })
	fast := openStream(t, ts.url, keyPlatform, "", http.StatusOK)

	// The slow client: a raw connection with a small receive buffer that
	// reads nothing after the request.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	slow, err := d.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", streamPath, keyPlatform)
	ts.waitHub(t, "both clients registered", func(s hubState) bool { return s.clients == 2 && s.ready })

	// Each event is published once the fast client has the previous one:
	// it never falls behind, while the slow client's socket buffers and
	// then its 4 buffered events fill up.
	const n = 60
	big := json.RawMessage(`{"pad":"` + strings.Repeat("x", 8<<10) + `"}`)
	for i := range n {
		publishAll(t, bus, eventbus.Event{Type: "orders.order.created", TenantID: "tenant-a", Data: big})
		select {
		case ev := <-fast.events:
			if ev.event != "event" {
				t.Fatalf("fast client: %q %s", ev.event, ev.data)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the fast client did not get event %d", i)
		}
	}
	if st := ts.api.hub.state(); st.clients != 1 {
		t.Errorf("hub after %d events: %+v, want the slow client dropped", n, st)
	}
	// The slow client reads again: what was in flight, the dropped
	// message, then the end of the connection.
	_, body := waitClosed(t, slow, 30*time.Second)
	if !strings.Contains(string(body), "event: dropped\ndata: {\"reason\":\"client too slow") {
		tail := body[max(0, len(body)-300):]
		t.Errorf("the slow client's stream did not end with a dropped message: ...%q", tail)
	}
	if st := ts.api.hub.state(); st.clients != 1 || !st.running {
		t.Errorf("hub after the drop: %+v", st)
	}
}

// TestLiveTailReaderStops: the shared reader stops when the last client
// leaves, starts again for a new one, and stops on Shutdown, which ends
// every stream with a dropped message.
func TestLiveTailReaderStops(t *testing.T) {
	bus, _, _ := sharedBus(t)
	if err := bus.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	ts := startTailServer(t, bus, Options{}, nil, nil)
	c1 := openStream(t, ts.url, keyPlatform, "", http.StatusOK)
	ts.waitHub(t, "the reader running", func(s hubState) bool { return s.clients == 1 && s.ready && s.readers == 1 })
	c1.close()
	ts.waitHub(t, "the reader stopped after the last client left", func(s hubState) bool {
		return s.clients == 0 && !s.running && s.readers == 0
	})

	c2 := openStream(t, ts.url, keyPlatform, "", http.StatusOK)
	c3 := openStream(t, ts.url, keyViewer, "", http.StatusOK)
	ts.waitHub(t, "a new reader for new clients", func(s hubState) bool { return s.clients == 2 && s.ready && s.readers == 1 })
	if st := ts.api.hub.starts.Load(); st != 2 {
		t.Errorf("%d readers started, want 2", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := ts.http.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with open streams: %v", err)
	}
	for _, c := range []*sseClient{c2, c3} {
		var last sseEvent
		for ev := range c.events {
			last = ev
		}
		if last.event != "dropped" || !strings.Contains(last.data, "shutting down") {
			t.Errorf("last event of a stream at shutdown: %+v", last)
		}
	}
	// The reader stops within one XREAD block of the shutdown.
	ts.waitHub(t, "the reader stopped after Shutdown", func(s hubState) bool { return s.readers == 0 && !s.running && s.clients == 0 })
	if _, err := ts.api.hub.subscribe(ctx, eventbus.AllTenants(), eventbus.TailFilter{}); !errors.Is(err, errHubClosed) {
		t.Errorf("subscribe after Shutdown = %v, want errHubClosed", err)
	}
}

// TestLiveTailLimitsAndTimeouts: streams over MaxStreams answer 503 while
// ordinary requests are still served (streams do not hold request
// slots), and a stream outlives the read and write timeouts.
func TestLiveTailLimitsAndTimeouts(t *testing.T) {
	bus, _, _ := sharedBus(t)
	if err := bus.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	const timeout = 400 * time.Millisecond
	ts := startTailServer(t, bus, Options{Limits: Limits{MaxStreams: 2, MaxRequests: 1, ReadTimeout: timeout, WriteTimeout: timeout}}, nil, nil)
	s1 := openStream(t, ts.url, keyPlatform, "", http.StatusOK)
	openStream(t, ts.url, keyViewer, "", http.StatusOK)
	ts.waitHub(t, "two streams", func(s hubState) bool { return s.clients == 2 && s.ready })
	over := openStream(t, ts.url, keyPlatform, "", http.StatusServiceUnavailable)
	if over.resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if r := getAuthed(t, ts.url+"/v1/events", keyPlatform); r.status != http.StatusOK {
		t.Errorf("GET /v1/events with the stream pool full = %d %s", r.status, r.body)
	}
	// Past both timeouts the stream still delivers (waiting out a
	// deadline is what is tested here).
	time.Sleep(3 * timeout)
	publishAll(t, bus, eventbus.Event{Type: "orders.zz.end", TenantID: "tenant-a"})
	if got := s1.until(t, "orders.zz.end"); len(got) != 0 {
		t.Errorf("unexpected events %v", typesAndTenants(got))
	}
}

// TestRequestLogs: one line per request with its id, status, duration and
// size; no token (header or query) ever reaches the log; a stream logs
// once, when it ends.
func TestRequestLogs(t *testing.T) {
	bus, _, _ := sharedBus(t)
	if err := bus.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ts := startTailServer(t, bus, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, nil, nil)
	const secret = "s3cr3t-query-token-value"
	req, _ := http.NewRequest(http.MethodGet, ts.url+"/v1/events?token="+secret+"&type=orders.*&"+secret, nil)
	req.Header.Set("Authorization", "Bearer "+keyPlatform)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if r := getAuthed(t, ts.url+"/v1/events/nope", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("unauthenticated = %d", r.status)
	}
	s := openStream(t, ts.url, jwtFor(t, "tenant-a", "viewer"), "", http.StatusOK)
	ts.waitHub(t, "the stream", func(s hubState) bool { return s.clients == 1 && s.ready })
	s.close()
	ts.waitHub(t, "the stream gone", func(s hubState) bool { return s.clients == 0 })

	type line struct {
		Msg        string   `json:"msg"`
		RequestID  string   `json:"request_id"`
		Method     string   `json:"method"`
		Path       string   `json:"path"`
		Query      string   `json:"query"`
		Status     int      `json:"status"`
		DurationMS *float64 `json:"duration_ms"`
		Bytes      int64    `json:"bytes"`
		EventsSent *int     `json:"events_sent"`
	}
	var lines []line
	waitUntil(t, 10*time.Second, "three request lines", func() bool {
		lines = lines[:0]
		for l := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
			var ln line
			if json.Unmarshal([]byte(l), &ln) == nil && ln.Msg == "http request" {
				lines = append(lines, ln)
			}
		}
		return len(lines) == 3
	})
	if l := lines[0]; l.RequestID != id || id == "" || l.Method != "GET" || l.Path != "/v1/events" || l.Status != 200 ||
		l.DurationMS == nil || l.Bytes == 0 || l.Query != "?,token,type" {
		t.Errorf("browse line %+v (request id %q)", l, id)
	}
	if l := lines[1]; l.Status != http.StatusUnauthorized || l.RequestID == "" {
		t.Errorf("401 line %+v", l)
	}
	if l := lines[2]; l.Path != streamPath || l.Status != 200 || l.EventsSent == nil {
		t.Errorf("stream line %+v", l)
	}
	for _, secretText := range []string{secret, keyPlatform, "Bearer", "eyJ"} {
		if strings.Contains(logs.String(), secretText) {
			t.Errorf("the log shows %q: %s", secretText, logs.String())
		}
	}
}

func TestQueryNames(t *testing.T) {
	for raw, want := range map[string]string{
		"":                             "",
		"type=a&type=b&limit=3":        "limit,type",
		"token=abc&bare":               "?,token",
		"a%20b=1":                      "?",
		"&&x=":                         "x",
		strings.Repeat("k=1&", 3) + "": "k",
	} {
		if got := queryNames(raw); got != want {
			t.Errorf("queryNames(%q) = %q, want %q", raw, got, want)
		}
	}
	var many []string
	for i := range 25 {
		many = append(many, fmt.Sprintf("p%02d=1", i))
	}
	if got := queryNames(strings.Join(many, "&")); !strings.HasSuffix(got, ",...") || strings.Count(got, ",") != 20 {
		t.Errorf("25 names: %q", got)
	}
}
