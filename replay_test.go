package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// seedMain writes n entries to the main stream with explicit ids, one
// per millisecond from base: entry i has id "<base+i>-0" and is ev(i)
// (or, when raw(i) is not "", that payload as is). It returns the ids.
func seedMain(t testing.TB, c redis.UniversalClient, prefix string, base int64, n int, ev func(i int) eventbus.Event, raw func(i int) string) []string {
	t.Helper()
	ctx := context.Background()
	main := testKeys(prefix).Main()
	ids := make([]string, n)
	for start := 0; start < n; start += 2000 {
		pipe := c.Pipeline()
		for i := start; i < min(n, start+2000); i++ {
			ids[i] = fmt.Sprintf("%d-0", base+int64(i))
			var payload string
			if raw != nil {
				payload = raw(i)
			}
			if payload == "" {
				e := ev(i)
				if e.ID == "" {
					e.ID = fmt.Sprintf("e%d", i)
				}
				if e.Timestamp.IsZero() {
					e.Timestamp = time.UnixMilli(base + int64(i))
				}
				b, err := json.Marshal(e)
				if err != nil {
					t.Fatal(err)
				}
				payload = string(b)
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: main, ID: ids[i], Values: []any{rdb.FieldEvent, payload}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// skipMainBacklog makes group read only main stream entries written from
// now on (the seeded ones are replayed, not delivered).
func skipMainBacklog(t testing.TB, c redis.UniversalClient, prefix, group string) {
	t.Helper()
	if err := c.XGroupSetID(context.Background(), testKeys(prefix).Main(), group, "$").Err(); err != nil {
		t.Fatal(err)
	}
}

// fakeConsumer registers a live consumer of group with handlers in the
// group's registry (its heartbeat), without running one.
func fakeConsumer(t testing.TB, c redis.UniversalClient, prefix, group string, handlers ...string) {
	t.Helper()
	names, _ := json.Marshal(handlers)
	r := rdb.New(c, testKeys(prefix), rdb.Options{})
	if err := r.Heartbeat(context.Background(), group, "fake-"+group, names, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
}

// waitJob polls job id until cond holds and returns it.
func waitJob(t testing.TB, in *eventbus.Inspector, id string, timeout time.Duration, what string, cond func(eventbus.ReplayJob) bool) eventbus.ReplayJob {
	t.Helper()
	var job eventbus.ReplayJob
	waitFor(t, timeout, what, func() bool {
		var err error
		job, err = in.Replay(context.Background(), eventbus.AllTenants(), id)
		if err != nil {
			t.Fatalf("Replay(%s): %v", id, err)
		}
		return cond(job)
	})
	return job
}

// checkCopiesOnce fails unless the replay stream of prefix holds n valid
// copies, one per original stream id.
func checkCopiesOnce(t testing.TB, c redis.UniversalClient, prefix string, n int) {
	t.Helper()
	seen := map[string]bool{}
	for _, m := range c.XRange(context.Background(), testKeys(prefix).Replay(), "-", "+").Val() {
		raw, _ := m.Values[rdb.FieldEvent].(string)
		ev, err := eventbus.DecodeEvent([]byte(raw), 0)
		if err != nil || ev.Replay == nil || seen[ev.Replay.OriginalStreamID] {
			t.Fatalf("copy %s: %v, no replay info, or a duplicate", m.ID, err)
		}
		seen[ev.Replay.OriginalStreamID] = true
	}
	if len(seen) != n {
		t.Errorf("%d copies, want %d", len(seen), n)
	}
}

func ended(j eventbus.ReplayJob) bool {
	return j.Status == eventbus.ReplayCompleted || j.Status == eventbus.ReplayFailed || j.Status == eventbus.ReplayCancelled
}

// replaySettled reports whether every group has read and acknowledged
// every entry of the replay stream.
func replaySettled(t testing.TB, c redis.UniversalClient, prefix string, groups ...string) bool {
	ctx := context.Background()
	stream := testKeys(prefix).Replay()
	last := c.XRevRangeN(ctx, stream, "+", "-", 1).Val()
	info, err := c.XInfoGroups(ctx, stream).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		ok := false
		for _, gi := range info {
			if gi.Name == g {
				ok = gi.Pending == 0 && (len(last) == 0 || gi.LastDeliveredID == last[0].ID)
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// runLog records handler runs: group/handler -> event id -> runs, and
// every problem seen with a copy.
type runLog struct {
	mu       sync.Mutex
	runs     map[string]map[string]int
	problems []string
}

func newRunLog() *runLog { return &runLog{runs: map[string]map[string]int{}} }

func (l *runLog) handler(group, name, job string, origin map[string]string) eventbus.HandlerFunc {
	return func(ctx context.Context, ev eventbus.Event) error {
		l.mu.Lock()
		defer l.mu.Unlock()
		key := group + "/" + name
		if l.runs[key] == nil {
			l.runs[key] = map[string]int{}
		}
		l.runs[key][ev.ID]++
		d, _ := eventbus.DeliveryFromContext(ctx)
		var data struct {
			Replay bool `json:"__replay"`
			N      *int `json:"n"`
		}
		_ = json.Unmarshal(ev.Data, &data)
		switch {
		case ev.Replay == nil || d.Replay == "":
			l.problems = append(l.problems, fmt.Sprintf("%s ran %s without replay info", key, ev.ID))
		case job != "" && (ev.Replay.JobID != job || d.Replay != job):
			l.problems = append(l.problems, fmt.Sprintf("%s ran %s of job %s/%s, want %s", key, ev.ID, ev.Replay.JobID, d.Replay, job))
		case origin != nil && ev.Replay.OriginalStreamID != origin[ev.ID]:
			l.problems = append(l.problems, fmt.Sprintf("%s: %s has original stream id %s, want %s", key, ev.ID, ev.Replay.OriginalStreamID, origin[ev.ID]))
		case !data.Replay:
			l.problems = append(l.problems, fmt.Sprintf("%s: %s data %s lacks __replay", key, ev.ID, ev.Data))
		case origin != nil && (data.N == nil || fmt.Sprintf("e%d", *data.N) != ev.ID):
			l.problems = append(l.problems, fmt.Sprintf("%s: %s data %s lost its fields", key, ev.ID, ev.Data))
		}
		return nil
	}
}

func (l *runLog) get(key string) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, v := range l.runs[key] {
		out[k] = v
	}
	return out
}

var replayTypes = []string{"order.created", "order.paid", "invoice.sent"}

// replayEvent is seeded entry i: one of three types, one of four tenants.
func replayEvent(i int) eventbus.Event {
	return eventbus.Event{Type: replayTypes[i%3], TenantID: fmt.Sprintf("t%d", i%4+1), UserID: "u1",
		Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
}

// The test: 100,000 events of several types and tenants; a 10 %
// window filtered by type is replayed to one handler of one group: each
// matching event is delivered once, to that handler only, as a copy
// marked as such; no other handler and no other group runs anything;
// the job's counters are exact.
func TestReplayWindowToOneHandlerOfOneGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 100,000 events: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	const n, from, to, bad = 100000, 45000, 54999, 45003
	base := time.Now().Add(-2 * time.Hour).UnixMilli()
	ids := seedMain(t, c, prefix, base, n, replayEvent, func(i int) string {
		if i == bad { // matches the filter, but is no valid event (no userId)
			return `{"id":"bad","type":"order.created","tenantId":"t1","data":{}}`
		}
		return ""
	})
	origin := map[string]string{}
	want := 0
	for i := from; i <= to; i++ {
		if i%3 == 0 && i != bad {
			origin[fmt.Sprintf("e%d", i)] = ids[i]
			want++
		}
	}
	a := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Group = "ga" })
	b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Group = "gb"; cfg.ReplayRunners = -1 })
	log := newRunLog()
	for _, bus := range []*eventbus.Bus{a, b} {
		if err := bus.SetUp(ctx); err != nil {
			t.Fatal(err)
		}
		g := bus.Config().Group
		skipMainBacklog(t, c, prefix, g)
		cons := fastConsumer(t, bus, func(cfg *eventbus.ConsumerConfig) { cfg.Name = "c-" + g })
		mustHandle(t, cons, "h1", "*", log.handler(g, "h1", "", origin))
		mustHandle(t, cons, "h2", "order.*", log.handler(g, "h2", "", nil))
		runConsumer(t, cons)
	}
	in := a.Inspector()
	waitFor(t, 30*time.Second, "group ga's consumer registered", func() bool {
		cs, err := in.Consumers(ctx)
		return err == nil && len(cs) == 1
	})
	job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{
		From: time.UnixMilli(base + from), To: time.UnixMilli(base + to), Types: []string{"order.created"}, Handlers: []string{"h1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != eventbus.ReplayPending || job.EstimatedEvents != int64(want+1) || job.Group != "ga" {
		t.Fatalf("started job %+v, want pending for ga with estimate %d (exact: the window holds 10,000 events)", job, want+1)
	}
	started := time.Now()
	runBus(t, a)
	job = waitJob(t, in, job.ID, 120*time.Second, "the job to end", ended)
	t.Logf("replayed %d of %d events in %v (%.0f copies/s)", job.Written, job.Scanned, time.Since(started), float64(job.Written)/time.Since(started).Seconds())
	if job.Status != eventbus.ReplayCompleted || job.Progress != 100 || job.Scanned != to-from+1 ||
		job.Matched != int64(want+1) || job.Written != int64(want) || job.Errors != 1 || job.FinishedAt == nil || job.StartedAt == nil {
		t.Fatalf("job %+v: want completed, scanned %d, matched %d, written %d, 1 error", job, to-from+1, want+1, want)
	}
	waitFor(t, 120*time.Second, "h1 of ga ran every copy", func() bool { return len(log.get("ga/h1")) == want })
	waitFor(t, 60*time.Second, "both groups settled the replay stream", func() bool { return replaySettled(t, c, prefix, "ga", "gb") })
	for id, runs := range log.get("ga/h1") {
		if origin[id] == "" || runs != 1 {
			t.Fatalf("ga/h1 ran %s %d times (matching: %v)", id, runs, origin[id] != "")
		}
	}
	for _, key := range []string{"ga/h2", "gb/h1", "gb/h2"} {
		if got := log.get(key); len(got) != 0 {
			t.Errorf("%s ran %d copies, want none", key, len(got))
		}
	}
	log.mu.Lock()
	if len(log.problems) > 0 {
		t.Errorf("%d problems, first: %s", len(log.problems), log.problems[0])
	}
	log.mu.Unlock()
	if l := c.XLen(ctx, testKeys(prefix).Replay()).Val(); l != int64(want) {
		t.Errorf("replay stream holds %d copies, want %d", l, want)
	}

	// A dry run over half the stream: the estimate is extrapolated from
	// the first 10,000 events, Matched is exact, nothing is written.
	dry, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{
		From: time.UnixMilli(base), To: time.UnixMilli(base + n/2 - 1), Types: []string{"order.*"}, TenantID: "t2", DryRun: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	dry = waitJob(t, in, dry.ID, 120*time.Second, "the dry run to end", ended)
	var exact int64
	for i := range n / 2 {
		if e := replayEvent(i); i != bad && strings.HasPrefix(e.Type, "order.") && e.TenantID == "t2" {
			exact++
		}
	}
	if dry.Status != eventbus.ReplayCompleted || dry.Matched != exact || dry.Written != 0 || dry.Scanned != n/2 {
		t.Fatalf("dry run %+v, want completed with %d matched and nothing written", dry, exact)
	}
	if off := float64(dry.EstimatedEvents-exact) / float64(exact); off > 0.02 || off < -0.02 {
		t.Errorf("estimate %d for %d matching events: off by %.1f %%", dry.EstimatedEvents, exact, 100*off)
	}
	if l := c.XLen(ctx, testKeys(prefix).Replay()).Val(); l != int64(want) {
		t.Errorf("the dry run wrote: replay stream holds %d copies, want %d", l, want)
	}
}

// A copy targets one group: the consumers of another group acknowledge it
// without running a handler. A copy without a group (written before
// replays had one) still goes to every group.
func TestReplayCopyRunsInItsGroupOnly(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	base := time.Now().Add(-time.Hour).UnixMilli()
	ids := seedMain(t, c, prefix, base, 5, replayEvent, nil)
	a := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Group = "ga" })
	b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Group = "gb"; cfg.ReplayRunners = -1 })
	log := newRunLog()
	for _, bus := range []*eventbus.Bus{a, b} {
		if err := bus.SetUp(ctx); err != nil {
			t.Fatal(err)
		}
		g := bus.Config().Group
		skipMainBacklog(t, c, prefix, g)
		cons := fastConsumer(t, bus, func(cfg *eventbus.ConsumerConfig) { cfg.Name = "c-" + g })
		mustHandle(t, cons, "h", "*", log.handler(g, "h", "", nil))
		runConsumer(t, cons)
	}
	in := a.Inspector()
	waitFor(t, 30*time.Second, "ga's consumer registered", func() bool {
		cs, err := in.Consumers(ctx)
		return err == nil && len(cs) == 1
	})
	job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{From: time.UnixMilli(base), To: time.UnixMilli(base + 4)})
	if err != nil {
		t.Fatal(err)
	}
	if len(job.Request.Handlers) != 1 || job.Request.Handlers[0] != "h" {
		t.Errorf("handlers resolved to %v, want [h] (the group's live handlers)", job.Request.Handlers)
	}
	runBus(t, a)
	waitJob(t, in, job.ID, 30*time.Second, "the job to complete", func(j eventbus.ReplayJob) bool { return j.Status == eventbus.ReplayCompleted })
	waitFor(t, 30*time.Second, "both groups settled the copies", func() bool { return replaySettled(t, c, prefix, "ga", "gb") })
	if got := len(log.get("ga/h")); got != 5 {
		t.Errorf("ga/h ran %d copies, want 5", got)
	}
	if got := len(log.get("gb/h")); got != 0 {
		t.Errorf("gb/h ran %d copies of ga's replay, want 0", got)
	}

	// A copy without a group: both groups run it.
	old := eventbus.Event{ID: "old", Type: "order.created", TenantID: "t1", UserID: "u1", Timestamp: time.Now(),
		Data: json.RawMessage(`{"__replay":true}`), Replay: &eventbus.ReplayInfo{JobID: "legacy", OriginalStreamID: ids[0]}}
	payload, _ := json.Marshal(old)
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: testKeys(prefix).Replay(), Values: []any{rdb.FieldEvent, payload}}).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "both groups ran the copy without a group", func() bool {
		return log.get("ga/h")["old"] == 1 && log.get("gb/h")["old"] == 1
	})
}

