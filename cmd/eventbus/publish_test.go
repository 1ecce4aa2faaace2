package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/redistest"
)

// publishEnv is the environment of an eventbus publish against redisURL.
func publishEnv(redisURL string) func(string) string {
	return func(k string) string {
		if k == "REDIS_URL" {
			return redisURL
		}
		return ""
	}
}

// runPublish runs "eventbus publish" with args and stdin (nil for none).
func runPublish(t *testing.T, redisURL, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	var in *strings.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	args = append([]string{"publish", "--type", "a.b.c", "--tenant", "t1", "--user", "u1"}, args...)
	if in == nil {
		code = run(context.Background(), args, nil, &out, &errOut, publishEnv(redisURL))
	} else {
		code = run(context.Background(), args, in, &out, &errOut, publishEnv(redisURL))
	}
	return code, out.String(), errOut.String()
}

// stdinLines returns n lines of JSON objects.
func stdinLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "{\"n\":%d}\n", i)
	}
	return b.String()
}

// TestPublishCommandRefusedAuthFails: against a Redis that refuses the
// password (wrong or missing), eventbus publish prints an error and exits
// non-zero, never {"id","streamId":""} with exit 0 (issue 9, item 1).
func TestPublishCommandRefusedAuthFails(t *testing.T) {
	// Same as redis-server --requirepass secret; set at run time because
	// redistest's readiness check does not authenticate.
	rs := redistest.Start(t)
	ctx := context.Background()
	if err := rs.Client(t).ConfigSet(ctx, "requirepass", "secret").Err(); err != nil {
		t.Fatal(err)
	}
	admin := redis.NewClient(&redis.Options{Addr: rs.Addr(), Password: "secret"})
	t.Cleanup(func() { admin.Close() })
	if err := admin.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, url string }{
		{"wrong password", "redis://:wrong@" + rs.Addr()},
		{"missing password", "redis://" + rs.Addr()},
	} {
		for _, mode := range []struct {
			name  string
			stdin string
			args  []string
		}{
			{"single", "", []string{"--data", `{"k":1}`}},
			{"single with id", "", []string{"--data", `{"k":1}`, "--id", "given-1"}},
			{"stdin batch", "{\"n\":1}\n{\"n\":2}\n", []string{"--data", "-"}},
		} {
			t.Run(tt.name+"/"+mode.name, func(t *testing.T) {
				code, out, errOut := runPublish(t, tt.url, mode.stdin, append(mode.args, "--timeout", "5s")...)
				if code == 0 {
					t.Errorf("exit 0, want non-zero; stdout %q stderr %q", out, errOut)
				}
				if strings.Contains(out, "streamId") {
					t.Errorf("stdout %q claims a publish", out)
				}
				if strings.TrimSpace(errOut) == "" {
					t.Errorf("no error message on stderr")
				}
			})
		}
	}
	if n := admin.XLen(ctx, "hyvve:events:main").Val(); n != 0 {
		t.Errorf("%d entries written, want none", n)
	}
	// The right password works.
	code, out, errOut := runPublish(t, "redis://:secret@"+rs.Addr(), "", "--data", `{"k":1}`)
	if code != 0 || !strings.Contains(out, "streamId") {
		t.Fatalf("right password: exit %d, %q %q", code, out, errOut)
	}
}

