package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/auth"
)

// streamPath is the live tail's route; the front door gives it a pool of
// its own (Limits.MaxStreams).
const streamPath = "/v1/events/stream"

// Live tail defaults.
const (
	// defaultTailBuffer is how many events a client may have waiting;
	// one more and it is dropped.
	defaultTailBuffer = 256
	// defaultHeartbeat is the interval of the comment lines that keep
	// proxies from closing an idle stream.
	defaultHeartbeat = 15 * time.Second
	// tailRetry is the wait of the shared reader after a Redis error.
	tailRetry = time.Second
	// subscribeWait bounds how long a new stream waits for the shared
	// reader to find the end of the stream (Redis down: 503).
	subscribeWait = 5 * time.Second
	// droppedWait bounds the write of the final "dropped" message.
	droppedWait = time.Second
)

// errHubClosed: the server is shutting down.
var errHubClosed = errors.New("live tail: server shutting down")

// tailHub is the one reader of the main streams behind every live tail of
// a server: a single Inspector.Tail loop (XREAD BLOCK, no consumer group;
// every partition, one reader per partition on a Redis Cluster)
// that runs while at least one client is connected and fans each entry
// out to the clients whose scope and patterns match it. Each client has
// a bounded buffer; a client whose buffer is full is dropped (its stream
// ends with a "dropped" message) rather than slowing the reader and the
// other clients.
//
// Goroutines: the reader is started by the subscribe that finds none
// running, and stopped (its context cancelled) by the unsubscribe or drop
// that removes the last client, or by close (server shutdown), which also
// waits for it. A cancelled reader returns within about a second (one
// XREAD block); a generation number keeps a stopping reader from
// delivering anything once a newer one runs.
type tailHub struct {
	insp      *eventbus.Inspector
	log       *slog.Logger
	buffer    int           // events a client may have waiting
	heartbeat time.Duration // interval of the heartbeat comments

	mu      sync.Mutex
	clients map[*tailClient]struct{}
	gen     uint64             // generation of the current reader
	cancel  context.CancelFunc // stops the current reader; nil when none
	ready   chan struct{}      // closed once the current reader has its start
	done    chan struct{}      // closed when the current reader has returned
	closed  bool

	readers atomic.Int64 // reader goroutines alive (tests read it)
	starts  atomic.Int64 // readers started
}

// tailClient is one live tail: its filter, its bounded buffer, and gone,
// closed (with reason set first) when the hub drops it.
type tailClient struct {
	scope  eventbus.Scope
	filter eventbus.TailFilter
	events chan tailEvent
	gone   chan struct{}
	reason string
}

// tailEvent is one entry, encoded once for every client.
type tailEvent struct {
	id   string
	data []byte
}

func newTailHub(insp *eventbus.Inspector, log *slog.Logger) *tailHub {
	return &tailHub{insp: insp, log: log, buffer: defaultTailBuffer, heartbeat: defaultHeartbeat, clients: map[*tailClient]struct{}{}}
}

// hubState is what tests read of the hub.
type hubState struct {
	clients int  // clients registered
	running bool // a reader is current (not stopped)
	ready   bool // the current reader has its start: a registered client gets every entry written from now on
	readers int  // reader goroutines alive (0 once every stopped one has returned)
}

func (h *tailHub) state() hubState {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := hubState{clients: len(h.clients), running: h.cancel != nil, readers: int(h.readers.Load())}
	if h.ready != nil {
		select {
		case <-h.ready:
			st.ready = st.running
		default:
		}
	}
	return st
}

// subscribe registers a client and returns once the reader is positioned,
// so the client receives every matching entry written after the call
// returns. It fails when ctx ends first (the client is then removed) or
// the hub is closed.
func (h *tailHub) subscribe(ctx context.Context, scope eventbus.Scope, f eventbus.TailFilter) (*tailClient, error) {
	c := &tailClient{scope: scope, filter: f, events: make(chan tailEvent, h.buffer), gone: make(chan struct{})}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, errHubClosed
	}
	h.clients[c] = struct{}{}
	if h.cancel == nil {
		h.startLocked()
	}
	ready := h.ready
	h.mu.Unlock()
	select {
	case <-ready:
		return c, nil
	case <-c.gone:
		return nil, errHubClosed
	case <-ctx.Done():
		h.unsubscribe(c)
		return nil, ctx.Err()
	}
}

// unsubscribe removes c (if still registered); the last client out stops
// the reader.
func (h *tailHub) unsubscribe(c *tailClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(c, "")
}

// removeLocked removes c, closing gone with reason when reason is set
// (a drop), and stops the reader when no client is left.
func (h *tailHub) removeLocked(c *tailClient, reason string) {
	if _, ok := h.clients[c]; !ok {
		return
	}
	delete(h.clients, c)
	if reason != "" {
		c.reason = reason
		close(c.gone)
	}
	if len(h.clients) == 0 && h.cancel != nil {
		h.cancel()
		h.cancel = nil
	}
}

// startLocked starts a reader of a new generation.
func (h *tailHub) startLocked() {
	ctx, cancel := context.WithCancel(context.Background())
	h.gen++
	h.cancel = cancel
	h.ready = make(chan struct{})
	h.done = make(chan struct{})
	h.readers.Add(1)
	h.starts.Add(1)
	go h.read(ctx, h.gen, h.ready, h.done)
}

// close drops every client ("server shutting down"), refuses new ones,
// stops the reader and waits for it. It is the server's OnShutdown hook.
func (h *tailHub) close() {
	h.mu.Lock()
	h.closed = true
	for c := range h.clients {
		h.removeLocked(c, "server shutting down")
	}
	done := h.done
	h.mu.Unlock()
	if done != nil {
		<-done
	}
}