func TestStartReplayValidation(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	at := func(ms int64) time.Time { return time.UnixMilli(base + ms) }
	// Entries at base+0..9 and base+1000..1009.
	seedMain(t, c, prefix, base, 10, replayEvent, nil)
	main := testKeys(prefix).Main()
	for i := range 10 {
		e := replayEvent(i)
		e.ID, e.Timestamp = fmt.Sprintf("late%d", i), at(1000+int64(i))
		b, _ := json.Marshal(e)
		c.XAdd(ctx, &redis.XAddArgs{Stream: main, ID: fmt.Sprintf("%d-0", base+1000+int64(i)), Values: []any{rdb.FieldEvent, b}})
	}
	fakeConsumer(t, c, prefix, eventbus.DefaultGroup, "h1", "h2")
	in := newBus(t, c, prefix, nil).Inspector()
	ok := eventbus.ReplayRequest{From: at(0), To: at(2000)}
	for _, tc := range []struct {
		name   string
		scope  eventbus.Scope
		mutate func(*eventbus.ReplayRequest)
		field  string // the *ReplayError's field; "" for another error
		reason string // part of the reason
		err    error  // for other errors
	}{
		{"no from", eventbus.AllTenants(), func(r *eventbus.ReplayRequest) { r.From = time.Time{} }, "from", "required", nil},
		{"no to", eventbus.AllTenants(), func(r *eventbus.ReplayRequest) { r.To = time.Time{} }, "to", "required", nil},
		{"from after to", eventbus.AllTenants(), func(r *eventbus.ReplayRequest) { r.From, r.To = at(5), at(1) }, "to", "before from", nil},
		{"window before the stream", eventbus.AllTenants(), func(r *eventbus.ReplayRequest) { r.From, r.To = at(-5000), at(-1) }, "from",
			"the main stream holds " + at(0).UTC().Format(eventbus.TimestampLayout) + " to " + at(1009).UTC().Format(eventbus.TimestampLayout), nil},
		{"window after the stream", eventbus.AllTenants(), func(r *eventbus.ReplayRequest) { r.From, r.To = at(5000), at(6000) }, "to", "the main stream holds", nil},
		{"empty window", eventbus.AllTenants(), func(r *eventbus.ReplayRequest) { r.From, r.To = at(100), at(900) }, "from", "no event in the window", nil},
		{"nothing matches", eventbus.AllTenants(), func(r *eventbus.ReplayRequest) { r.Types = []string{"nothing.here"} }, "types", "match the filters", nil},
		{"unknown handler", eventbus.AllTenants(), func(r *eventbus.ReplayRequest) { r.Handlers = []string{"h1", "h9"} }, "handlers", `"h9" is not registered`, nil},
		{"bad type pattern", eventbus.AllTenants(), func(r *eventbus.ReplayRequest) { r.Types = []string{"Order.*"} }, "types", "lowercase", nil},
		{"negative rate", eventbus.AllTenants(), func(r *eventbus.ReplayRequest) { r.Rate = -1 }, "rate", "negative", nil},
		{"another tenant", eventbus.TenantScope("t1"), func(r *eventbus.ReplayRequest) { r.TenantID = "t2" }, "", "", eventbus.ErrNotFound},
		{"invalid scope", eventbus.Scope{}, func(*eventbus.ReplayRequest) {}, "", "", eventbus.ErrInvalidScope},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := ok
			tc.mutate(&req)
			job, err := in.StartReplay(ctx, tc.scope, testActor, req)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %+v %v, want %v", job, err, tc.err)
				}
				return
			}
			var re *eventbus.ReplayError
			if !errors.As(err, &re) || !errors.Is(err, eventbus.ErrInvalidReplay) {
				t.Fatalf("got %+v %v, want a *ReplayError", job, err)
			}
			if re.Field != tc.field || !strings.Contains(re.Reason, tc.reason) {
				t.Errorf("error %q on %q, want %q containing %q", re.Reason, re.Field, tc.field, tc.reason)
			}
		})
	}

	// A tenant scope forces its tenant; the job is the tenant's.
	job, err := in.StartReplay(ctx, eventbus.TenantScope("t2"), testActor, ok)
	if err != nil {
		t.Fatal(err)
	}
	if job.Request.TenantID != "t2" || job.EstimatedEvents != 6 || len(job.Request.Handlers) != 2 {
		t.Errorf("job %+v: want tenant t2 forced, 6 events, handlers h1 and h2", job)
	}
	if _, err := in.Replay(ctx, eventbus.TenantScope("t1"), job.ID); !errors.Is(err, eventbus.ErrNotFound) {
		t.Errorf("another tenant reads the job: %v, want ErrNotFound", err)
	}
	if _, err := in.CancelReplay(ctx, eventbus.TenantScope("t1"), testActor, job.ID); !errors.Is(err, eventbus.ErrNotFound) {
		t.Errorf("another tenant cancels the job: %v, want ErrNotFound", err)
	}
	if got, err := in.Replay(ctx, eventbus.TenantScope("t2"), job.ID); err != nil || got.ID != job.ID || got.Status != eventbus.ReplayPending {
		t.Errorf("the tenant reads %+v %v", got, err)
	}

	// No live consumer at all.
	c2, prefix2 := redistest.Shared(t)
	seedMain(t, c2, prefix2, base, 3, replayEvent, nil)
	_, err = newBus(t, c2, prefix2, nil).Inspector().StartReplay(ctx, eventbus.AllTenants(), testActor, ok)
	var re *eventbus.ReplayError
	if !errors.As(err, &re) || re.Field != "handlers" || !strings.Contains(re.Reason, "no consumer") {
		t.Errorf("no consumer: %v, want a *ReplayError on handlers saying no consumer runs", err)
	}
	// An empty main stream.
	c3, prefix3 := redistest.Shared(t)
	fakeConsumer(t, c3, prefix3, eventbus.DefaultGroup, "h1")
	_, err = newBus(t, c3, prefix3, nil).Inspector().StartReplay(ctx, eventbus.AllTenants(), testActor, ok)
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "empty") {
		t.Errorf("empty stream: %v, want a *ReplayError saying the stream is empty", err)
	}
}

