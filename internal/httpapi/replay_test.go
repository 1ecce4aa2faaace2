package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestParseReplayRequest: a replay body needs from and to (RFC 3339);
// types is a pattern, a comma list or an array; unknown fields and bad
// types answer 400 naming the field.
func TestParseReplayRequest(t *testing.T) {
	from := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	to := time.Date(2026, 11, 30, 1, 0, 0, 5e8, time.UTC)
	window := `"from":"2026-11-30T00:00:00Z","to":"2026-11-30T01:00:00.5Z"`
	for _, tt := range []struct {
		name, body string
		want       eventbus.ReplayRequest
		field      string // "" with errText set: an error naming no field
		errText    string // the error contains it; "" for success
	}{
		{name: "window only", body: `{` + window + `}`, want: eventbus.ReplayRequest{From: from, To: to}},
		{name: "everything", body: `{` + window + `,"types":"crm.*, billing.invoice.sent","tenantId":"t1","handlers":["mailer","crm"],"rate":500,"dryRun":true}`,
			want: eventbus.ReplayRequest{From: from, To: to, Types: []string{"crm.*", "billing.invoice.sent"}, TenantID: "t1", Handlers: []string{"mailer", "crm"}, Rate: 500, DryRun: true}},
		{name: "types array", body: `{` + window + `,"types":["a.*","b.c"]}`, want: eventbus.ReplayRequest{From: from, To: to, Types: []string{"a.*", "b.c"}}},
		{name: "null types", body: `{` + window + `,"types":null}`, want: eventbus.ReplayRequest{From: from, To: to}},
		{name: "offset time", body: `{"from":"2026-11-30T01:00:00+01:00","to":"2026-11-30T01:00:00.5Z"}`, want: eventbus.ReplayRequest{From: from, To: to}},
		// The library judges the values (from after to, a negative rate,
		// an unknown handler): the parser passes them on.
		{name: "from after to", body: `{"from":"2026-11-30T01:00:00.5Z","to":"2026-11-30T00:00:00Z"}`, want: eventbus.ReplayRequest{From: to, To: from}},
		{name: "negative rate", body: `{` + window + `,"rate":-1}`, want: eventbus.ReplayRequest{From: from, To: to, Rate: -1}},
		{name: "no from", body: `{"to":"2026-11-30T01:00:00.5Z"}`, field: "from", errText: "from: required"},
		{name: "empty to", body: `{"from":"2026-11-30T00:00:00Z","to":""}`, field: "to", errText: "to: required"},
		{name: "bad from", body: `{"from":"yesterday","to":"2026-11-30T01:00:00Z"}`, field: "from", errText: "RFC 3339"},
		{name: "bad to", body: `{"from":"2026-11-30T00:00:00Z","to":"2026-13-01"}`, field: "to", errText: "RFC 3339"},
		{name: "from a number", body: `{"from":1764460800,"to":"2026-11-30T01:00:00Z"}`, field: "from", errText: "replay request"},
		{name: "bad types", body: `{` + window + `,"types":5}`, field: "types", errText: "replay request"},
		{name: "handlers a string", body: `{` + window + `,"handlers":"mailer"}`, field: "handlers", errText: "replay request"},
		{name: "rate a string", body: `{` + window + `,"rate":"fast"}`, field: "rate", errText: "replay request"},
		{name: "rate a fraction", body: `{` + window + `,"rate":1.5}`, field: "rate", errText: "replay request"},
		{name: "dryRun a string", body: `{` + window + `,"dryRun":"yes"}`, field: "dryRun", errText: "replay request"},
		{name: "unknown field", body: `{` + window + `,"tenant":"t1"}`, field: "tenant", errText: "unknown field"},
		{name: "type, not types", body: `{` + window + `,"type":"a.b"}`, field: "type", errText: "unknown field"},
		{name: "not JSON", body: `replay everything`, errText: "not a valid replay request"},
		{name: "two values", body: `{` + window + `} {}`, errText: "more than one"},
		{name: "empty body", body: ``, errText: "not a valid replay request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, field, err := parseReplayRequest([]byte(tt.body))
			if tt.errText == "" {
				if err != nil {
					t.Fatalf("err %v (%s)", err, field)
				}
				if !replayRequestEqual(got, tt.want) {
					t.Errorf("got %+v, want %+v", got, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errText) || field != tt.field {
				t.Errorf("err %v field %q, want an error containing %q naming %q", err, field, tt.errText, tt.field)
			}
		})
	}
}

func replayRequestEqual(a, b eventbus.ReplayRequest) bool {
	return a.From.Equal(b.From) && a.To.Equal(b.To) && slices.Equal(a.Types, b.Types) && a.TenantID == b.TenantID &&
		slices.Equal(a.Handlers, b.Handlers) && a.Rate == b.Rate && a.DryRun == b.DryRun
}

// TestReplayListOptions: the list's cursor and limit (1 to 100).
func TestReplayListOptions(t *testing.T) {
	q, _ := url.ParseQuery("cursor=c1&limit=20&tenantId=ignored")
	if cursor, limit, field, err := replayListOptions(q); err != nil || cursor != "c1" || limit != 20 {
		t.Errorf("got %q %d, %v (%s)", cursor, limit, err, field)
	}
	if cursor, limit, _, err := replayListOptions(url.Values{}); err != nil || cursor != "" || limit != 0 {
		t.Errorf("no parameters: %q %d %v", cursor, limit, err)
	}
	for _, v := range []string{"0", "-3", "ten", "101"} {
		if _, _, field, err := replayListOptions(url.Values{"limit": {v}}); err == nil || field != "limit" {
			t.Errorf("limit=%s: err %v field %q, want an error naming limit", v, err, field)
		}
	}
}

// TestWriteReplayError: the library's errors map to the documented
// answers.
func TestWriteReplayError(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	for _, tt := range []struct {
		name        string
		err         error
		status      int
		code, field string
		msg         string // the message contains it
	}{
		{"replay error", &eventbus.ReplayError{Field: "from", Reason: "the main stream starts at 2026-11-01T00:00:00Z"}, 400, "invalid_request", "from", "the main stream starts at 2026-11-01T00:00:00Z"},
		{"wrapped replay error", fmt.Errorf("start: %w", &eventbus.ReplayError{Field: "handlers", Reason: `no live consumer registered "mailer"`}), 400, "invalid_request", "handlers", `"mailer"`},
		{"bare invalid replay", fmt.Errorf("x: %w", eventbus.ErrInvalidReplay), 400, "invalid_request", "", "invalid replay request"},
		{"not found", fmt.Errorf("x: %w", eventbus.ErrNotFound), 404, "not_found", "", "nothing here"},
		{"finished", fmt.Errorf("x: %w", eventbus.ErrReplayFinished), 409, "replay_finished", "", "finished"},
		{"invalid scope", fmt.Errorf("x: %w", eventbus.ErrInvalidScope), 400, "invalid_request", "tenantId", "tenantId"},
		{"bad cursor", &eventbus.FilterError{Field: "cursor", Reason: "bad"}, 400, "invalid_request", "cursor", "cursor"},
		{"outcome unknown", &eventbus.OutcomeUnknownError{Err: errors.New("timeout")}, 504, "outcome_unknown", "", "may or may not"},
		{"unavailable", fmt.Errorf("x: %w", eventbus.ErrUnavailable), 503, "redis_unavailable", "", "unreachable"},
		{"timeout", fmt.Errorf("x: %w", context.DeadlineExceeded), 503, "timeout", "", "in time"},
		{"other", errors.New("boom secret"), 500, "internal", "", "request id"},
	} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, "/admin/events/replay", nil)
		s.writeReplayError(rec, r, "test", tt.err, "nothing here")
		var e errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatalf("%s: %s: %v", tt.name, rec.Body, err)
		}
		if rec.Code != tt.status || e.Error.Code != tt.code || e.Error.Field != tt.field || !strings.Contains(e.Error.Message, tt.msg) || strings.Contains(e.Error.Message, "secret") {
			t.Errorf("%s: %d %+v, want %d %s field %q message with %q", tt.name, rec.Code, e.Error, tt.status, tt.code, tt.field, tt.msg)
		}
	}
}