// TestPublishCommandStdinLimit: --data - publishes at most 1000 events
// (one atomic batch, like POST /v1/events/batch); more is a usage error
// and writes nothing.
func TestPublishCommandStdinLimit(t *testing.T) {
	rs := redistest.Start(t)
	c := rs.Client(t)
	ctx := context.Background()

	// 1000 events with blank lines among them: accepted.
	code, out, errOut := runPublish(t, rs.URL(), "\n"+stdinLines(500)+"\n\n"+stdinLines(500), "--data", "-")
	if code != 0 {
		t.Fatalf("1000 events: exit %d: %s", code, errOut)
	}
	if lines := strings.Count(out, "\n"); lines != 1000 {
		t.Errorf("%d output lines, want 1000", lines)
	}
	if n := c.XLen(ctx, "hyvve:events:main").Val(); n != 1000 {
		t.Fatalf("%d entries, want 1000", n)
	}

	// 1001 events: refused, nothing written; the message names the
	// limit and the stdin line of the 1001st event.
	code, out, errOut = runPublish(t, rs.URL(), "\n"+stdinLines(1001), "--data", "-")
	if code != 2 {
		t.Errorf("1001 events: exit %d, want 2 (%s)", code, errOut)
	}
	if !strings.Contains(errOut, "1000") || !strings.Contains(errOut, "stdin line 1002") || !strings.Contains(errOut, "nothing was written") {
		t.Errorf("message %q: want the limit 1000, stdin line 1002 and nothing was written", errOut)
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
	if n := c.XLen(ctx, "hyvve:events:main").Val(); n != 1000 {
		t.Errorf("%d entries after the refused input, want 1000", n)
	}

	// The limit is in the help text.
	code, _, errOut = runPublish(t, rs.URL(), "", "-h")
	if code != 0 || !strings.Contains(errOut, "at most 1000") {
		t.Errorf("help: exit %d, %q does not state the limit", code, errOut)
	}
}

// TestPublishCommandNamesStdinLines: errors about stdin name its line,
// counted from 1 with blank lines included, never the 0-based index in
// the batch.
func TestPublishCommandNamesStdinLines(t *testing.T) {
	rs := redistest.Start(t)
	c := rs.Client(t)
	ctx := context.Background()
	for _, tt := range []struct {
		name, stdin, want string
		args              []string
	}{
		{"second event on line 4", "\n{\"n\":1}\n\n[1,2]\n{\"n\":3}\n", "stdin line 4: ", nil},
		{"first event on line 3", "\n\n{\"n\":1,\"t\":\"\xff\"}\n{\"n\":2}\n", "stdin line 3: ", nil},
		{"the only event, on line 2", "\n[1]\n", "stdin line 2: ", nil},
		{"a line over the size limit", "{\"n\":1}\n{\"blob\":\"" + strings.Repeat("x", 2000) + "\"}\n", "stdin line 2: ", []string{"--max-event-size", "1024"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runPublish(t, rs.URL(), tt.stdin, append([]string{"--data", "-"}, tt.args...)...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, %q; want exit 2 naming %q", code, errOut, tt.want)
			}
			if strings.Contains(errOut, "[0]") || strings.Contains(errOut, "[1]:") {
				t.Errorf("message %q shows a batch index", errOut)
			}
			if out != "" {
				t.Errorf("stdout %q", out)
			}
		})
	}
	if n := c.XLen(ctx, "hyvve:events:main").Val(); n != 0 {
		t.Errorf("%d entries written, want none", n)
	}

	// --id with stdin: each event's id ends with its stdin line.
	code, out, errOut := runPublish(t, rs.URL(), "\n{\"n\":1}\n\n{\"n\":2}\n", "--data", "-", "--id", "imp")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var ids []string
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var p struct{ ID, StreamID string }
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.ID)
	}
	if strings.Join(ids, ",") != "imp-2,imp-4" {
		t.Errorf("ids %v, want imp-2,imp-4", ids)
	}
}

// TestPublishCommandRefusesNonPositiveTimeout: a negative or zero
// --timeout is a usage error (exit 2), found before Redis is contacted.
func TestPublishCommandRefusesNonPositiveTimeout(t *testing.T) {
	for _, timeout := range []string{"-1s", "0s", "-5ms"} {
		code, out, errOut := runPublish(t, "redis://127.0.0.1:1", "", "--data", "{}", "--timeout", timeout)
		if code != 2 || !strings.Contains(errOut, "--timeout") {
			t.Errorf("--timeout %s: exit %d, %q; want exit 2 naming --timeout", timeout, code, errOut)
		}
		if out != "" {
			t.Errorf("--timeout %s: stdout %q", timeout, out)
		}
	}
}