// Listing: newest first with a cursor; a tenant lists its own jobs only;
// jobs whose record expired are skipped and forgotten.
func TestReplaysListing(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	base := time.Now().Add(-time.Hour).UnixMilli()
	seedMain(t, c, prefix, base, 20, replayEvent, nil)
	fakeConsumer(t, c, prefix, eventbus.DefaultGroup, "h1")
	in := newBus(t, c, prefix, nil).Inspector()
	req := eventbus.ReplayRequest{From: time.UnixMilli(base), To: time.UnixMilli(base + 19)}
	start := func(scope eventbus.Scope, tenant string) string {
		r := req
		r.TenantID = tenant
		j, err := in.StartReplay(ctx, scope, testActor, r)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct ULID milliseconds: a defined order
		return j.ID
	}
	j1 := start(eventbus.TenantScope("t1"), "")
	j2 := start(eventbus.AllTenants(), "")
	j3 := start(eventbus.AllTenants(), "t1")
	j4 := start(eventbus.AllTenants(), "t2")

	p, err := in.Replays(ctx, eventbus.AllTenants(), "", 3)
	if err != nil || len(p.Items) != 3 || p.Items[0].ID != j4 || p.Items[1].ID != j3 || p.Items[2].ID != j2 || p.NextCursor != j2 {
		t.Fatalf("first page %+v %v", p, err)
	}
	p, err = in.Replays(ctx, eventbus.AllTenants(), p.NextCursor, 3)
	if err != nil || len(p.Items) != 1 || p.Items[0].ID != j1 || p.NextCursor != "" {
		t.Fatalf("second page %+v %v", p, err)
	}
	p, err = in.Replays(ctx, eventbus.TenantScope("t1"), "", 0)
	if err != nil || len(p.Items) != 2 || p.Items[0].ID != j3 || p.Items[1].ID != j1 {
		t.Fatalf("tenant t1's page %+v %v, want its two jobs", p, err)
	}
	if _, err := in.Replay(ctx, eventbus.TenantScope("t1"), j2); !errors.Is(err, eventbus.ErrNotFound) {
		t.Errorf("a tenant reads a job over every tenant: %v", err)
	}
	if _, err := in.Replays(ctx, eventbus.AllTenants(), "nope", 0); !errors.Is(err, eventbus.ErrInvalidFilter) {
		t.Errorf("bad cursor: %v", err)
	}
	// An expired job record is skipped and leaves the index.
	k := testKeys(prefix)
	c.Del(ctx, k.ReplayJob(j3))
	p, err = in.Replays(ctx, eventbus.TenantScope("t1"), "", 0)
	if err != nil || len(p.Items) != 1 || p.Items[0].ID != j1 {
		t.Fatalf("after expiry %+v %v", p, err)
	}
	if c.ZScore(ctx, k.ReplayTenantJobs("t1"), j3).Err() == nil || c.ZScore(ctx, k.ReplayJobs(), j3).Err() == nil {
		t.Error("the expired job is still indexed")
	}
	// Every start is audited, in its tenant's scope.
	a, err := in.Audit(ctx, eventbus.TenantScope("t1"), "", 0)
	if err != nil || len(a.Items) != 2 || a.Items[0].Action != "replay.start" || a.Items[0].Count != 5 {
		t.Errorf("t1's audit %+v %v, want two replay.start entries counting 5 events", a, err)
	}
}