// replayState is what a replay request may change: the keys about replay
// (the jobs, the replay stream: names, types and sizes), the audit log
// and, when the Inspector lists them, every job and its status.
type replayState struct {
	keys, jobs string
	audit      int64
}

func readReplayState(t *testing.T, c redis.UniversalClient, prefix string, insp *eventbus.Inspector) replayState {
	t.Helper()
	ctx := context.Background()
	var keys []string
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		// The prefix names the test (it may say "replay" itself).
		if !strings.Contains(strings.ToLower(strings.TrimPrefix(k, prefix)), "replay") {
			continue
		}
		typ := c.Type(ctx, k).Val()
		var n int64
		switch typ {
		case "stream":
			n = c.XLen(ctx, k).Val()
		case "zset":
			n = c.ZCard(ctx, k).Val()
		case "hash":
			n = c.HLen(ctx, k).Val()
		case "set":
			n = c.SCard(ctx, k).Val()
		case "list":
			n = c.LLen(ctx, k).Val()
		case "string":
			n = c.StrLen(ctx, k).Val()
		}
		keys = append(keys, fmt.Sprintf("%s:%s:%d", strings.TrimPrefix(k, prefix), typ, n))
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	s := replayState{keys: strings.Join(keys, ","), audit: c.XLen(ctx, rdb.NewKeys(prefix, false).Audit()).Val()}
	if page, err := insp.Replays(ctx, eventbus.AllTenants(), "", eventbus.MaxBrowseLimit); err == nil {
		var jobs []string
		for _, j := range page.Items {
			jobs = append(jobs, j.ID+"="+j.Status)
		}
		s.jobs = strings.Join(jobs, ",")
	} else {
		s.jobs = "error: " + err.Error()
	}
	return s
}

