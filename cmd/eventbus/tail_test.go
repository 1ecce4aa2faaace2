package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// lockedBuffer is a bytes.Buffer safe for a running command and a test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitText polls until cond holds, failing after a generous bound.
func waitText(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTailCommand: eventbus tail prints the events published after it
// started that match its flags (a line each, or JSON with --json), not
// the earlier ones, and exits 0 when its context is cancelled; bad flags
// exit 2.
func TestTailCommand(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	bus, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	before, err := bus.Publish(ctx, eventbus.Event{Type: "approval.item.approved", TenantID: "t1", UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	env := inspectEnv(sharedURL(), prefix)
	for _, asJSON := range []bool{false, true} {
		args := []string{"tail", "--type", "approval.*", "--tenant", "t1"}
		if asJSON {
			args = append(args, "--json")
		}
		tctx, cancel := context.WithCancel(ctx)
		var out, errOut lockedBuffer
		code := make(chan int, 1)
		go func() { code <- run(tctx, args, nil, &out, &errOut, env) }()
		waitText(t, "tail to start", func() bool { return strings.Contains(errOut.String(), "following new events") })
		var want eventbus.Published
		for _, e := range []eventbus.Event{
			{Type: "approval.item.rejected", TenantID: "t2", UserID: "u"},
			{Type: "crm.deal.won", TenantID: "t1", UserID: "u"},
			{Type: "approval.item.approved", TenantID: "t1", UserID: "u"},
		} {
			if want, err = bus.Publish(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		waitText(t, "the event printed", func() bool { return strings.Contains(out.String(), want.ID) })
		cancel()
		select {
		case got := <-code:
			if got != 0 {
				t.Errorf("tail after Ctrl-C: exit %d, stderr %q", got, errOut.String())
			}
		case <-time.After(15 * time.Second):
			t.Fatal("tail did not stop after its context was cancelled")
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if asJSON {
			var it eventbus.BrowsedEvent
			if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &it) != nil || it.Event.ID != want.ID || it.StreamID != want.StreamID {
				t.Errorf("--json output %q", out.String())
			}
			continue
		}
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "TIME") {
			t.Fatalf("output %q, want a header and one line", out.String())
		}
		f := strings.Fields(lines[1])
		if len(f) != 5 || f[1] != want.StreamID || f[2] != "approval.item.approved" || f[3] != "t1" || f[4] != want.ID || strings.Contains(out.String(), before.ID) {
			t.Errorf("line %q, want stream id %s and event id %s", lines[1], want.StreamID, want.ID)
		}
	}
	for _, args := range [][]string{{"tail", "--type", "a*b"}, {"tail", "--tenant", " "}, {"tail", "extra"}} {
		if code, _, errOut := runRead(t, env, args...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", args, code, errOut)
		}
	}
}