func TestCancelReplay(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	base := time.Now().Add(-time.Hour).UnixMilli()
	seedMain(t, c, prefix, base, 2000, replayEvent, nil)
	fakeConsumer(t, c, prefix, eventbus.DefaultGroup, "h1")
	b := fastBus(t, c, prefix, nil)
	in := b.Inspector()
	req := eventbus.ReplayRequest{From: time.UnixMilli(base), To: time.UnixMilli(base + 1999)}

	// Pending (no runner yet): cancelled at once.
	pending, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := in.CancelReplay(ctx, eventbus.AllTenants(), testActor, pending.ID)
	if err != nil || got.Status != eventbus.ReplayCancelled || got.FinishedAt == nil || got.Written != 0 {
		t.Fatalf("cancel of a pending job: %+v %v", got, err)
	}
	if _, err := in.CancelReplay(ctx, eventbus.AllTenants(), testActor, pending.ID); !errors.Is(err, eventbus.ErrReplayFinished) {
		t.Errorf("second cancel: %v, want ErrReplayFinished", err)
	}

	// Running, rate-limited: stopped mid-way.
	req.Rate = 200
	job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, req)
	if err != nil {
		t.Fatal(err)
	}
	runBus(t, b)
	waitJob(t, in, job.ID, 30*time.Second, "copies written", func(j eventbus.ReplayJob) bool { return j.Written > 0 })
	asked := time.Now()
	got, err = in.CancelReplay(ctx, eventbus.AllTenants(), testActor, job.ID)
	if err != nil || (!got.CancelRequested && got.Status != eventbus.ReplayCancelled) {
		t.Fatalf("cancel: %+v %v", got, err)
	}
	got = waitJob(t, in, job.ID, 10*time.Second, "the job cancelled", ended)
	t.Logf("cancelled %v after the request, with %d of 2000 copies written", time.Since(asked), got.Written)
	if got.Status != eventbus.ReplayCancelled || got.Written == 0 || got.Written >= 2000 || got.CancelRequested {
		t.Fatalf("job %+v, want cancelled mid-way", got)
	}
	k := testKeys(prefix)
	// Nothing after the cancel: the lease is gone (no runner can write)
	// and the stream holds exactly what the job counted.
	if c.Exists(ctx, k.ReplayLease(job.ID)).Val() != 0 || c.ZScore(ctx, k.ReplayActive(), job.ID).Err() == nil {
		t.Error("the cancelled job keeps its lease or stays active")
	}
	if l := c.XLen(ctx, k.Replay()).Val(); l != got.Written {
		t.Errorf("replay stream holds %d copies, the job counted %d", l, got.Written)
	}
	if _, err := in.CancelReplay(ctx, eventbus.AllTenants(), testActor, job.ID); !errors.Is(err, eventbus.ErrReplayFinished) {
		t.Errorf("cancel of a cancelled job: %v, want ErrReplayFinished", err)
	}
	a, err := in.Audit(ctx, eventbus.AllTenants(), "", 0)
	if err != nil || len(a.Items) != 4 || a.Items[0].Action != "replay.cancel" || a.Items[1].Action != "replay.start" ||
		a.Items[0].Subject != testActor.Subject || !strings.Contains(a.Items[0].Detail, job.ID) {
		t.Errorf("audit %+v %v, want start and cancel of both jobs", a, err)
	}
}

// replayChildEnv selects the child role of TestReplayResumesAfterSIGKILL.
const replayChildEnv = "EVENTBUS_TEST_REPLAY_CHILD"

// A runner killed with SIGKILL mid-way: another instance takes the job
// over once the lease expires and completes it; every matching event is
// in the replay stream exactly once.
func TestReplayResumesAfterSIGKILL(t *testing.T) {
	if os.Getenv(replayChildEnv) == "1" {
		replayChild(t)
		return
	}
	if testing.Short() {
		t.Skip("kills a runner process: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	const n = 3000
	base := time.Now().Add(-time.Hour).UnixMilli()
	ids := seedMain(t, c, prefix, base, n, replayEvent, nil)
	want := map[string]bool{}
	for i, id := range ids {
		if replayEvent(i).Type != "invoice.sent" {
			want[id] = true
		}
	}
	fakeConsumer(t, c, prefix, eventbus.DefaultGroup, "h1")
	in := newBus(t, c, prefix, nil).Inspector()
	job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{
		From: time.UnixMilli(base), To: time.UnixMilli(base + n - 1), Types: []string{"order.*"}, Rate: 400,
	})
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestReplayResumesAfterSIGKILL$")
	cmd.Env = append(os.Environ(), replayChildEnv+"=1", "W_REDIS="+sharedURL(), "W_PREFIX="+prefix)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	replay := testKeys(prefix).Replay()
	waitFor(t, 60*time.Second, "the child to write copies", func() bool { return c.XLen(ctx, replay).Val() >= 300 })
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	killedAt := c.XLen(ctx, replay).Val()
	t.Logf("killed with %d of %d copies written", killedAt, len(want))
	if killedAt >= int64(len(want)) {
		t.Fatalf("the child wrote all %d copies before the kill: want the kill mid-way (lower the rate)", killedAt)
	}
	if j, _ := in.Replay(ctx, eventbus.AllTenants(), job.ID); j.Status != eventbus.ReplayRunning {
		t.Fatalf("after the kill the job is %s, want running", j.Status)
	}

	b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.ReplayLease = time.Second })
	runBus(t, b)
	got := waitJob(t, in, job.ID, 60*time.Second, "the job to end", ended)
	if got.Status != eventbus.ReplayCompleted || got.Written != int64(len(want)) || got.Matched != int64(len(want)) || got.Scanned != n {
		t.Fatalf("job %+v, want completed with %d written", got, len(want))
	}
	seen := map[string]int{}
	for _, m := range c.XRange(ctx, replay, "-", "+").Val() {
		ev, err := eventbus.DecodeEvent([]byte(m.Values[rdb.FieldEvent].(string)), 0)
		if err != nil || ev.Replay == nil || ev.Replay.JobID != job.ID {
			t.Fatalf("copy %s: %+v %v", m.ID, ev, err)
		}
		seen[ev.Replay.OriginalStreamID]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("event at %s copied %d times, want once", id, seen[id])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("%d distinct copies, want %d", len(seen), len(want))
	}
}