// TestReplayRouteRefusals: the answers the routes decide before asking
// the Inspector (no job needed): 401 without a token, 403 for roles other
// than admin and owner, 404 for a tenant token naming another tenant, 400
// naming the parameter or body field, 413 for a body over the limit, 405
// for another method. None of them creates a job or writes the audit log.
func TestReplayRouteRefusals(t *testing.T) {
	c, prefix := redistest.Shared(t)
	bus, srv := newServer(t, c, prefix)
	adminA, viewerA := jwtFor(t, "tenant-a", "admin"), jwtFor(t, "tenant-a", "viewer")
	window := `"from":"2026-11-30T00:00:00Z","to":"2026-11-30T01:00:00Z"`
	big := `{` + window + `,"handlers":["` + strings.Repeat("x", maxAdminBody) + `"]}`
	before := readReplayState(t, c, prefix, bus.Inspector())
	for _, tt := range []struct {
		name, method, path, token, body string
		want                            int
		code, field                     string
	}{
		{"start, no token", "POST", "/admin/events/replay", "", `{` + window + `}`, 401, "unauthenticated", ""},
		{"start, publisher", "POST", "/admin/events/replay", keyPublisher, `{` + window + `}`, 403, "forbidden", ""},
		{"start, viewer", "POST", "/admin/events/replay", viewerA, `{` + window + `}`, 403, "forbidden", ""},
		{"start, member", "POST", "/admin/events/replay", jwtFor(t, "tenant-a", "member"), `{` + window + `}`, 403, "forbidden", ""},
		{"show, viewer key", "GET", "/admin/events/replay/j1", keyViewer, "", 403, "forbidden", ""},
		{"list, publisher", "GET", "/admin/events/replay", keyPublisher, "", 403, "forbidden", ""},
		{"cancel, viewer", "POST", "/admin/events/replay/j1/cancel", viewerA, "", 403, "forbidden", ""},
		{"cancel, no token", "POST", "/admin/events/replay/j1/cancel", "", "", 401, "unauthenticated", ""},
		{"start, other tenant", "POST", "/admin/events/replay", adminA, `{` + window + `,"tenantId":"tenant-b"}`, 404, "not_found", ""},
		{"show, other tenant", "GET", "/admin/events/replay/j1?tenantId=tenant-b", adminA, "", 404, "not_found", ""},
		{"list, other tenant", "GET", "/admin/events/replay?tenantId=tenant-b", adminA, "", 404, "not_found", ""},
		{"cancel, other tenant", "POST", "/admin/events/replay/j1/cancel?tenantId=tenant-b", adminA, "", 404, "not_found", ""},
		{"start, no from", "POST", "/admin/events/replay", adminA, `{"to":"2026-11-30T01:00:00Z"}`, 400, "invalid_request", "from"},
		{"start, bad to", "POST", "/admin/events/replay", keyPlatform, `{"from":"2026-11-30T00:00:00Z","to":"soon"}`, 400, "invalid_request", "to"},
		{"start, unknown field", "POST", "/admin/events/replay", adminA, `{` + window + `,"confirm":true}`, 400, "invalid_request", "confirm"},
		{"start, bad types", "POST", "/admin/events/replay", adminA, `{` + window + `,"types":{"a":1}}`, 400, "invalid_request", "types"},
		{"start, rate not a number", "POST", "/admin/events/replay", keyPlatform, `{` + window + `,"rate":"max"}`, 400, "invalid_request", "rate"},
		{"start, not JSON", "POST", "/admin/events/replay", adminA, `replay it all`, 400, "invalid_request", ""},
		{"start, body too large", "POST", "/admin/events/replay", adminA, big, 413, "too_large", ""},
		{"list, bad limit", "GET", "/admin/events/replay?limit=0", adminA, "", 400, "invalid_request", "limit"},
		{"list, limit over 100", "GET", "/admin/events/replay?limit=101", keyPlatform, "", 400, "invalid_request", "limit"},
		{"PUT on the list", "PUT", "/admin/events/replay", adminA, "", 405, "method_not_allowed", ""},
		{"DELETE a job", "DELETE", "/admin/events/replay/j1", adminA, "", 405, "method_not_allowed", ""},
		{"GET the cancel", "GET", "/admin/events/replay/j1/cancel", adminA, "", 405, "method_not_allowed", ""},
	} {
		var body io.Reader
		if tt.body != "" {
			body = strings.NewReader(tt.body)
		}
		r := send(t, tt.method, srv.URL+tt.path, tt.token, body)
		if r.status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.want)
			continue
		}
		if code, field := r.errorCode(t); code != tt.code || field != tt.field {
			t.Errorf("%s: code %q field %q, want %q %q", tt.name, code, field, tt.code, tt.field)
		}
	}
	if after := readReplayState(t, c, prefix, bus.Inspector()); after != before {
		t.Errorf("refused requests changed state: before %+v, after %+v", before, after)
	}
}

