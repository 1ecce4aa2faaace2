package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// inspectEnv is the environment of a read command against redisURL with
// key prefix prefix.
func inspectEnv(redisURL, prefix string) func(string) string {
	return func(k string) string {
		switch k {
		case "REDIS_URL":
			return redisURL
		case "EVENTBUS_PREFIX":
			return prefix
		}
		return ""
	}
}

// sharedURL is the URL of the shared test Redis.
func sharedURL() string {
	if u := os.Getenv(redistest.SharedURLEnv); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379"
}

// runRead runs "eventbus <args...>" with env.
func runRead(t *testing.T, env func(string) string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, nil, &out, &errOut, env)
	return code, out.String(), errOut.String()
}

// TestStatusCommand: eventbus status prints what the Inspector answers
// (exit 0), says clearly when the event is not found or Redis fails
// (exit 1), and refuses bad usage (exit 2).
func TestStatusCommand(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	bus, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	made, err := bus.Publish(ctx, eventbus.Event{Type: "crm.deal.won", TenantID: "t1", UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	given, err := bus.Publish(ctx, eventbus.Event{ID: "deal-7", Type: "crm.deal.won", TenantID: "t1", UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	env := inspectEnv(sharedURL(), prefix)
	in := bus.Inspector()

	for _, tt := range []struct {
		args  []string
		scope eventbus.Scope
		id    string
		want  string // stream id
	}{
		{[]string{"status", made.ID}, eventbus.AllTenants(), made.ID, made.StreamID},
		{[]string{"status", "--tenant", "t1", made.ID}, eventbus.TenantScope("t1"), made.ID, made.StreamID},
		{[]string{"status", "--tenant=t1", "deal-7"}, eventbus.TenantScope("t1"), "deal-7", given.StreamID},
	} {
		code, out, errOut := runRead(t, env, tt.args...)
		var st eventbus.EventStatus
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.StreamID != tt.want || st.State != eventbus.StatePending || st.TenantID != "t1" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want the status of %s", tt.args, code, out, errOut, tt.want)
			continue
		}
		want, err := in.Status(ctx, tt.scope, tt.id)
		if err != nil {
			t.Fatal(err)
		}
		if wj, _ := json.Marshal(want); !bytes.Equal(compact(t, out), wj) {
			t.Errorf("%v printed %s, the Inspector answers %s", tt.args, compact(t, out), wj)
		}
	}

	for _, tt := range []struct {
		args      []string
		code      int
		stderrHas []string
		notStdout bool
	}{
		{[]string{"status", "deal-7"}, 1, []string{`event "deal-7" not found in any tenant`, "--tenant"}, true},
		{[]string{"status", "--tenant", "t2", made.ID}, 1, []string{`event "` + made.ID + `" not found for tenant "t2"`}, true},
		{[]string{"status", "--tenant", "t2", "deal-7"}, 1, []string{"not found"}, true},
		{[]string{"status"}, 2, []string{"want one event id"}, true},
		{[]string{"status", made.ID, "deal-7"}, 2, []string{"want one event id", "flags go before the id"}, true},
		{[]string{"status", made.ID, "--tenant", "t1"}, 2, []string{"flags go before the id"}, true},
		{[]string{"status", "--tenant", "", made.ID}, 2, []string{"--tenant", "invalid tenant scope"}, true},
		{[]string{"status", "--timeout", "-1s", made.ID}, 2, []string{"--timeout"}, true},
		{[]string{"status", "--no-such-flag", made.ID}, 2, []string{"no-such-flag"}, true},
	} {
		code, out, errOut := runRead(t, env, tt.args...)
		if code != tt.code || tt.notStdout && out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d", tt.args, code, out, errOut, tt.code)
		}
		for _, s := range tt.stderrHas {
			if !strings.Contains(errOut, s) {
				t.Errorf("%v: stderr %q lacks %q", tt.args, errOut, s)
			}
		}
	}

	// Redis not there: exit 1, saying so.
	down := inspectEnv("redis://"+freeAddr(t), prefix)
	code, out, errOut := runRead(t, down, "status", "--timeout", "5s", made.ID)
	if code != 1 || out != "" || !strings.Contains(errOut, "redis unavailable") {
		t.Errorf("status with Redis down: exit %d, stdout %q, stderr %q; want exit 1 saying redis unavailable", code, out, errOut)
	}
}

// TestHealthCommand: eventbus health prints the full health report
// (exit 0 when healthy, 1 when not, with the warnings on stderr) and
// refuses bad usage (exit 2).
func TestHealthCommand(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	bus, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	env := inspectEnv(sharedURL(), prefix)

	// Not set up: unhealthy, the report still printed.
	code, out, errOut := runRead(t, env, "health")
	var h eventbus.Health
	if code != 1 || json.Unmarshal([]byte(out), &h) != nil || h.Healthy || !h.Redis.Connected || h.Streams.Main.Exists ||
		!strings.Contains(errOut, "unhealthy") || !strings.Contains(errOut, "does not exist") {
		t.Errorf("health before set-up: exit %d, stdout %q, stderr %q; want exit 1 and an unhealthy report", code, out, errOut)
	}

	if err := bus.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.Publish(ctx, eventbus.Event{Type: "crm.deal.won", TenantID: "t1", UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runRead(t, env, "health")
	h = eventbus.Health{}
	if code != 0 || errOut != "" || json.Unmarshal([]byte(out), &h) != nil || !h.Healthy || h.Streams.Main.Name != rdb.NewKeys(prefix, false).Main() ||
		h.Streams.Main.Length != 1 || len(h.Streams.Main.Groups) != 1 || h.Streams.Main.Groups[0].Name != eventbus.DefaultGroup {
		t.Errorf("health: exit %d, stdout %q, stderr %q; want exit 0 and the full report", code, out, errOut)
	}
	// The same report as the Inspector's, but for the time and latency.
	want := bus.Inspector().Health(ctx)
	want.Timestamp, want.Redis.LatencyMs = h.Timestamp, h.Redis.LatencyMs
	if wj, hj := mustJSON(t, want), mustJSON(t, h); !bytes.Equal(wj, hj) {
		t.Errorf("health printed %s, the Inspector reports %s", hj, wj)
	}

	if code, _, errOut := runRead(t, env, "health", "extra"); code != 2 || !strings.Contains(errOut, "unexpected argument") {
		t.Errorf("health extra: exit %d, stderr %q; want 2", code, errOut)
	}
	if code, _, _ := runRead(t, env, "health", "--timeout", "0s"); code != 2 {
		t.Errorf("health --timeout 0s: exit %d, want 2", code)
	}

	// Redis not there: unhealthy, exit 1.
	down := inspectEnv("redis://"+freeAddr(t), prefix)
	code, out, errOut = runRead(t, down, "health", "--timeout", "5s")
	h = eventbus.Health{}
	if code != 1 || json.Unmarshal([]byte(out), &h) != nil || h.Healthy || h.Redis.Connected || !strings.Contains(errOut, "redis unreachable") {
		t.Errorf("health with Redis down: exit %d, stdout %q, stderr %q; want exit 1 and redis unreachable", code, out, errOut)
	}
}

func compact(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("not JSON: %q: %v", s, err)
	}
	return b.Bytes()
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