// replayChild runs a Bus (and so a replay runner) on W_PREFIX, with
// W_PARTITIONS partitions (none: the default), to be killed.
func replayChild(t *testing.T) {
	opt, err := redis.ParseURL(os.Getenv("W_REDIS"))
	if err != nil {
		t.Fatal(err)
	}
	parts, _ := strconv.Atoi(os.Getenv("W_PARTITIONS")) // 0: the default
	b, err := eventbus.New(eventbus.Config{Redis: redis.NewClient(opt), Prefix: os.Getenv("W_PREFIX"), Consumer: "runner", ReplayLease: time.Second, Partitions: parts})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = b.Run(ctx)
}

// BenchmarkReplay measures copies written per second at full speed: each
// iteration replays 20,000 events (one runner, one job). The job's times
// are in milliseconds: run it with enough events per job.
func BenchmarkReplay(b *testing.B) {
	c, prefix := redistest.Shared(b)
	const n = 20000
	base := time.Now().Add(-time.Hour).UnixMilli()
	seedMain(b, c, prefix, base, n, replayEvent, nil)
	benchReplay(b, c, prefix, 1, eventbus.ReplayRequest{From: time.UnixMilli(base), To: time.UnixMilli(base + n - 1)})
}

// BenchmarkReplayPartitions is BenchmarkReplay over 8 partitions: 20,007
// events, 2,223 in each of the 9 main streams.
func BenchmarkReplayPartitions(b *testing.B) {
	c, prefix := redistest.Shared(b)
	const n = 20007
	base := time.Now().Add(-time.Hour).UnixMilli()
	seedPartitions(b, c, rdb.NewPartitionedKeys(prefix, false, 8, 0), base, n, replayEvent)
	benchReplay(b, c, prefix, 8, eventbus.ReplayRequest{From: time.UnixMilli(base), To: time.UnixMilli(base + n/9 - 1)})
}

// benchReplay runs req on a bus of parts partitions once per iteration.
func benchReplay(b *testing.B, c redis.UniversalClient, prefix string, parts int, req eventbus.ReplayRequest) {
	ctx := context.Background()
	fakeConsumer(b, c, prefix, eventbus.DefaultGroup, "h1")
	bus := newBus(b, c, prefix, func(cfg *eventbus.Config) { cfg.Partitions = parts })
	runBus(b, bus)
	in := bus.Inspector()
	b.ReportAllocs()
	var copies int64
	var took, running time.Duration
	for b.Loop() {
		start := time.Now()
		job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, req)
		if err != nil {
			b.Fatal(err)
		}
		for !ended(job) {
			time.Sleep(5 * time.Millisecond)
			if job, err = in.Replay(ctx, eventbus.AllTenants(), job.ID); err != nil {
				b.Fatal(err)
			}
		}
		if job.Status != eventbus.ReplayCompleted {
			b.Fatalf("job %+v", job)
		}
		copies += job.Written
		took += time.Since(start)
		running += job.FinishedAt.Sub(*job.StartedAt)
		c.Del(ctx, testKeys(prefix).Replay())
	}
	// copies/s: from the start request to the end (the runner's pick-up
	// included); run-copies/s: while the job ran (started to finished).
	b.ReportMetric(float64(copies)/took.Seconds(), "copies/s")
	b.ReportMetric(float64(copies)/running.Seconds(), "run-copies/s")
}

// Redis stalling mid-job (frozen for 4 s, well within the lease): the
// runner carries on when it answers again and completes the job with
// every copy written once.
func TestReplaySurvivesARedisStall(t *testing.T) {
	if testing.Short() {
		t.Skip("stalls a Redis server: slow; run without -short")
	}
	ctx := context.Background()
	srv := redistest.Start(t)
	c := failFastClient(t, srv.Addr())
	prefix := "stall"
	const n = 1500
	base := time.Now().Add(-time.Hour).UnixMilli()
	seedMain(t, c, prefix, base, n, replayEvent, nil)
	fakeConsumer(t, c, prefix, eventbus.DefaultGroup, "h1")
	// A lease longer than the stall.
	b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.ReplayLease = 15 * time.Second })
	in := b.Inspector()
	job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{
		From: time.UnixMilli(base), To: time.UnixMilli(base + n - 1), Rate: 500,
	})
	if err != nil {
		t.Fatal(err)
	}
	runBus(t, b)
	waitJob(t, in, job.ID, 30*time.Second, "copies written", func(j eventbus.ReplayJob) bool { return j.Written > 0 })
	srv.Pause()
	time.Sleep(4 * time.Second) // the stall itself
	srv.Resume()
	got := waitJob(t, in, job.ID, 60*time.Second, "the job to end", ended)
	if got.Status != eventbus.ReplayCompleted || got.Written != n {
		t.Fatalf("job %+v, want completed with %d copies", got, n)
	}
	checkCopiesOnce(t, c, prefix, n)
}

// TestReplaySurvivesARedisRestart: Redis is killed mid-job (SIGKILL) and
// started again from its append-only file a moment later. The runner's
// writes fail meanwhile and are retried with backoff under the lease; the
// job then completes with every copy exactly once.
func TestReplaySurvivesARedisRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a Redis server: slow; run without -short")
	}
	ctx := context.Background()
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	c := failFastClient(t, srv.Addr())
	prefix := "restart"
	const n = 1500
	base := time.Now().Add(-time.Hour).UnixMilli()
	seedMain(t, c, prefix, base, n, replayEvent, nil)
	fakeConsumer(t, c, prefix, eventbus.DefaultGroup, "h1")
	b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.ReplayLease = 15 * time.Second })
	in := b.Inspector()
	job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{
		From: time.UnixMilli(base), To: time.UnixMilli(base + n - 1), Rate: 500,
	})
	if err != nil {
		t.Fatal(err)
	}
	runBus(t, b)
	waitJob(t, in, job.ID, 30*time.Second, "copies written", func(j eventbus.ReplayJob) bool { return j.Written > 0 })
	srv.Stop()
	time.Sleep(time.Second) // Redis stays down this long: the outage itself
	srv.Restart()
	var got eventbus.ReplayJob
	waitFor(t, 60*time.Second, "the job to end once Redis is back", func() bool {
		got, err = in.Replay(ctx, eventbus.AllTenants(), job.ID) // errors while the breaker is open
		return err == nil && ended(got)
	})
	if got.Status != eventbus.ReplayCompleted || got.Written != n {
		t.Fatalf("job %+v, want completed with %d copies", got, n)
	}
	checkCopiesOnce(t, c, prefix, n)
}