// replayFixture is a server over a bus with events of tenant-a and
// tenant-b in the main stream, a live consumer of the group with the
// handler "billing" (StartReplay accepts only handlers a live consumer
// registered), and no replay runner (no Bus.Run): jobs stay pending.
type replayFixture struct {
	c        redis.UniversalClient
	prefix   string
	insp     *eventbus.Inspector
	srv      *httptest.Server
	from, to time.Time
	jobs     map[string]eventbus.ReplayJob
}

func newReplayFixture(t *testing.T) *replayFixture {
	t.Helper()
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
	if err := cons.Handle("billing", "ops.*", eventbus.HandlerFunc(func(context.Context, eventbus.Event) error { return nil })); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = cons.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	keys := rdb.NewKeys(prefix, false)
	waitUntil(t, 30*time.Second, "the consumer registered", func() bool {
		return c.HLen(ctx, keys.Consumers(eventbus.DefaultGroup)).Val() > 0
	})

	f := &replayFixture{c: c, prefix: prefix, insp: bus.Inspector(), jobs: map[string]eventbus.ReplayJob{}}
	f.from = time.Now().Add(-time.Second).UTC()
	for i := range 20 {
		for _, tenant := range []string{"tenant-a", "tenant-b"} {
			if _, err := bus.Publish(ctx, eventbus.Event{Type: "ops.replay.test", TenantID: tenant, UserID: "u1", Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.to = time.Now().Add(time.Second).UTC()
	// The jobs the table reads and cancels, made by a platform operator.
	// Rate 1 keeps them slow should a runner pick them up.
	operator := eventbus.Actor{Subject: "fixture", TenantID: "*", Role: "owner"}
	for _, j := range []struct{ name, tenant string }{
		{"a", "tenant-a"}, {"b", "tenant-b"}, {"all", ""},
		{"cancel-a", "tenant-a"}, {"cancel-p", "tenant-a"}, {"cancel-all", ""}, {"finished", "tenant-a"},
	} {
		scope := eventbus.AllTenants()
		if j.tenant != "" {
			scope = eventbus.TenantScope(j.tenant)
		}
		job, err := f.insp.StartReplay(ctx, scope, operator, eventbus.ReplayRequest{
			From: f.from, To: f.to, TenantID: j.tenant, Handlers: []string{"billing"}, Rate: 1,
		})
		if err != nil {
			t.Fatalf("starting job %s: %v", j.name, err)
		}
		f.jobs[j.name] = job
	}
	if _, err := f.insp.CancelReplay(ctx, eventbus.AllTenants(), operator, f.jobs["finished"].ID); err != nil {
		t.Fatalf("cancelling job finished: %v", err)
	}
	f.srv = httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	t.Cleanup(f.srv.Close)
	return f
}

// TestReplayRoutesByToken is the table of every replay route × token
// (none, tenant-a viewer, tenant-b admin, tenant-a admin, platform admin)
// × expected status. A refused request creates no job, cancels none and
// writes no audit record; a tenant token's job is forced to its tenant;
// another tenant's job (or one over every tenant) answers 404 and never
// shows; an allowed start creates one job and one audit record; an
// allowed cancel cancels its target only.
//
// It needs the Inspector's replay implementation: against the stubs the
// fixture fails to make its jobs.
func TestReplayRoutesByToken(t *testing.T) {
	f := newReplayFixture(t)
	tokens := []struct{ name, token string }{
		{"none", ""},
		{"tenant-a viewer", jwtFor(t, "tenant-a", "viewer")},
		{"tenant-b admin", jwtFor(t, "tenant-b", "admin")},
		{"tenant-a admin", jwtFor(t, "tenant-a", "admin")},
		{"platform admin", keyPlatform},
	}
	const (
		none = iota
		viewerA
		adminB
		adminA
		platform
	)
	tokenTenant := [5]string{adminB: "tenant-b", adminA: "tenant-a", platform: "*"}
	window := fmt.Sprintf(`"from":%q,"to":%q,"handlers":["billing"],"rate":1`, f.from.Format(time.RFC3339Nano), f.to.Format(time.RFC3339Nano))
	type row struct {
		name, method string
		path         func(job eventbus.ReplayJob) string
		body         string // "": no body
		// targets names the fixture's job each token's request is about.
		targets [5]string
		want    [5]int
		check   func(t *testing.T, tok int, target eventbus.ReplayJob, body []byte)
	}
	same := func(name string) [5]string { return [5]string{name, name, name, name, name} }
	static := func(p string) func(eventbus.ReplayJob) string { return func(eventbus.ReplayJob) string { return p } }
	jobPath := func(suffix string) func(eventbus.ReplayJob) string {
		return func(j eventbus.ReplayJob) string { return "/admin/events/replay/" + j.ID + suffix }
	}
	// started checks a 201: the job is pending, forced to the token's
	// tenant (or wantTenant for a platform token), requested by it.
	started := func(wantTenant string) func(t *testing.T, tok int, _ eventbus.ReplayJob, body []byte) {
		return func(t *testing.T, tok int, _ eventbus.ReplayJob, body []byte) {
			var got replayStarted
			if err := json.Unmarshal(body, &got); err != nil || got.JobID == "" || got.JobID != got.Job.ID || got.Status != eventbus.ReplayPending && got.Status != eventbus.ReplayRunning {
				t.Fatalf("start answer %s: %v", body, err)
			}
			tenant := wantTenant
			if tok != platform {
				tenant = tokenTenant[tok]
			}
			if got.Job.Request.TenantID != tenant || got.Job.RequestedByTenant != tokenTenant[tok] || got.Job.RequestedBy == "" || got.EstimatedEvents != got.Job.EstimatedEvents {
				t.Errorf("job %+v: want tenant %q requested by a principal of %q", got.Job, tenant, tokenTenant[tok])
			}
			if got.EstimatedEvents <= 0 {
				t.Errorf("estimatedEvents %d, want some: 20 events per tenant are in the window", got.EstimatedEvents)
			}
		}
	}
	shown := func(t *testing.T, _ int, target eventbus.ReplayJob, body []byte) {
		var got eventbus.ReplayJob
		if err := json.Unmarshal(body, &got); err != nil || got.ID != target.ID || got.Request.TenantID != target.Request.TenantID || got.CreatedAt.IsZero() {
			t.Errorf("job %s, want %s: %v", body, target.ID, err)
		}
	}
	cancelled := func(t *testing.T, _ int, target eventbus.ReplayJob, body []byte) {
		var got eventbus.ReplayJob
		if err := json.Unmarshal(body, &got); err != nil || got.ID != target.ID {
			t.Fatalf("cancel answer %s: %v", body, err)
		}
		// Pending: cancelled at once; running (should a runner have taken
		// it): within a second.
		waitUntil(t, 30*time.Second, "the job cancelled", func() bool {
			j, err := f.insp.Replay(context.Background(), eventbus.AllTenants(), target.ID)
			return err == nil && j.Status == eventbus.ReplayCancelled
		})
	}
	listed := func(tenantOnly string) func(t *testing.T, tok int, _ eventbus.ReplayJob, body []byte) {
		return func(t *testing.T, tok int, _ eventbus.ReplayJob, body []byte) {
			var page eventbus.ReplayPage
			if err := json.Unmarshal(body, &page); err != nil || page.Items == nil {
				t.Fatalf("list %s: %v", body, err)
			}
			ids := map[string]bool{}
			for _, j := range page.Items {
				ids[j.ID] = true
				switch {
				case tok != platform && j.Request.TenantID != tokenTenant[tok]:
					t.Errorf("%s lists a job of tenant %q: %+v", tokens[tok].name, j.Request.TenantID, j)
				case tenantOnly != "" && j.Request.TenantID != tenantOnly:
					t.Errorf("?tenantId=%s lists a job of tenant %q", tenantOnly, j.Request.TenantID)
				}
			}
			for name, j := range f.jobs {
				visible := tok == platform && (tenantOnly == "" || j.Request.TenantID == tenantOnly) || tok != platform && j.Request.TenantID == tokenTenant[tok]
				if visible && !ids[j.ID] {
					t.Errorf("list lacks job %s (%s)", name, j.ID)
				}
			}
			for i := 1; i < len(page.Items); i++ {
				if page.Items[i].CreatedAt.After(page.Items[i-1].CreatedAt) {
					t.Errorf("list not newest first: %s", body)
				}
			}
		}
	}
	tenantAOnly := [5]int{401, 403, 404, 200, 200}
	rows := []row{
		{name: "start", method: "POST", path: static("/admin/events/replay"), body: `{` + window + `}`,
			want: [5]int{401, 403, 201, 201, 201}, check: started("")},
		{name: "start of tenant-a", method: "POST", path: static("/admin/events/replay"), body: `{` + window + `,"tenantId":"tenant-a"}`,
			want: [5]int{401, 403, 404, 201, 201}, check: started("tenant-a")},
		{name: "start of tenant-a, dry run", method: "POST", path: static("/admin/events/replay"), body: `{` + window + `,"tenantId":"tenant-a","dryRun":true}`,
			want: [5]int{401, 403, 404, 201, 201}, check: started("tenant-a")},
		{name: "start, unknown handler", method: "POST", path: static("/admin/events/replay"),
			body: fmt.Sprintf(`{"from":%q,"to":%q,"handlers":["nobody"]}`, f.from.Format(time.RFC3339Nano), f.to.Format(time.RFC3339Nano)),
			want: [5]int{401, 403, 400, 400, 400}},
		{name: "start, from after to", method: "POST", path: static("/admin/events/replay"),
			body: fmt.Sprintf(`{"from":%q,"to":%q}`, f.to.Format(time.RFC3339Nano), f.from.Format(time.RFC3339Nano)),
			want: [5]int{401, 403, 400, 400, 400}},
		{name: "start, empty window", method: "POST", path: static("/admin/events/replay"),
			body: fmt.Sprintf(`{"from":%q,"to":%q}`, f.from.Add(-10*time.Second).Format(time.RFC3339Nano), f.from.Add(-5*time.Second).Format(time.RFC3339Nano)),
			want: [5]int{401, 403, 400, 400, 400}},
		{name: "show tenant-a's", method: "GET", path: jobPath(""), targets: same("a"), want: tenantAOnly, check: shown},
		{name: "show tenant-b's", method: "GET", path: jobPath(""), targets: same("b"), want: [5]int{401, 403, 200, 404, 200}, check: shown},
		{name: "show every tenant's", method: "GET", path: jobPath(""), targets: same("all"), want: [5]int{401, 403, 404, 404, 200}, check: shown},
		{name: "show unknown", method: "GET", path: static("/admin/events/replay/no-such-job"), want: [5]int{401, 403, 404, 404, 404}},
		{name: "list", method: "GET", path: static("/admin/events/replay?limit=100"), want: [5]int{401, 403, 200, 200, 200}, check: listed("")},
		{name: "list of tenant-a", method: "GET", path: static("/admin/events/replay?tenantId=tenant-a&limit=100"), want: tenantAOnly, check: listed("tenant-a")},
		{name: "cancel", method: "POST", path: jobPath("/cancel"), targets: [5]string{"cancel-a", "cancel-a", "cancel-a", "cancel-a", "cancel-p"},
			want: tenantAOnly, check: cancelled},
		{name: "cancel every tenant's", method: "POST", path: jobPath("/cancel"), targets: same("cancel-all"), want: [5]int{401, 403, 404, 404, 200}, check: cancelled},
		{name: "cancel finished", method: "POST", path: jobPath("/cancel"), targets: same("finished"), want: [5]int{401, 403, 404, 409, 409}},
		{name: "cancel unknown", method: "POST", path: static("/admin/events/replay/no-such-job/cancel"), want: [5]int{401, 403, 404, 404, 404}},
	}
	for _, r := range rows {
		for i, tok := range tokens {
			target := f.jobs[r.targets[i]]
			t.Run(r.name+"/"+tok.name, func(t *testing.T) {
				var body io.Reader
				if r.body != "" {
					body = strings.NewReader(r.body)
				}
				before := readReplayState(t, f.c, f.prefix, f.insp)
				rep := send(t, r.method, f.srv.URL+r.path(target), tok.token, body)
				after := readReplayState(t, f.c, f.prefix, f.insp)
				if rep.status != r.want[i] {
					t.Errorf("%s %s: %d %s, want %d", r.method, r.path(target), rep.status, rep.body, r.want[i])
				}
				switch {
				case rep.status == 201:
					if after.audit != before.audit+1 || strings.Count(after.jobs, "=") != strings.Count(before.jobs, "=")+1 {
						t.Errorf("a start made not one job and one audit record: before %+v, after %+v", before, after)
					}
				case rep.status == 200 && r.method == "POST":
					if after.audit != before.audit+1 || after.jobs == before.jobs {
						t.Errorf("a cancel changed no job or wrote no audit record: before %+v, after %+v", before, after)
					}
				default:
					// A read or a refusal changes nothing.
					if after != before {
						t.Errorf("state changed: before %+v, after %+v", before, after)
					}
				}
				if rep.status >= 300 {
					code, field := rep.errorCode(t)
					wantCode := map[int]string{400: "invalid_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 409: "replay_finished"}[r.want[i]]
					if code != wantCode {
						t.Errorf("code %q, want %q", code, wantCode)
					}
					if r.want[i] == 400 && field == "" {
						t.Errorf("a refused replay names no field: %s", rep.body)
					}
					// Another tenant's job never shows: the refusal may repeat
					// the id asked for, nothing of the job.
					if strings.Contains(string(rep.body), `"requestedBy"`) || strings.Contains(string(rep.body), "fixture") {
						t.Errorf("refusal shows the job: %s", rep.body)
					}
					return
				}
				if r.check != nil {
					r.check(t, i, target, rep.body)
				}
			})
		}
	}
}
