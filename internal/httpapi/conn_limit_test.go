package httpapi

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A connection beyond MaxConnections is closed at once; once a held one
// ends, new connections are served again.
func TestLimitListenerClosesConnectionsOverTheLimit(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(LimitListener(ln, 2)) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	addr := ln.Addr().String()

	get := func(c net.Conn) (string, error) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	held := []net.Conn{dial(), dial()}
	for i, c := range held { // both served: the server holds them (keep-alive)
		if body, err := get(c); err != nil || body != "ok" {
			t.Fatalf("connection %d: %q %v", i+1, body, err)
		}
	}
	extra := dial()
	if body, err := get(extra); err == nil {
		t.Fatalf("a third connection was served (%q); want it closed", body)
	}

	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		body, err := get(c)
		c.Close()
		if err == nil && body == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served after one of the held ones closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := LimitListener(ln, 0).(*limitListener).max; n != int64(DefaultLimits.MaxConnections) {
		t.Errorf("default limit %d", n)
	}
}