// TestReplayResumesAfterRedisLostItsLastWrites: Redis comes back from a
// crash without its last writes (appendfsync everysec loses up to a
// second), so the job's saved cursor is behind where its runner left it,
// and the copies after it are gone with it. The runner notices at its
// next page (the cursor check), hands the job over at once, and the job
// resumes from the saved cursor: every copy exactly once, none missing.
func TestReplayResumesAfterRedisLostItsLastWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a rate-limited replay: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	const n = 1200
	base := time.Now().Add(-time.Hour).UnixMilli()
	seedMain(t, c, prefix, base, n, replayEvent, nil)
	fakeConsumer(t, c, prefix, eventbus.DefaultGroup, "h1")
	b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.ReplayLease = time.Minute })
	in := b.Inspector()
	job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{
		From: time.UnixMilli(base), To: time.UnixMilli(base + n - 1), Rate: 400,
	})
	if err != nil {
		t.Fatal(err)
	}
	runBus(t, b)
	k := testKeys(prefix)
	waitJob(t, in, job.ID, 30*time.Second, "copies written", func(j eventbus.ReplayJob) bool { return j.Written >= 400 })
	// The "crash": the job's cursor and counters go back to where they
	// were after the first 200 entries, and the copies written since go,
	// in one step (a lost AOF tail loses both together).
	lost := redis.NewScript(`
local copies = redis.call('XRANGE', KEYS[2], '-', '+')
for i = 201, #copies do redis.call('XDEL', KEYS[2], copies[i][1]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
for _, f in ipairs({ARGV[3], ARGV[4], ARGV[5]}) do redis.call('HSET', KEYS[1], f, 200) end
return #copies
`)
	cursor := fmt.Sprintf("%d-0", base+199) // seedMain writes entry i at base+i ms
	had, err := lost.Run(ctx, c, []string{k.ReplayJob(job.ID), k.Replay()}, rdb.ReplayFieldCursor, cursor,
		rdb.ReplayFieldScanned, rdb.ReplayFieldMatched, rdb.ReplayFieldWritten).Int()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rolled back from %d copies to 200", had)
	got := waitJob(t, in, job.ID, 60*time.Second, "the job to end", ended)
	if got.Status != eventbus.ReplayCompleted || got.Written != n {
		t.Fatalf("job %+v, want completed with %d copies", got, n)
	}
	checkCopiesOnce(t, c, prefix, n)
}

// seedPartitions writes n entries round-robin to every partition of k
// (the shared one included) with explicit ids: entry i goes to partition
// i % k.Partitions() at id "<base + i/k.Partitions()>-0", so that the
// partitions share their stream ids. Entry i is ev(i) with id e<i>. It
// returns the partition of each entry.
func seedPartitions(t testing.TB, c redis.UniversalClient, k rdb.Keys, base int64, n int, ev func(i int) eventbus.Event) []int {
	t.Helper()
	ctx := context.Background()
	parts := k.Partitions()
	out := make([]int, n)
	pipe := c.Pipeline()
	for i := range n {
		e := ev(i)
		e.ID = fmt.Sprintf("e%d", i)
		ms := base + int64(i/parts)
		e.Timestamp = time.UnixMilli(ms)
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = i % parts
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: k.Partition(out[i]).Main(), ID: fmt.Sprintf("%d-0", ms), Values: []any{rdb.FieldEvent, b}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	return out
}

// replayCopies counts the copies of job in stream replay by event id,
// and fails on a copy of another job or one without replay info.
func replayCopies(t testing.TB, c redis.UniversalClient, replay, job string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, m := range c.XRange(context.Background(), replay, "-", "+").Val() {
		raw, _ := m.Values[rdb.FieldEvent].(string)
		ev, err := eventbus.DecodeEvent([]byte(raw), 0)
		if err != nil || ev.Replay == nil || ev.Replay.JobID != job {
			t.Fatalf("copy %s: %+v %v", m.ID, ev, err)
		}
		seen[ev.ID]++
	}
	return seen
}

// checkCopies fails unless copies holds each of want exactly once and
// nothing else.
func checkCopies(t testing.TB, copies map[string]int, want map[string]bool) {
	t.Helper()
	for id := range want {
		if copies[id] != 1 {
			t.Errorf("event %s copied %d times, want once", id, copies[id])
		}
	}
	for id, n := range copies {
		if !want[id] {
			t.Errorf("event %s copied %d times, want never (it does not match)", id, n)
		}
	}
}

// Replay over 8 partitions (9 with the shared one), on a single node and
// on a 3-master Redis Cluster: events published to every partition and
// legacy events in the shared main stream; a window filtered by type
// replays exactly the matching events, once each, from every partition,
// to the one handler named; counters and estimate exact, a cursor per
// partition, each at the window's end once completed.
func TestReplayPartitions(t *testing.T) {
	for _, l := range partitionLayouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			b, c, k := partitionedBus(t, l, nil)
			var mu sync.Mutex
			ran := map[string]int{}
			var problems []string
			cons := fastConsumer(t, b, nil)
			mustHandle(t, cons, "h1", "*", func(ctx context.Context, ev eventbus.Event) error {
				if ev.Replay == nil {
					return nil // the original
				}
				mu.Lock()
				defer mu.Unlock()
				ran[ev.ID]++
				if d, _ := eventbus.DeliveryFromContext(ctx); d.Replay != ev.Replay.JobID || !strings.Contains(string(ev.Data), `"__replay":true`) {
					problems = append(problems, fmt.Sprintf("copy %s: delivery %+v data %s", ev.ID, d, ev.Data))
				}
				if _, ok := k.PartitionOf(ev.Replay.OriginalStream); !ok || !strings.HasSuffix(ev.Replay.OriginalStream, ":events:main") {
					problems = append(problems, fmt.Sprintf("copy %s: original stream %q", ev.ID, ev.Replay.OriginalStream))
				}
				return nil
			})
			mustHandle(t, cons, "h2", "*", func(_ context.Context, ev eventbus.Event) error {
				if ev.Replay != nil {
					mu.Lock()
					problems = append(problems, "h2 ran copy "+ev.ID)
					mu.Unlock()
				}
				return nil
			})
			runConsumer(t, cons)
			in := b.Inspector()
			waitFor(t, 30*time.Second, "the consumer registered", func() bool {
				cs, err := in.Consumers(ctx)
				return err == nil && len(cs) == 1
			})

			from := time.Now().Add(-time.Millisecond)
			want := map[string]bool{}
			total := 0
			// Legacy events: in the shared (un-partitioned) main stream.
			for i := range 30 {
				ev := replayEvent(i)
				ev.ID, ev.Timestamp = fmt.Sprintf("legacy%d", i), time.Now()
				raw, _ := json.Marshal(ev)
				if err := c.XAdd(ctx, &redis.XAddArgs{Stream: k.Main(), Values: []any{rdb.FieldEvent, raw}}).Err(); err != nil {
					t.Fatal(err)
				}
				total++
				want[ev.ID] = strings.HasPrefix(ev.Type, "order.")
			}
			// 400 events of 40 tenants, published in batches (split per
			// partition).
			var batch []eventbus.Event
			for i := range 400 {
				ev := replayEvent(i)
				ev.TenantID = fmt.Sprintf("t%02d", i%40)
				batch = append(batch, ev)
				if len(batch) == 100 {
					res, err := b.PublishBatch(ctx, batch)
					if err != nil {
						t.Fatal(err)
					}
					for j, r := range res {
						want[r.ID] = strings.HasPrefix(batch[j].Type, "order.")
					}
					total += len(batch)
					batch = nil
				}
			}
			to := time.Now().Add(time.Millisecond)
			for id, ok := range want {
				if !ok {
					delete(want, id)
				}
			}
			// The partitions holding matching events.
			holding := map[int]bool{}
			for p := range k.Partitions() {
				for _, m := range c.XRange(ctx, k.Partition(p).Main(), "-", "+").Val() {
					var ev eventbus.Event
					if json.Unmarshal([]byte(m.Values[rdb.FieldEvent].(string)), &ev) == nil && want[ev.ID] {
						holding[p] = true
					}
				}
			}
			if len(holding) < 5 || !holding[k.SharedPartition()] {
				t.Fatalf("matching events in partitions %v only: want most partitions and the shared one", holding)
			}

			job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{
				From: from, To: to, Types: []string{"order.*"}, Handlers: []string{"h1"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if job.EstimatedEvents != int64(len(want)) || len(job.Cursors) < len(holding) {
				t.Fatalf("started %+v: want the exact estimate %d and a cursor per partition", job, len(want))
			}
			runBus(t, b)
			job = waitJob(t, in, job.ID, 60*time.Second, "the job to end", ended)
			if job.Status != eventbus.ReplayCompleted || job.Progress != 100 || job.Scanned != int64(total) ||
				job.Matched != int64(len(want)) || job.Written != int64(len(want)) || job.Errors != 0 {
				t.Fatalf("job %+v: want completed, scanned %d, matched and written %d", job, total, len(want))
			}
			for p := range holding {
				if cur, ok := job.Cursors[k.Partition(p).Main()]; !ok || cur != rdb.LastIDAt(to) {
					t.Errorf("partition %d's cursor %q (present %v), want the window's end %s", p, cur, ok, rdb.LastIDAt(to))
				}
			}
			checkCopies(t, replayCopies(t, c, k.Replay(), job.ID), want)
			waitFor(t, 30*time.Second, "h1 ran every copy", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(ran) >= len(want)
			})
			mu.Lock()
			checkCopies(t, ran, want)
			if len(problems) > 0 {
				t.Errorf("%d problems, first: %s", len(problems), problems[0])
			}
			mu.Unlock()
		})
	}
}

