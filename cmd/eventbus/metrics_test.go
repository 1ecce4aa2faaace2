package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/eventbus/internal/redistest"
)

func TestServeMetrics(t *testing.T) {
	rs := redistest.Start(t)
	get := func(url, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, public := range []bool{false, true} {
		addr := freeAddr(t)
		env := []string{"REDIS_URL=" + rs.URL(), "EVENTBUS_HTTP_ADDR=" + addr, "EVENTBUS_API_KEYS=metrics-key-0000000=*:viewer"}
		if public {
			env = append(env, "EVENTBUS_METRICS_PUBLIC=true")
		}
		p := start(t, env, "serve")
		poll(t, 20*time.Second, "/readyz", func() bool {
			code, _, err := getJSON("http://" + addr + "/readyz")
			return err == nil && code == http.StatusOK
		})
		code, _ := get("http://"+addr+"/metrics", "")
		want := http.StatusUnauthorized
		if public {
			want = http.StatusOK
		}
		if code != want {
			t.Errorf("public=%v: GET /metrics without a token = %d, want %d", public, code, want)
		}
		code, body := get("http://"+addr+"/metrics", "metrics-key-0000000")
		if code != http.StatusOK {
			t.Fatalf("public=%v: GET /metrics with a token = %d %s", public, code, body)
		}
		for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "eventbus_redis_up 1", "eventbus_stream_length{stream=\"main\"}", "eventbus_publish_duration_seconds"} {
			if !strings.Contains(body, name) {
				t.Errorf("public=%v: %q missing from /metrics", public, name)
			}
		}
		if code := p.stop(t); code != 0 {
			t.Errorf("exit code %d after SIGTERM\n%s", code, p.out)
		}
	}
}
