package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestProgressLine: the bar, the percentage, the counters; the errors
// when there are some; the status unless running.
func TestProgressLine(t *testing.T) {
	for _, tt := range []struct {
		job  eventbus.ReplayJob
		want string
	}{
		{eventbus.ReplayJob{Status: eventbus.ReplayRunning, Progress: 45, Scanned: 12000, Matched: 900, Written: 900},
			"[#########...........]  45 %  scanned 12000 matched 900 written 900"},
		{eventbus.ReplayJob{Status: eventbus.ReplayPending},
			"[....................]   0 %  scanned 0 matched 0 written 0  pending (waiting for a server to pick it up)"},
		{eventbus.ReplayJob{Status: eventbus.ReplayCompleted, Progress: 100, Scanned: 10, Matched: 4, Written: 3, Errors: 1},
			"[####################] 100 %  scanned 10 matched 4 written 3 errors 1  completed"},
		{eventbus.ReplayJob{Status: eventbus.ReplayRunning, Progress: 130}, "[####################] 100 %  scanned 0 matched 0 written 0"},
		{eventbus.ReplayJob{Status: eventbus.ReplayCancelled, Progress: -5}, "[....................]   0 %  scanned 0 matched 0 written 0  cancelled"},
	} {
		if got := progressLine(tt.job); got != tt.want {
			t.Errorf("progressLine(%+v)\n got %q\nwant %q", tt.job, got, tt.want)
		}
	}
}

// TestProgressBar: on a terminal the line is redrawn in place with \r
// (blanking a longer previous line) and ended at the finish; elsewhere
// one line at most every second, and the last state always.
func TestProgressBar(t *testing.T) {
	running := func(pct int, scanned int64) eventbus.ReplayJob {
		return eventbus.ReplayJob{Status: eventbus.ReplayRunning, Progress: pct, Scanned: scanned}
	}
	var buf bytes.Buffer
	bar := newProgressBar(&buf, true)
	bar.update(eventbus.ReplayJob{Status: eventbus.ReplayPending})
	bar.update(running(50, 7))
	bar.update(running(50, 7)) // unchanged: not redrawn
	bar.finish(eventbus.ReplayJob{Status: eventbus.ReplayCompleted, Progress: 100, Scanned: 9})
	out := buf.String()
	if strings.Count(out, "\r") != 3 || !strings.HasSuffix(out, "  completed\n") || strings.Count(out, "\n") != 1 {
		t.Errorf("terminal output %q: want three redraws and one final newline", out)
	}
	// The running line is shorter than the pending one: the rest is blanked.
	pending := progressLine(eventbus.ReplayJob{Status: eventbus.ReplayPending})
	second := strings.Split(out, "\r")[2]
	if len(second) != len(pending) || strings.TrimRight(second, " ") != progressLine(running(50, 7)) {
		t.Errorf("redraw %q does not blank the longer line before it (%d runes)", second, len(pending))
	}

	buf.Reset()
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	bar = newProgressBar(&buf, false)
	bar.now = func() time.Time { return now }
	bar.update(running(10, 1)) // printed: the first line
	now = now.Add(300 * time.Millisecond)
	bar.update(running(20, 2)) // under a second: skipped
	now = now.Add(800 * time.Millisecond)
	bar.update(running(30, 3)) // printed
	now = now.Add(2 * time.Second)
	bar.update(running(30, 3)) // unchanged: skipped
	bar.finish(running(30, 3)) // the same as the last line: not repeated
	bar.finish(eventbus.ReplayJob{Status: eventbus.ReplayFailed, Progress: 30, Scanned: 3})
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []string{progressLine(running(10, 1)), progressLine(running(30, 3)), progressLine(eventbus.ReplayJob{Status: eventbus.ReplayFailed, Progress: 30, Scanned: 3})}
	if strings.Contains(buf.String(), "\r") || strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("non-terminal output:\n%s\nwant:\n%s", buf.String(), strings.Join(want, "\n"))
	}
}

// fakeJobs answers the job states in order, then the last one forever.
type fakeJobs struct {
	mu     sync.Mutex
	states []eventbus.ReplayJob
	err    error
	calls  int
}

func (f *fakeJobs) get(ctx context.Context) (eventbus.ReplayJob, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return eventbus.ReplayJob{}, f.err
	}
	j := f.states[min(f.calls-1, len(f.states)-1)]
	return j, nil
}

