package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hyvve/eventbus/internal/redistest"
)

const hardeningSecret = "serve-test-secret-0123456789"

func platformJWT(t *testing.T) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "svc", "tenantId": "*", "role": "admin", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString([]byte(hardeningSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func statusOf(t *testing.T, url, token string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestServeAppliesHTTPLimitsAndJWTPolicy: the settings reach the server:
// header limit (431), idle timeout, platform JWTs refused unless allowed,
// and every log line is JSON (net/http's own lines go through slog).
func TestServeAppliesHTTPLimitsAndJWTPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("own redis-server and CLI process; run without -short")
	}
	rs := redistest.Start(t)
	addr := freeAddr(t)
	p := start(t, []string{"REDIS_URL=" + rs.URL(), "EVENTBUS_JWT_SECRET=" + hardeningSecret,
		"EVENTBUS_HTTP_IDLE_TIMEOUT=300ms", "EVENTBUS_HTTP_MAX_HEADER_BYTES=4096"}, "serve", "--http-addr", addr)
	base := "http://" + addr
	poll(t, 20*time.Second, "/readyz", func() bool {
		code, _, err := getJSON(base + "/readyz")
		return err == nil && code == http.StatusOK
	})

	req, err := http.NewRequest(http.MethodGet, base+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Filler", strings.Repeat("a", 64<<10))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers: %v %v, want 431", resp, err)
	} else {
		resp.Body.Close()
	}

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("no X-Request-Id")
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("idle connection still open after 10s with a 300ms idle timeout")
		}
	}

	if code := statusOf(t, base+"/v1/events/nope", platformJWT(t)); code != http.StatusUnauthorized {
		t.Errorf("platform JWT without --jwt-allow-platform = %d, want 401", code)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit code %d\n%s", code, p.out)
	}
	for _, line := range strings.Split(strings.TrimSpace(p.out.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %q", line)
		}
	}

	addr2 := freeAddr(t)
	p2 := start(t, []string{"REDIS_URL=" + rs.URL(), "EVENTBUS_JWT_SECRET=" + hardeningSecret}, "serve", "--http-addr", addr2, "--jwt-allow-platform")
	poll(t, 20*time.Second, "/readyz", func() bool {
		code, _, err := getJSON("http://" + addr2 + "/readyz")
		return err == nil && code == http.StatusOK
	})
	if code := statusOf(t, "http://"+addr2+"/v1/events/nope", platformJWT(t)); code != http.StatusNotFound {
		t.Errorf("platform JWT with --jwt-allow-platform = %d, want 404 (authenticated, unknown event)", code)
	}
	p2.stop(t)
}