// A replay over 8 partitions whose runner stops mid-job (its bus's
// context cancelled: the lease is released) resumes in another bus from
// each partition's cursor: every matching event copied exactly once.
func TestReplayPartitionsResume(t *testing.T) {
	ctx := context.Background()
	c, prefix := layoutClient(t, partitionLayouts[0])
	k := rdb.NewPartitionedKeys(prefix, false, 8, 0)
	const n = 2700 // 300 per partition
	base := time.Now().Add(-time.Hour).UnixMilli()
	seedPartitions(t, c, k, base, n, replayEvent)
	want := map[string]bool{}
	for i := range n {
		if strings.HasPrefix(replayEvent(i).Type, "order.") {
			want[fmt.Sprintf("e%d", i)] = true
		}
	}
	fakeConsumer(t, c, prefix, eventbus.DefaultGroup, "h1")
	bus := func() *eventbus.Bus {
		return fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Partitions, cfg.ReplayLease = 8, time.Second })
	}
	a := bus()
	in := a.Inspector()
	job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{
		From: time.UnixMilli(base), To: time.UnixMilli(base + n/9 - 1), Types: []string{"order.*"}, Rate: 600,
	})
	if err != nil {
		t.Fatal(err)
	}
	if job.EstimatedEvents != int64(len(want)) || len(job.Cursors) != 9 {
		t.Fatalf("started %+v: want estimate %d and 9 cursors", job, len(want))
	}
	runCtx, stop := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := a.Run(runCtx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { stop(); <-stopped })
	end := rdb.LastIDAt(time.UnixMilli(base + n/9 - 1))
	waitJob(t, in, job.ID, 30*time.Second, "two partitions done and a third part-way", func(j eventbus.ReplayJob) bool {
		done, partWay := 0, 0
		for _, cur := range j.Cursors {
			switch cur {
			case end:
				done++
			case "":
			default:
				partWay++
			}
		}
		return done >= 2 && partWay == 1
	})
	stop()
	<-stopped
	mid, err := in.Replay(ctx, eventbus.AllTenants(), job.ID)
	if err != nil || mid.Status != eventbus.ReplayRunning || mid.Written >= int64(len(want)) || mid.Progress >= 99 {
		t.Fatalf("after the stop: %+v %v, want running part-way", mid, err)
	}
	t.Logf("stopped at %d of %d copies, progress %d %%, cursors %v", mid.Written, len(want), mid.Progress, mid.Cursors)

	runBus(t, bus())
	got := waitJob(t, in, job.ID, 60*time.Second, "the job to end", ended)
	if got.Status != eventbus.ReplayCompleted || got.Scanned != n || got.Matched != int64(len(want)) || got.Written != int64(len(want)) {
		t.Fatalf("job %+v, want completed: scanned %d, %d written", got, n, len(want))
	}
	checkCopies(t, replayCopies(t, c, k.Replay(), job.ID), want)
}

// TestReplayPartitionsResumeAfterSIGKILL: TestReplayResumesAfterSIGKILL
// over 8 partitions: the runner's lease is lost (its process killed), not
// released; another bus takes the job over once the lease expires.
func TestReplayPartitionsResumeAfterSIGKILL(t *testing.T) {
	if os.Getenv(replayChildEnv) == "1" {
		replayChild(t)
		return
	}
	if testing.Short() {
		t.Skip("kills a runner process: slow; run without -short")
	}
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	k := rdb.NewPartitionedKeys(prefix, false, 8, 0)
	const n = 2700
	base := time.Now().Add(-time.Hour).UnixMilli()
	seedPartitions(t, c, k, base, n, replayEvent)
	want := map[string]bool{}
	for i := range n {
		if strings.HasPrefix(replayEvent(i).Type, "order.") {
			want[fmt.Sprintf("e%d", i)] = true
		}
	}
	fakeConsumer(t, c, prefix, eventbus.DefaultGroup, "h1")
	in := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Partitions = 8 }).Inspector()
	job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{
		From: time.UnixMilli(base), To: time.UnixMilli(base + n/9 - 1), Types: []string{"order.*"}, Rate: 400,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReplayPartitionsResumeAfterSIGKILL$")
	cmd.Env = append(os.Environ(), replayChildEnv+"=1", "W_REDIS="+sharedURL(), "W_PREFIX="+prefix, "W_PARTITIONS=8")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	waitFor(t, 60*time.Second, "the child to write copies", func() bool { return c.XLen(ctx, k.Replay()).Val() >= 500 })
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	mid, err := in.Replay(ctx, eventbus.AllTenants(), job.ID)
	if err != nil || mid.Status != eventbus.ReplayRunning || mid.Written >= int64(len(want)) {
		t.Fatalf("after the kill: %+v %v, want running part-way", mid, err)
	}
	t.Logf("killed at %d of %d copies, cursors %v", mid.Written, len(want), mid.Cursors)

	runBus(t, fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Partitions, cfg.ReplayLease = 8, time.Second }))
	got := waitJob(t, in, job.ID, 60*time.Second, "the job to end", ended)
	if got.Status != eventbus.ReplayCompleted || got.Scanned != n || got.Matched != int64(len(want)) || got.Written != int64(len(want)) {
		t.Fatalf("job %+v, want completed: scanned %d, %d written", got, n, len(want))
	}
	checkCopies(t, replayCopies(t, c, k.Replay(), job.ID), want)
}

