package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eventbus-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "eventbus")
	// make cover (EVENTBUS_COVER=1) builds the CLI with coverage too: its
	// processes write their data to the GOCOVERDIR they inherit.
	var cover []string
	if os.Getenv("EVENTBUS_COVER") != "" {
		cover = []string{"-cover", "-covermode=atomic", "-coverpkg=github.com/hyvve/eventbus/..."}
	}
	build := func(flags ...string) ([]byte, error) {
		args := append(append([]string{"build"}, flags...), cover...)
		return exec.Command("go", append(args, "-o", binary, ".")...).CombinedOutput()
	}
	out, err := build("-race")
	if err != nil {
		// -race needs cgo; fall back to a plain build.
		out, err = build()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "build eventbus: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process is a running eventbus binary and its combined output, read only
// after it exits.
type process struct {
	cmd *exec.Cmd
	out *bytes.Buffer
}

func start(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return &process{cmd: cmd, out: out}
}

// stop sends SIGTERM and returns the exit code.
func (p *process) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Fatalf("process did not stop on SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode()
}

func getJSON(url string) (int, map[string]any, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("decode %q: %w", b, err)
	}
	return resp.StatusCode, v, nil
}

func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDevRunsWithoutRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out dial failures of a CLI process; run without -short")
	}
	dead := freeAddr(t) // nothing listens here
	addr := freeAddr(t)
	p := start(t, []string{"REDIS_URL=redis://" + dead}, "dev", "--http-addr", addr)
	var body map[string]any
	poll(t, 20*time.Second, "/health/events", func() bool {
		code, b, err := getJSON("http://" + addr + "/health/events")
		body = b
		return err == nil && code == http.StatusOK
	})
	// Readiness checks the streams and group in Redis: the embedded server
	// must answer that check too.
	if code, b, err := getJSON("http://" + addr + "/readyz"); err != nil || code != http.StatusOK {
		t.Errorf("/readyz on the embedded server = %d %v %v", code, b, err)
	}
	streams := body["streams"].(map[string]any)
	main := streams["main"].(map[string]any)
	if main["exists"] != true || main["name"] != "hyvve:events:main" {
		t.Errorf("main stream = %v", main)
	}
	if lag := main["groups"].([]any)[0].(map[string]any)["lag"]; lag != nil {
		t.Errorf("embedded server reported lag %v, want null (unknown)", lag)
	}
	// The dashboard's page loads without a token.
	dashboard := "http://" + addr + "/"
	if resp, err := http.Get(dashboard); err != nil {
		t.Errorf("GET %s: %v", dashboard, err)
	} else {
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s = %d %q, want 200 text/html", dashboard, resp.StatusCode, ct)
		}
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit code %d\n%s", code, p.out)
	}
	if !strings.Contains(p.out.String(), "DATA LIVES IN MEMORY ONLY") {
		t.Errorf("dev did not say data is in memory only:\n%s", p.out)
	}
	// The API key, then the dashboard's URL (the lines of other output may
	// come between them: stderr's logs share the buffer).
	out := p.out.String()
	key := strings.Index(out, "eventbus dev: no credentials configured; this run's API key (every tenant, admin): ")
	dash := strings.Index(out, "eventbus dev: dashboard: "+dashboard+"\n")
	if key < 0 || dash < key {
		t.Errorf("dev did not print the dashboard URL %s after its API key:\n%s", dashboard, out)
	}
}

func TestServeAgainstRedisAndGracefulStop(t *testing.T) {
	rs := redistest.Start(t)
	addr := freeAddr(t)
	p := start(t, []string{"REDIS_URL=" + rs.URL(), "EVENTBUS_HTTP_ADDR=" + addr}, "serve")
	poll(t, 20*time.Second, "/readyz", func() bool {
		code, _, err := getJSON("http://" + addr + "/readyz")
		return err == nil && code == http.StatusOK
	})
	if code, body, err := getJSON("http://" + addr + "/health/events"); err != nil || code != http.StatusOK {
		t.Fatalf("/health/events = %d %v %v", code, body, err)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM\n%s", code, p.out)
	}
}

