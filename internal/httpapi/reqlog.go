package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Request logs: the front door writes one structured line per request
// when it returns (a live tail when it ends): "http request" with
// request_id, method, path, query (the parameter names only, never their
// values), status, duration_ms, bytes and remote, plus what the route
// added (a tail's events and why it ended). Nothing that can hold a
// secret is logged: no header (Authorization included), no query value,
// no body. A 5xx logs at warn, everything else at info.

// maxLoggedPath bounds the path logged, so a long URL cannot bloat a log
// line.
const maxLoggedPath = 512

// loggedWriter records the status and byte count of a response. Unwrap
// lets http.ResponseController reach the connection (flushes and
// deadlines of live tails).
type loggedWriter struct {
	http.ResponseWriter
	start  time.Time
	status int
	bytes  int64
	extra  *logExtra
}

// logExtra holds the attributes a route adds to its request's line.
type logExtra struct{ attrs []slog.Attr }

type logExtraKey struct{}

// startRequestLog wraps w and gives r a place for a route's attributes.
func startRequestLog(w http.ResponseWriter, r *http.Request) (*loggedWriter, *http.Request) {
	extra := &logExtra{}
	r = r.WithContext(context.WithValue(r.Context(), logExtraKey{}, extra))
	return &loggedWriter{ResponseWriter: w, start: time.Now(), extra: extra}, r
}

// addLogAttrs adds attributes to the request's log line (no-op when
// request logs are off).
func addLogAttrs(r *http.Request, attrs ...slog.Attr) {
	if e, ok := r.Context().Value(logExtraKey{}).(*logExtra); ok {
		e.attrs = append(e.attrs, attrs...)
	}
}

func (w *loggedWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *loggedWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Flush keeps http.Flusher working through the wrapper.
func (w *loggedWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap returns the wrapped writer (for http.ResponseController).
func (w *loggedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish writes the request's line.
func (w *loggedWriter) finish(log *slog.Logger, r *http.Request, id string) {
	status := w.status
	if status == 0 {
		status = http.StatusOK // a handler that wrote nothing: net/http sends 200
	}
	path := r.URL.Path
	if len(path) > maxLoggedPath {
		path = path[:maxLoggedPath] + "..."
	}
	attrs := make([]slog.Attr, 0, 9+len(w.extra.attrs))
	attrs = append(attrs,
		slog.String("request_id", id),
		slog.String("method", r.Method),
		slog.String("path", path))
	if q := queryNames(r.URL.RawQuery); q != "" {
		attrs = append(attrs, slog.String("query", q))
	}
	attrs = append(attrs,
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(time.Since(w.start).Microseconds())/1000),
		slog.Int64("bytes", w.bytes),
		slog.String("remote", r.RemoteAddr))
	attrs = append(attrs, w.extra.attrs...)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelWarn
	}
	log.LogAttrs(r.Context(), level, "http request", attrs...)
}

// queryNames lists the distinct parameter names of a raw query, sorted
// and comma-separated (at most 20, then "..."): the values, which may
// hold a token, are dropped unread. A part without "=" or whose name is
// not a plain identifier might be a bare value and is shown as "?".
func queryNames(raw string) string {
	if raw == "" {
		return ""
	}
	var names []string
	more := false
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		name, _, ok := strings.Cut(part, "=")
		if !ok || !cleanName(name) {
			name = "?"
		}
		if slices.Contains(names, name) {
			continue
		}
		if len(names) == 20 {
			more = true
			break
		}
		names = append(names, name)
	}
	slices.Sort(names)
	if more {
		names = append(names, "...")
	}
	return strings.Join(names, ",")
}

// cleanName accepts parameter names of 1 to 64 characters from
// [A-Za-z0-9._-].
func cleanName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