// read is the reader: it finds the end of the stream, then tails it from
// there until ctx is cancelled, resuming after Redis errors from the last
// entry it saw.
func (h *tailHub) read(ctx context.Context, gen uint64, ready, done chan struct{}) {
	defer h.readers.Add(-1)
	defer close(done)
	pos := ""
	for pos == "" {
		id, err := h.insp.TailStart(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			h.log.LogAttrs(ctx, slog.LevelWarn, "live tail: finding the end of the stream failed; retrying", slog.String("error", err.Error()))
			if !sleepCtx(ctx, tailRetry) {
				return
			}
			continue
		}
		pos = id
	}
	close(ready)
	for {
		err := h.insp.Tail(ctx, eventbus.AllTenants(), eventbus.TailFilter{After: pos}, func(it eventbus.BrowsedEvent) error {
			pos = eventbus.NextTailPosition(pos, it)
			h.fanOut(gen, it)
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		h.log.LogAttrs(ctx, slog.LevelWarn, "live tail: reading the stream failed; retrying",
			slog.String("stream_id", pos), slog.String("error", fmt.Sprint(err)))
		if !sleepCtx(ctx, tailRetry) {
			return
		}
	}
}

// fanOut hands it to every matching client of generation gen, dropping
// the clients whose buffer is full.
func (h *tailHub) fanOut(gen uint64, it eventbus.BrowsedEvent) {
	var ev tailEvent
	h.mu.Lock()
	defer h.mu.Unlock()
	if gen != h.gen || h.cancel == nil {
		return // a stopped reader's last batch
	}
	for c := range h.clients {
		if !c.filter.Match(c.scope, it) {
			continue
		}
		if ev.id == "" {
			data, err := json.Marshal(it)
			if err != nil {
				h.log.LogAttrs(context.Background(), slog.LevelError, "live tail: encoding an entry failed",
					slog.String("stream_id", it.StreamID), slog.String("error", err.Error()))
				return
			}
			ev = tailEvent{id: it.Cursor(), data: data}
		}
		select {
		case c.events <- ev:
		default:
			h.removeLocked(c, fmt.Sprintf("client too slow: %d events were waiting to be sent", cap(c.events)))
		}
	}
}

// sleepCtx waits d, reporting false when ctx ended first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// streamEvents serves GET /v1/events/stream?type&tenantId: a live tail of
// the main streams as Server-Sent Events. Each new entry in scope whose
// type matches a pattern is sent as "id: <cursor>" (its stream id with
// one partition, BrowsedEvent.Cursor), "event: event",
// "data: <the entry as GET /v1/events lists it>"; a comment line every 15
// s keeps proxies from closing it. Scope and patterns are those of GET
// /v1/events: any authenticated role; a tenant token sees its own tenant
// only (another tenantId answers 404). A client that falls behind by
// more than its buffer is sent "event: dropped" with a reason, and its
// stream ends; so do all streams when the server shuts down. It never
// acknowledges or claims anything.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	q := r.URL.Query()
	scope, ok := browseScope(w, q, p)
	if !ok {
		return
	}
	if err := scope.Validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: errorDetail{Code: "invalid_request", Message: "tenantId: blank", Field: "tenantId"}})
		return
	}
	var f eventbus.TailFilter
	for _, v := range q["type"] {
		for _, pat := range strings.Split(v, ",") {
			if pat = strings.TrimSpace(pat); pat != "" {
				f.Types = append(f.Types, pat)
			}
		}
	}
	var fe *eventbus.FilterError
	if err := f.Check(); errors.As(err, &fe) {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: errorDetail{Code: "invalid_request", Message: fe.Field + ": " + fe.Reason, Field: fe.Field}})
		return
	}

	sctx, cancel := context.WithTimeout(r.Context(), subscribeWait)
	c, err := s.hub.subscribe(sctx, scope, f)
	cancel()
	switch {
	case errors.Is(err, errHubClosed):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "shutting_down", "the server is shutting down; reconnect to another instance")
		return
	case err != nil && r.Context().Err() != nil:
		return // the client left
	case err != nil:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "redis_unavailable", "the live tail could not reach Redis within "+subscribeWait.String())
		return
	}
	defer s.hub.unsubscribe(c)

	// A stream outlives the server's read and write timeouts: no read
	// deadline (net/http would cancel the request when it passes), and a
	// write deadline renewed before each write, so a client that stops
	// reading is cut after streamWait.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	if r.ProtoMajor == 1 {
		h.Set("Connection", "close") // the connection ends with the stream
	}
	sent := 0
	end := "client left"
	defer func() { addLogAttrs(r, slog.Int("events_sent", sent), slog.String("stream_end", end)) }()
	write := func(wait time.Duration, parts ...[]byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(wait))
		for _, b := range parts {
			if _, err := w.Write(b); err != nil {
				end = "write failed: " + err.Error()
				return false
			}
		}
		if err := rc.Flush(); err != nil {
			end = "write failed: " + err.Error()
			return false
		}
		return true
	}
	w.WriteHeader(http.StatusOK)
	if !write(s.streamWait, []byte(": live tail of new events\n\n")) {
		return
	}
	heartbeat := time.NewTicker(s.hub.heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case ev := <-c.events:
			if !write(s.streamWait, []byte("id: "+ev.id+"\nevent: event\ndata: "), ev.data, []byte("\n\n")) {
				return
			}
			sent++
		case <-c.gone:
			end = "dropped: " + c.reason
			msg, _ := json.Marshal(map[string]string{"reason": c.reason})
			write(droppedWait, []byte("event: dropped\ndata: "), msg, []byte("\n\n"))
			return
		case <-heartbeat.C:
			if !write(s.streamWait, []byte(": heartbeat\n\n")) {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}