// TestWaitReplay: --wait follows the job to its end; it gives up (the job
// going on) when the job stays pending past the pending timeout, when a
// read fails or when it is interrupted.
func TestWaitReplay(t *testing.T) {
	job := func(status string, pct int) eventbus.ReplayJob {
		return eventbus.ReplayJob{ID: "j1", Status: status, Progress: pct}
	}
	pending := job(eventbus.ReplayPending, 0)
	for _, tt := range []struct {
		name    string
		states  []eventbus.ReplayJob
		err     error
		cancel  bool
		want    string // the final status
		wantErr string
	}{
		{name: "completes", states: []eventbus.ReplayJob{pending, job(eventbus.ReplayRunning, 40), job(eventbus.ReplayRunning, 80), job(eventbus.ReplayCompleted, 100)}, want: eventbus.ReplayCompleted},
		{name: "fails", states: []eventbus.ReplayJob{job(eventbus.ReplayRunning, 40), job(eventbus.ReplayFailed, 40)}, want: eventbus.ReplayFailed},
		{name: "cancelled", states: []eventbus.ReplayJob{job(eventbus.ReplayCancelled, 10)}, want: eventbus.ReplayCancelled},
		{name: "never picked up", states: []eventbus.ReplayJob{pending}, wantErr: "still pending after 50ms"},
		{name: "read fails", err: fmt.Errorf("x: %w", eventbus.ErrUnavailable), wantErr: "reading its progress (the job goes on)"},
		{name: "interrupted", states: []eventbus.ReplayJob{job(eventbus.ReplayRunning, 1)}, cancel: true, wantErr: "stopped waiting; replay job j1 goes on"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeJobs{states: tt.states, err: tt.err}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			var buf bytes.Buffer
			got, err := waitReplay(ctx, f.get, pending, time.Millisecond, 50*time.Millisecond, time.Second, newProgressBar(&buf, false))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Status != tt.want {
				t.Fatalf("got %+v %v, want status %s", got, err, tt.want)
			}
			if !strings.Contains(buf.String(), tt.want) {
				t.Errorf("progress output lacks the final status %s:\n%s", tt.want, buf.String())
			}
		})
	}
	// A job already ended is not read again.
	f := &fakeJobs{}
	if got, err := waitReplay(context.Background(), f.get, job(eventbus.ReplayCompleted, 100), time.Millisecond, time.Second, time.Second, newProgressBar(&bytes.Buffer{}, false)); err != nil || got.Status != eventbus.ReplayCompleted || f.calls != 0 {
		t.Errorf("ended job: %+v %v after %d reads", got, err, f.calls)
	}
}

// TestReplayOutcome: exit 0 for a completed job only.
func TestReplayOutcome(t *testing.T) {
	if err := replayOutcome(eventbus.ReplayJob{ID: "j", Status: eventbus.ReplayCompleted}); err != nil {
		t.Errorf("completed: %v", err)
	}
	for status, want := range map[string]string{eventbus.ReplayFailed: "failed: boom", eventbus.ReplayCancelled: "was cancelled", eventbus.ReplayRunning: "is running"} {
		if err := replayOutcome(eventbus.ReplayJob{ID: "j", Status: status, Error: "boom"}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", status, err, want)
		}
	}
}

// TestReplayErrorMapping: a refused request is a usage error naming the
// flag; a timeout says what may have happened.
func TestReplayErrorMapping(t *testing.T) {
	for _, tt := range []struct {
		err   error
		usage bool
		want  string
	}{
		{&eventbus.ReplayError{Field: "handlers", Reason: `no live consumer registered "mailer"`}, true, `replay start: --handler: no live consumer registered "mailer"`},
		{fmt.Errorf("x: %w", &eventbus.ReplayError{Field: "from", Reason: "before the main stream's first entry"}), true, "--from: before"},
		{&eventbus.ReplayError{Field: "types", Reason: "bad pattern"}, true, "--type: bad pattern"},
		{&eventbus.ReplayError{Field: "tenantId", Reason: "blank"}, true, "--tenant: blank"},
		{&eventbus.ReplayError{Field: "window", Reason: "no event in it"}, true, "--window: no event in it"},
		{fmt.Errorf("x: %w", eventbus.ErrInvalidScope), true, "--tenant"},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), false, "did not answer within 5s"},
		{fmt.Errorf("x: %w", eventbus.ErrUnavailable), false, "replay start: x:"},
	} {
		err := replayError("replay start", tt.err, 5*time.Second)
		var ue usageError
		if errors.As(err, &ue) != tt.usage || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v (usage %v), want %q (usage %v)", tt.err, err, errors.As(err, &ue), tt.want, tt.usage)
		}
	}
}

