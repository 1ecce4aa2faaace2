package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hyvve/eventbus"
)

// Limits bound what clients can hold: connections (timeouts, header
// size), requests served at once, and the memory of request bodies.
type Limits struct {
	// ReadHeaderTimeout bounds reading the request line and headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included: a body
	// that never arrives is cut after it.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its response.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers; over it the
	// server answers 431.
	MaxHeaderBytes int
	// MaxRequests bounds the requests served at once (health probes have
	// their own pool of MaxProbes); over it the server answers 503 with
	// Retry-After.
	MaxRequests int
	// MaxProbes bounds the health probes served at once.
	MaxProbes int
	// MaxStreams bounds the live tails (GET /v1/events/stream) open at
	// once. Streams have their own pool, so that long-lived streams never
	// hold the slots of MaxRequests; over it the server answers 503 with
	// Retry-After.
	MaxStreams int
	// MaxConnections bounds the client connections open at once (see
	// LimitListener). Keep it below the process's file limit (ulimit -n).
	MaxConnections int
	// MaxBodyMemory bounds the bytes of request bodies held at once. A
	// request reserves its Content-Length (or its route's limit when the
	// length is not sent) before reading; while the budget is spent it is
	// answered 503 with Retry-After, and a body larger than the whole
	// budget 413.
	MaxBodyMemory int64
}

// DefaultLimits are the limits used for zero fields of Limits.
var DefaultLimits = Limits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      30 * time.Second,
	IdleTimeout:       60 * time.Second,
	MaxHeaderBytes:    64 << 10,
	MaxRequests:       256,
	MaxProbes:         16,
	MaxStreams:        64,
	MaxBodyMemory:     64 << 20,
	MaxConnections:    10000,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	set(&l.ReadTimeout, d.ReadTimeout)
	set(&l.WriteTimeout, d.WriteTimeout)
	set(&l.IdleTimeout, d.IdleTimeout)
	if l.ReadHeaderTimeout > l.ReadTimeout {
		l.ReadHeaderTimeout = l.ReadTimeout
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxRequests <= 0 {
		l.MaxRequests = d.MaxRequests
	}
	if l.MaxProbes <= 0 {
		l.MaxProbes = d.MaxProbes
	}
	if l.MaxStreams <= 0 {
		l.MaxStreams = d.MaxStreams
	}
	if l.MaxBodyMemory <= 0 {
		l.MaxBodyMemory = d.MaxBodyMemory
	}
	if l.MaxConnections <= 0 {
		l.MaxConnections = d.MaxConnections
	}
	return l
}

// LimitListener wraps ln so that at most max client connections (0: the
// default, 10,000) are open at once. A connection beyond the limit is
// closed as soon as it is accepted, rather than left in the kernel's accept
// queue: file descriptors never run out (20,000 idle connections used to
// exhaust them), the queue never fills, and once a connection ends (the
// idle, header and read timeouts end stalled ones) a new one is served.
func LimitListener(ln net.Listener, max int) net.Listener {
	if max <= 0 {
		max = DefaultLimits.MaxConnections
	}
	return &limitListener{Listener: ln, max: int64(max)}
}

type limitListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused atomic.Int64
}

// Accept returns the next connection within the limit; connections beyond
// it are closed and counted.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &limitedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.refused.Add(1)
		_ = c.Close()
	}
}

// limitedConn gives its slot back once, when closed.
type limitedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// NewServer returns an http.Server serving the API (New) with the
// connection limits of opt.Limits, and net/http's own error lines logged
// through opt.Logger. Its Shutdown also ends the live tails (each client
// gets a final "dropped" message) and stops their shared reader; Close
// ends them by closing their connections.
func NewServer(bus *eventbus.Bus, opt Options) *http.Server {
	srv, _ := newHTTPServer(bus, opt)
	return srv
}

// newHTTPServer is NewServer, also returning the API's Server.
func newHTTPServer(bus *eventbus.Bus, opt Options) (*http.Server, *Server) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	lim := opt.Limits.withDefaults()
	s, h := newAPI(bus, opt)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(opt.Logger.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(s.hub.close)
	return srv, s
}

// frontDoor runs before every route: it gives the request its id and a
// slot in the request pool (probes and live tails in pools of their own),
// or answers 503, and logs one line per request (reqlog.go). Per request
// it costs the id and two channel operations, plus the log line when the
// logger is enabled at info level.
type frontDoor struct {
	next    http.Handler
	log     *slog.Logger
	reqs    chan struct{}
	probes  chan struct{}
	streams chan struct{}
	idBase  string // random per process
	seq     atomic.Uint64
}

func newFrontDoor(next http.Handler, lim Limits, log *slog.Logger) *frontDoor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &frontDoor{
		next:    next,
		log:     log,
		reqs:    make(chan struct{}, lim.MaxRequests),
		probes:  make(chan struct{}, lim.MaxProbes),
		streams: make(chan struct{}, lim.MaxStreams),
		idBase:  hex.EncodeToString(b[:]),
	}
}

const requestIDHeader = "X-Request-Id"

func (f *frontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get(requestIDHeader)
	if !validRequestID(id) {
		id = f.newID()
	}
	w.Header()[requestIDHeader] = []string{id}
	if f.log.Enabled(r.Context(), slog.LevelInfo) {
		var lw *loggedWriter
		lw, r = startRequestLog(w, r)
		defer lw.finish(f.log, r, id)
		w = lw
	}

	pool, what := f.reqs, "requests"
	switch {
	case isProbe(r.URL.Path):
		pool = f.probes
	case r.URL.Path == streamPath:
		pool, what = f.streams, "live tails"
	}
	select {
	case pool <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "overloaded", "too many "+what+" in flight; retry later")
		return
	}
	defer func() { <-pool }()
	f.next.ServeHTTP(w, r)
}

// newID returns "<8 hex of this process>-<sequence in hex>".
func (f *frontDoor) newID() string {
	var buf [8 + 1 + 16]byte
	b := append(buf[:0], f.idBase...)
	b = append(b, '-')
	b = strconv.AppendUint(b, f.seq.Add(1), 16)
	return string(b)
}

// validRequestID accepts a caller's X-Request-Id of 1 to 128 characters
// from [A-Za-z0-9._:-]; anything else is replaced by a generated id.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// requestID returns the id the front door gave the response.
func requestID(w http.ResponseWriter) string {
	if v := w.Header()[requestIDHeader]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func isProbe(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/health/events"
}

// bodyBudget is the memory all request bodies in flight may hold. A
// reservation never waits: it succeeds or is refused at once.
type bodyBudget struct {
	limit int64
	used  atomic.Int64
}

func newBodyBudget(limit int64) *bodyBudget { return &bodyBudget{limit: limit} }

// reserve takes n bytes of the budget, reporting whether they were free.
func (b *bodyBudget) reserve(n int64) bool {
	if b.used.Add(n) > b.limit {
		b.used.Add(-n)
		return false
	}
	return true
}

// release returns n reserved bytes.
func (b *bodyBudget) release(n int64) { b.used.Add(-n) }