// StartReplay over 8 partitions: the window is checked against every
// partition's main stream; the estimate is exact while the whole window
// holds at most 10,000 events however they are spread, and extrapolated
// per partition beyond.
func TestStartReplayPartitionsWindow(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	k := rdb.NewPartitionedKeys(prefix, false, 8, 0)
	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	at := func(ms int64) time.Time { return time.UnixMilli(base + ms) }
	// 100 entries per partition at base+0..99 (partition p holds type
	// replayTypes[p%3] only), and 8,000 more in partition 3 at
	// base+100..8099: 8,900 in all.
	seedPartitions(t, c, k, base, 900, replayEvent)
	pipe := c.Pipeline()
	for j := range 8000 {
		e := replayEvent(j)
		e.ID, e.Timestamp = fmt.Sprintf("x%d", j), at(100+int64(j))
		raw, _ := json.Marshal(e)
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: k.Partition(3).Main(), ID: fmt.Sprintf("%d-0", base+100+int64(j)), Values: []any{rdb.FieldEvent, raw}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	fakeConsumer(t, c, prefix, eventbus.DefaultGroup, "h1")
	in := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Partitions = 8 }).Inspector()
	exact := 0
	for i := range 900 {
		if replayEvent(i).Type == "order.paid" {
			exact++
		}
	}
	for j := range 8000 {
		if replayEvent(j).Type == "order.paid" {
			exact++
		}
	}
	job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{
		From: at(0), To: at(9000), Types: []string{"order.paid"}, DryRun: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if job.EstimatedEvents != int64(exact) || len(job.Cursors) != 9 {
		t.Errorf("estimate %d, want the exact %d; cursors %v, want 9", job.EstimatedEvents, exact, job.Cursors)
	}
	// A window holding partition 3's events only: its stream only.
	job, err = in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{From: at(200), To: at(300), DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := job.Cursors[k.Partition(3).Main()]; !ok || len(job.Cursors) != 1 || job.EstimatedEvents != 101 {
		t.Errorf("job %+v: want partition 3's stream only, 101 events", job)
	}
	for _, tc := range []struct {
		name          string
		req           eventbus.ReplayRequest
		field, reason string
	}{
		{"before", eventbus.ReplayRequest{From: at(-5000), To: at(-1)}, "from",
			"the main streams (9 partitions) hold " + at(0).UTC().Format(eventbus.TimestampLayout) + " to " + at(8099).UTC().Format(eventbus.TimestampLayout)},
		{"after", eventbus.ReplayRequest{From: at(9000), To: at(9500)}, "to", "the last entry of the main streams"},
		{"no match", eventbus.ReplayRequest{From: at(0), To: at(9000), Types: []string{"nothing.here"}}, "types", "match the filters"},
	} {
		_, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, tc.req)
		var re *eventbus.ReplayError
		if !errors.As(err, &re) || re.Field != tc.field || !strings.Contains(re.Reason, tc.reason) {
			t.Errorf("%s: %v, want a *ReplayError on %s containing %q", tc.name, err, tc.field, tc.reason)
		}
	}

	// 27,000 events, 3,000 per partition: the estimate is extrapolated.
	c2, prefix2 := redistest.Shared(t)
	k2 := rdb.NewPartitionedKeys(prefix2, false, 8, 0)
	seedPartitions(t, c2, k2, base, 27000, replayEvent)
	fakeConsumer(t, c2, prefix2, eventbus.DefaultGroup, "h1")
	in2 := newBus(t, c2, prefix2, func(cfg *eventbus.Config) { cfg.Partitions = 8 }).Inspector()
	job, err = in2.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{
		From: at(0), To: at(3000), Types: []string{"order.*"}, TenantID: "t2", DryRun: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	exact = 0
	for i := range 27000 {
		if e := replayEvent(i); strings.HasPrefix(e.Type, "order.") && e.TenantID == "t2" {
			exact++
		}
	}
	if off := float64(job.EstimatedEvents-int64(exact)) / float64(exact); off > 0.02 || off < -0.02 {
		t.Errorf("estimate %d for %d matching events: off by %.1f %%", job.EstimatedEvents, exact, 100*off)
	}
	// Empty streams.
	c3, prefix3 := redistest.Shared(t)
	fakeConsumer(t, c3, prefix3, eventbus.DefaultGroup, "h1")
	_, err = newBus(t, c3, prefix3, func(cfg *eventbus.Config) { cfg.Partitions = 8 }).Inspector().StartReplay(ctx, eventbus.AllTenants(), testActor,
		eventbus.ReplayRequest{From: at(0), To: at(10)})
	var re *eventbus.ReplayError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "are empty") {
		t.Errorf("empty streams: %v, want a *ReplayError saying they are empty", err)
	}
}

// A job keeps the streams it was started with when the partition layout
// changes: a job of one partition runs on a bus of 8 (that holds the
// previous layout), and a job of 8 partitions on a bus of one.
func TestReplayJobsAcrossPartitionLayouts(t *testing.T) {
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).UnixMilli()
	t.Run("one to eight", func(t *testing.T) {
		c, prefix := redistest.Shared(t)
		seedMain(t, c, prefix, base, 500, replayEvent, nil)
		fakeConsumer(t, c, prefix, eventbus.DefaultGroup, "h1")
		in := newBus(t, c, prefix, nil).Inspector()
		job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{From: time.UnixMilli(base), To: time.UnixMilli(base + 499)})
		if err != nil || job.Cursors != nil {
			t.Fatalf("start: %+v %v, want a job without per-partition cursors", job, err)
		}
		runBus(t, fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Partitions, cfg.PreviousPartitions = 8, 1 }))
		got := waitJob(t, in, job.ID, 30*time.Second, "the job to end", ended)
		if got.Status != eventbus.ReplayCompleted || got.Written != 500 || got.Cursor != fmt.Sprintf("%d-0", base+499) {
			t.Fatalf("job %+v, want completed with 500 copies", got)
		}
		checkCopiesOnce(t, c, prefix, 500)
	})
	t.Run("eight to one", func(t *testing.T) {
		c, prefix := redistest.Shared(t)
		k := rdb.NewPartitionedKeys(prefix, false, 8, 0)
		seedPartitions(t, c, k, base, 900, replayEvent)
		fakeConsumer(t, c, prefix, eventbus.DefaultGroup, "h1")
		in := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Partitions = 8 }).Inspector()
		job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{From: time.UnixMilli(base), To: time.UnixMilli(base + 99)})
		if err != nil {
			t.Fatal(err)
		}
		runBus(t, fastBus(t, c, prefix, nil))
		got := waitJob(t, in, job.ID, 30*time.Second, "the job to end", ended)
		if got.Status != eventbus.ReplayCompleted || got.Written != 900 || len(got.Cursors) != 9 {
			t.Fatalf("job %+v, want completed with 900 copies", got)
		}
		want := map[string]bool{}
		for i := range 900 {
			want[fmt.Sprintf("e%d", i)] = true
		}
		checkCopies(t, replayCopies(t, c, k.Replay(), job.ID), want)
	})
}