// TestReplayTables: the readable output of a job and of the list.
func TestReplayTables(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	started := at.Add(time.Second)
	job := eventbus.ReplayJob{ID: "01JD", Status: eventbus.ReplayRunning, Group: "hyvve-platform", Progress: 45,
		Request:         eventbus.ReplayRequest{From: at.Add(-time.Hour), To: at, Types: []string{"billing.*", "crm.deal.won"}, TenantID: "t1", Handlers: []string{"mailer"}, Rate: 500},
		EstimatedEvents: 2000, Scanned: 12000, Matched: 900, Written: 900, Cursor: "1796051508540-0",
		RequestedBy: "cli:ana", RequestedByTenant: "*", CreatedAt: at, StartedAt: &started}
	var buf bytes.Buffer
	if err := writeReplayJob(&buf, job); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"JOB ID        01JD\n", "STATUS        running\n", "PROGRESS      45 %\n", "WINDOW        2026-11-30T11:00:00Z .. 2026-11-30T12:00:00Z\n",
		"TYPES         billing.*,crm.deal.won\n", "TENANT        t1\n", "HANDLERS      mailer\n", "RATE          500 events/s\n", "DRY RUN       no\n",
		"ESTIMATED     2000\n", "WRITTEN       900\n", "REQUESTED BY  cli:ana (tenant *)\n", "STARTED AT    2026-11-30T12:00:01Z\n", "FINISHED AT   -\n"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("job output lacks %q:\n%s", want, buf.String())
		}
	}
	if strings.Contains(buf.String(), "ERROR ") {
		t.Errorf("job without error shows one:\n%s", buf.String())
	}
	buf.Reset()
	_ = writeReplayJob(&buf, eventbus.ReplayJob{ID: "02", Status: eventbus.ReplayFailed, Error: "redis: connection\nrefused", Request: eventbus.ReplayRequest{DryRun: true}})
	for _, want := range []string{"TYPES         * (every type)\n", "TENANT        * (every tenant)\n", "HANDLERS      every registered handler\n", "RATE          unlimited\n",
		"DRY RUN       yes\n", "ERROR         redis: connection refused\n"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("job output lacks %q:\n%s", want, buf.String())
		}
	}

	buf.Reset()
	if err := writeReplayTable(&buf, []eventbus.ReplayJob{job, {ID: "02", Status: eventbus.ReplayPending, CreatedAt: at}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "JOB ID STATUS PROGRESS TENANT TYPES HANDLERS FROM TO MATCHED WRITTEN REQUESTED BY CREATED AT" {
		t.Fatalf("table %q", buf.String())
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "01JD running 45 % t1 billing.*,crm.deal.won mailer 2026-11-30T11:00:00Z 2026-11-30T12:00:00Z 900 900 cli:ana 2026-11-30T12:00:00Z" {
		t.Errorf("row %q", lines[1])
	}
	if f := strings.Fields(lines[2]); strings.Join(f, " ") != "02 pending 0 % * * * - - 0 0 - 2026-11-30T12:00:00Z" {
		t.Errorf("row of an empty job %q", lines[2])
	}
}

// TestReplayCommandUsage: bad usage of the replay commands exits 2 with a
// message naming the problem, before anything is read or changed.
func TestReplayCommandUsage(t *testing.T) {
	_, prefix := redistest.Shared(t)
	env := inspectEnv(sharedURL(), prefix)
	window := []string{"--from", "2026-11-30T00:00:00Z", "--to", "2026-11-30T01:00:00Z"}
	for _, tt := range []struct {
		args      []string
		stderrHas string
	}{
		{[]string{"replay"}, "subcommand"},
		{[]string{"replay", "rewind"}, `unknown subcommand "rewind"`},
		{[]string{"replay", "start"}, "--from is required"},
		{[]string{"replay", "start", "--from", "2026-11-30T00:00:00Z"}, "--to is required"},
		{[]string{"replay", "start", "--from", "yesterday", "--to", "2026-11-30T01:00:00Z"}, "RFC 3339"},
		{append([]string{"replay", "start", "--rate", "-1"}, window...), "--rate"},
		{append([]string{"replay", "start", "--rate", "fast"}, window...), "invalid value"},
		{append([]string{"replay", "start", "--tenant", " "}, window...), "--tenant"},
		{append([]string{"replay", "start", "--wait", "--pending-timeout", "0s"}, window...), "--pending-timeout"},
		{append([]string{"replay", "start", "--timeout", "0s"}, window...), "--timeout"},
		{append(append([]string{"replay", "start"}, window...), "extra"), "unexpected argument"},
		{[]string{"replay", "status"}, "want one job id"},
		{[]string{"replay", "status", "a", "b"}, "want one job id"},
		{[]string{"replay", "list", "extra"}, "unexpected argument"},
		{[]string{"replay", "list", "--limit", "0"}, "--limit"},
		{[]string{"replay", "list", "--limit", "101"}, "--limit"},
		{[]string{"replay", "list", "--tenant", ""}, "--tenant"},
		{[]string{"replay", "cancel"}, "want one job id"},
		{[]string{"replay", "cancel", "--type", "a.b", "j1"}, "flag provided but not defined"},
	} {
		code, out, errOut := runRead(t, env, tt.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tt.stderrHas) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 mentioning %q", tt.args, code, out, errOut, tt.stderrHas)
		}
	}
	for _, args := range [][]string{{"replay", "--help"}, {"replay", "start", "-h"}, {"replay", "list", "-h"}, {"replay", "cancel", "-h"}, {"replay", "status", "-h"}} {
		if code, _, _ := runRead(t, env, args...); code != 0 {
			t.Errorf("%v: exit %d, want 0", args, code)
		}
	}
}

// TestReplayCommandsRedisDown: with Redis not there the commands exit 1
// and say so. It needs the Inspector's replay implementation (the stubs
// do not reach Redis).
func TestReplayCommandsRedisDown(t *testing.T) {
	_, prefix := redistest.Shared(t)
	down := inspectEnv("redis://"+freeAddr(t), prefix)
	for _, args := range [][]string{{"replay", "list"}, {"replay", "status", "01JDB4M1Q0X7Y9C2E4G6J8K0N2"}, {"replay", "cancel", "01JDB4M1Q0X7Y9C2E4G6J8K0N2"},
		{"replay", "start", "--from", "2026-11-30T00:00:00Z", "--to", "2026-11-30T01:00:00Z"}} {
		code, out, errOut := runRead(t, down, append(args[:2:2], append([]string{"--timeout", "5s"}, args[2:]...)...)...)
		if code != 1 || out != "" || !strings.Contains(errOut, "redis unavailable") {
			t.Errorf("%v with Redis down: exit %d, stdout %q, stderr %q; want exit 1 saying redis unavailable", args, code, out, errOut)
		}
	}
}

// TestReplayCommands runs the replay commands against events published
// through the public path, with a live consumer whose handler "billing"
// records the replayed copies it runs: start, status, list and cancel
// without a runner (jobs stay pending; --wait gives up), then start
// --wait with a runner (Bus.Run) to the job's completion. It needs the
// Inspector's replay implementation and the runner (it fails against the
// stubs).
func TestReplayCommands(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	bus, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix, Block: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	cons, err := bus.NewConsumer(eventbus.ConsumerConfig{ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	copies := map[string]int{} // event id -> replayed copies run
	if err := cons.Handle("billing", "ops.*", eventbus.HandlerFunc(func(_ context.Context, e eventbus.Event) error {
		var data map[string]any
		if json.Unmarshal(e.Data, &data) == nil && data["__replay"] == true {
			mu.Lock()
			copies[e.ID]++
			mu.Unlock()
		}
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	consDone := make(chan struct{})
	go func() { defer close(consDone); _ = cons.Run(runCtx) }()
	defer func() { stop(); <-consDone }()
	keys := rdb.NewKeys(prefix, false)
	deadline := time.Now().Add(30 * time.Second)
	for c.HLen(ctx, keys.Consumers(eventbus.DefaultGroup)).Val() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the consumer did not register")
		}
		time.Sleep(20 * time.Millisecond)
	}
	from := time.Now().Add(-time.Second).UTC()
	want := map[string]bool{} // the ops.a events of t1
	for i := range 10 {
		for _, e := range []struct{ typ, tenant string }{{"ops.a", "t1"}, {"ops.b", "t1"}, {"ops.a", "t2"}} {
			p, err := bus.Publish(ctx, eventbus.Event{Type: e.typ, TenantID: e.tenant, UserID: "u", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))})
			if err != nil {
				t.Fatal(err)
			}
			if e.typ == "ops.a" && e.tenant == "t1" {
				want[p.ID] = true
			}
		}
	}
	to := time.Now().Add(time.Second).UTC()
	window := []string{"--from", from.Format(time.RFC3339Nano), "--to", to.Format(time.RFC3339Nano)}
	env := inspectEnv(sharedURL(), prefix)
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(ctx, args, nil, &out, &errOut, env)
		return code, out.String(), errOut.String()
	}

	// start without a runner: a pending job, printed; status; list; cancel.
	code, out, errOut := cli(append([]string{"replay", "start", "--tenant", "t1", "--type", "ops.a", "--handler", "billing", "--actor", "tester", "--json"}, window...)...)
	var job eventbus.ReplayJob
	if code != 0 || json.Unmarshal([]byte(out), &job) != nil || job.ID == "" || job.Status != eventbus.ReplayPending || job.Request.TenantID != "t1" || job.RequestedBy != "tester" {
		t.Fatalf("replay start: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := cli("replay", "status", job.ID); code != 0 || !strings.Contains(out, "JOB ID        "+job.ID) || !strings.Contains(out, "STATUS        pending") {
		t.Errorf("replay status: exit %d\n%s", code, out)
	}
	if code, _, errOut := cli("replay", "status", "--tenant", "t2", job.ID); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("replay status of another tenant's job: exit %d %s", code, errOut)
	}
	if code, out, _ := cli("replay", "list"); code != 0 || !strings.HasPrefix(out, "JOB ID") || !strings.Contains(out, job.ID) {
		t.Errorf("replay list: exit %d\n%s", code, out)
	}
	if code, out, _ := cli("replay", "list", "--tenant", "t2", "--json"); code != 0 || out != "" {
		t.Errorf("replay list --tenant t2: exit %d %q, want no job", code, out)
	}
	if code, out, errOut := cli("replay", "cancel", "--actor", "tester", job.ID); code != 0 || out != "cancelled: "+job.ID+"\n" {
		t.Errorf("replay cancel: exit %d %q %q", code, out, errOut)
	}
	if code, _, errOut := cli("replay", "cancel", job.ID); code != 1 || !strings.Contains(errOut, "finished already") {
		t.Errorf("replay cancel again: exit %d %q", code, errOut)
	}
	if code, _, errOut := cli("replay", "cancel", "no-such-job"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("replay cancel of an unknown job: exit %d %q", code, errOut)
	}
	// A refused request names the flag (exit 2).
	if code, _, errOut := cli(append([]string{"replay", "start", "--handler", "nobody"}, window...)...); code != 2 || !strings.Contains(errOut, "--handler") {
		t.Errorf("replay start --handler nobody: exit %d %q", code, errOut)
	}
	// --wait without a server gives up and says why; the job stays queued.
	code, _, errOut = cli(append([]string{"replay", "start", "--wait", "--pending-timeout", "1s", "--handler", "billing"}, window...)...)
	if code != 1 || !strings.Contains(errOut, "still pending after 1s") || !strings.Contains(errOut, "eventbus serve") {
		t.Errorf("replay start --wait without a server: exit %d %q", code, errOut)
	}
	code, out, _ = cli("replay", "list", "--json")
	queued := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var j eventbus.ReplayJob
		if json.Unmarshal([]byte(l), &j) == nil && j.Status == eventbus.ReplayPending {
			queued++
			if code, _, errOut := cli("replay", "cancel", j.ID); code != 0 {
				t.Errorf("cancelling the queued job %s: %s", j.ID, errOut)
			}
		}
	}
	if code != 0 || queued != 1 {
		t.Errorf("replay list --json: exit %d, %d jobs pending, want the one --wait gave up on:\n%s", code, queued, out)
	}

	// With a runner: --wait follows the job to its end.
	busCtx, stopBus := context.WithCancel(ctx)
	busDone := make(chan struct{})
	go func() { defer close(busDone); _ = bus.Run(busCtx) }()
	defer func() { stopBus(); <-busDone }()
	code, out, errOut = cli(append([]string{"replay", "start", "--wait", "--tenant", "t1", "--type", "ops.a", "--handler", "billing"}, window...)...)
	if code != 0 || !strings.Contains(out, "STATUS        completed") || !strings.Contains(out, "WRITTEN       10\n") ||
		!strings.Contains(errOut, "about ") || !strings.Contains(errOut, "100 %") || !strings.Contains(errOut, "completed") {
		t.Fatalf("replay start --wait: exit %d\n%s\n%s", code, out, errOut)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(copies)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for id := range want {
		if copies[id] != 1 {
			t.Errorf("event %s: %d replayed copies run, want 1", id, copies[id])
		}
	}
	for id, n := range copies {
		if !want[id] {
			t.Errorf("event %s (not matching) replayed %d times", id, n)
		}
	}
}