func TestServeStartsWhileRedisDown(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for Redis to come up under a running CLI; run without -short")
	}
	rs := redistest.Start(t)
	rs.Stop()
	addr := freeAddr(t)
	p := start(t, []string{"REDIS_URL=" + rs.URL()}, "serve", "--http-addr", addr)
	poll(t, 20*time.Second, "/readyz answering 503", func() bool {
		code, _, err := getJSON("http://" + addr + "/readyz")
		return err == nil && code == http.StatusServiceUnavailable
	})
	if code, _, _ := getJSON("http://" + addr + "/health/events"); code != http.StatusServiceUnavailable {
		t.Errorf("/health/events with Redis down = %d, want 503", code)
	}
	rs.Restart()
	poll(t, 20*time.Second, "/readyz 200 after Redis started", func() bool {
		code, _, err := getJSON("http://" + addr + "/readyz")
		return err == nil && code == http.StatusOK
	})
	p.stop(t)
}

func TestBadConfigurationStopsStartUp(t *testing.T) {
	tests := []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"EVENTBUS_BATCH_SIZE=-3"}, []string{"serve"}, `EVENTBUS_BATCH_SIZE="-3"`},
		{nil, []string{"serve", "--block", "forever"}, `--block="forever"`},
		{[]string{"REDIS_URL=mysql://x"}, []string{"dev"}, `REDIS_URL="mysql://x"`},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		code := run(context.Background(), tt.args, nil, &out, &out, func(k string) string {
			for _, kv := range tt.env {
				if key, v, _ := strings.Cut(kv, "="); key == k {
					return v
				}
			}
			return ""
		})
		if code != 2 || !strings.Contains(out.String(), tt.want) {
			t.Errorf("%v %v: exit %d, output %q; want exit 2 naming %s", tt.env, tt.args, code, out.String(), tt.want)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, nil, &out, &out, os.Getenv); code != 2 {
		t.Errorf("exit %d", code)
	}
}

func TestPublishCommand(t *testing.T) {
	rs := redistest.Start(t)
	c := rs.Client(t)
	ctx := context.Background()
	env := func(k string) string {
		if k == "REDIS_URL" {
			return rs.URL()
		}
		return ""
	}
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"publish", "--type", "approval.item.approved", "--tenant", "t1", "--user", "u1", "--data", `{"itemId":"i1"}`},
		nil, &out, &errOut, env)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var p struct{ ID, StreamID string }
	if err := json.Unmarshal(out.Bytes(), &p); err != nil || p.StreamID == "" {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	msgs := c.XRange(ctx, "hyvve:events:main", p.StreamID, p.StreamID).Val()
	if len(msgs) != 1 || !strings.Contains(msgs[0].Values[rdb.FieldEvent].(string), `"itemId":"i1"`) {
		t.Fatalf("entry %v", msgs)
	}

	// stdin: one event per line, one atomic batch.
	out.Reset()
	stdin := strings.NewReader("{\"n\":1}\n{\"n\":2}\n\n{\"n\":3}\n")
	code = run(ctx, []string{"publish", "--type", "a.b.c", "--tenant", "t1", "--user", "u1", "--data", "-"}, stdin, &out, &errOut, env)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 3 {
		t.Fatalf("output %q, want 3 lines", out.String())
	}
	if n := c.XLen(ctx, "hyvve:events:main").Val(); n != 4 {
		t.Errorf("%d entries, want 4", n)
	}

	// A bad line: nothing of the batch is written; exit 2 naming the field.
	errOut.Reset()
	stdin = strings.NewReader("{\"n\":1}\n[1,2]\n")
	code = run(ctx, []string{"publish", "--type", "a.b.c", "--tenant", "t1", "--user", "u1", "--data", "-"}, stdin, &out, &errOut, env)
	if code != 2 || !strings.Contains(errOut.String(), "data") {
		t.Errorf("bad line: exit %d, %q", code, errOut.String())
	}
	if n := c.XLen(ctx, "hyvve:events:main").Val(); n != 4 {
		t.Errorf("%d entries after a refused batch, want 4", n)
	}
	errOut.Reset()
	code = run(ctx, []string{"publish", "--type", "a.b.c", "--user", "u1"}, nil, &out, &errOut, env)
	if code != 2 || !strings.Contains(errOut.String(), "tenantId") {
		t.Errorf("missing tenant: exit %d, %q", code, errOut.String())
	}
}

func TestDashboardURL(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"127.0.0.1:8080", "http://127.0.0.1:8080/"},
		{"0.0.0.0:8080", "http://localhost:8080/"},
		{"[::]:8080", "http://localhost:8080/"},
		{"[::1]:9000", "http://[::1]:9000/"},
	} {
		a, err := net.ResolveTCPAddr("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := dashboardURL(a); got != tt.want {
			t.Errorf("dashboardURL(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}
