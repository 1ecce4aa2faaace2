package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// nopWriter is a ResponseWriter that keeps one header map, so the
// benchmark counts the front door's own allocations only.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkFrontDoor measures the per-request cost of the request id and
// the request pool: one allocation for the generated id and one for its
// header value.
func BenchmarkFrontDoor(b *testing.B) {
	f := newFrontDoor(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), DefaultLimits, nil)
	r := httptest.NewRequest(http.MethodPost, "/v1/events", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &nopWriter{h: http.Header{}}
		for pb.Next() {
			f.ServeHTTP(w, r)
		}
	})
}

func TestFrontDoorAllocations(t *testing.T) {
	f := newFrontDoor(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), DefaultLimits, nil)
	r := httptest.NewRequest(http.MethodPost, "/v1/events", nil)
	w := &nopWriter{h: http.Header{}}
	if n := testing.AllocsPerRun(1000, func() { f.ServeHTTP(w, r) }); n > 2 {
		t.Errorf("front door: %v allocations per request, want at most 2 (the id and its header value)", n)
	}
}
