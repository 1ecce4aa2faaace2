package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// dlqTarget is one seeded dead letter.
type dlqTarget struct {
	eventID, entryID, typ, tenant string
}

// dlqFixture is a server over a bus whose DLQ holds dead letters made
// through the public path: events published and failed permanently by a
// consumer, which is then stopped (so that redriven entries wait in the
// retry schedule instead of failing again).
type dlqFixture struct {
	c       redis.UniversalClient
	keys    rdb.Keys
	srv     *httptest.Server
	targets map[string]dlqTarget
}

// newDLQFixture publishes one event per name (type "ops.<name>.failed", of
// tenant-a unless the name starts with "b-", then tenant-b) and waits
// until each is dead-lettered by the handler "billing".
func newDLQFixture(t *testing.T, names ...string) *dlqFixture {
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
	cons, err := bus.NewConsumer(eventbus.ConsumerConfig{
		ClaimIdle: 5 * time.Second, ClaimInterval: 200 * time.Millisecond, RetryPollInterval: 10 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Handle("billing", "ops.*", eventbus.HandlerFunc(func(context.Context, eventbus.Event) error {
		return eventbus.Permanent(errors.New("card declined: insufficient funds"))
	}), eventbus.Timeout(time.Second)); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = cons.Run(runCtx) }()
	stopped := false
	stopConsumer := func() {
		if !stopped {
			stopped = true
			stop()
			<-done
		}
	}
	t.Cleanup(stopConsumer)

	f := &dlqFixture{c: c, keys: rdb.NewKeys(prefix, false), targets: map[string]dlqTarget{}}
	for _, name := range names {
		tenant := "tenant-a"
		if strings.HasPrefix(name, "b-") {
			tenant = "tenant-b"
		}
		typ := "ops." + name + ".failed"
		p, err := bus.Publish(ctx, eventbus.Event{Type: typ, TenantID: tenant, UserID: "u1", Data: json.RawMessage(`{"amount":12}`)})
		if err != nil {
			t.Fatal(err)
		}
		f.targets[name] = dlqTarget{eventID: p.ID, typ: typ, tenant: tenant}
	}
	waitUntil(t, 30*time.Second, "every event dead-lettered", func() bool {
		return c.XLen(ctx, f.keys.DLQ()).Val() == int64(len(names))
	})
	stopConsumer()
	entries, err := c.XRange(ctx, f.keys.DLQ(), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	byEvent := map[string]string{}
	for _, e := range entries {
		var dl eventbus.DeadLetter
		raw, _ := e.Values[rdb.FieldDLQ].(string)
		if err := json.Unmarshal([]byte(raw), &dl); err != nil {
			t.Fatalf("DLQ entry %s: %v", e.ID, err)
		}
		byEvent[dl.EventID] = e.ID
	}
	for name, tg := range f.targets {
		if tg.entryID = byEvent[tg.eventID]; tg.entryID == "" {
			t.Fatalf("no DLQ entry for %s (%s)", name, tg.eventID)
		}
		f.targets[name] = tg
	}
	f.srv = httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	t.Cleanup(f.srv.Close)
	return f
}

// waitUntil polls cond every 20ms until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dlqState is what an admin request may change: the DLQ, its index and
// counters, the retry schedule and the audit log.
type dlqState struct {
	dlq, index, counters, retries, audit string
}

func (f *dlqFixture) state(t *testing.T) dlqState {
	t.Helper()
	ctx := context.Background()
	g := eventbus.DefaultGroup
	var s dlqState
	ids := []string{}
	for _, e := range f.c.XRange(ctx, f.keys.DLQ(), "-", "+").Val() {
		ids = append(ids, e.ID)
	}
	s.dlq = strings.Join(ids, ",")
	s.index = strings.Join(f.c.ZRange(ctx, f.keys.DLQIndex(), 0, -1).Val(), ",")
	s.counters = fmt.Sprint(f.c.HGetAll(ctx, f.keys.DLQCounters()).Val())
	sched := f.c.ZRangeWithScores(ctx, f.keys.RetrySchedule(g), 0, -1).Val()
	data := f.c.HKeys(ctx, f.keys.RetryData(g)).Val()
	slices.Sort(data)
	s.retries = fmt.Sprint(sched, data, f.c.XLen(ctx, f.keys.Retries(g)).Val())
	s.audit = fmt.Sprint(f.c.XLen(ctx, f.keys.Audit()).Val())
	return s
}

func (f *dlqFixture) inDLQ(t *testing.T, entryID string) bool {
	t.Helper()
	return len(f.c.XRange(context.Background(), f.keys.DLQ(), entryID, entryID).Val()) == 1
}

// TestDLQRoutesByToken is the table of every dead-letter and stats route ×
// token (tenant-a admin, tenant-b admin, tenant-a viewer, platform admin,
// none) × expected status. A refused request changes nothing (DLQ, its
// index and counters, the retry schedule, the audit log); another tenant's
// dead letter answers 404 and never shows its contents; a dry run changes
// no dead letter; a confirmed write by an allowed token acts on its target
// only.
//
// It needs the Inspector's DLQ and Stats methods: against their stubs the
// 200 rows (and the 404 of another tenant's dead letter, which the
// Inspector decides) fail.
func TestDLQRoutesByToken(t *testing.T) {
	f := newDLQFixture(t, "read",
		"retry-a", "retry-p", "delete-a", "delete-p",
		"bulk-ids-a", "bulk-ids-p", "bulk-events-a", "bulk-events-p", "bulk-filter-a", "bulk-filter-p",
		"purge-ids-a", "purge-ids-p", "purge-filter-a", "purge-filter-p",
		"b-other")
	type tokenCase struct{ name, token string }
	tokens := []tokenCase{
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
	type row struct {
		name   string
		method string
		path   func(dlqTarget) string
		body   func(dlqTarget) string // nil: no body
		// targets names the dead letter each token's request is about;
		// "" for every token: "read".
		targets [5]string
		want    [5]int
		// acts marks the tokens whose request changes dead letters (a
		// confirmed write); every other request must change nothing.
		acts [5]bool
		// redrives: a confirmed write schedules a retry (else deletes).
		redrives bool
		// check looks at a 200 body.
		check func(t *testing.T, tok int, tg dlqTarget, body []byte)
	}
	allAllowed := [5]int{401, 403, 200, 200, 200}
	tenantAOnly := [5]int{401, 403, 404, 200, 200}
	writers := [5]bool{adminA: true, platform: true}
	pair := func(name string) [5]string {
		return [5]string{name + "-a", name + "-a", name + "-a", name + "-a", name + "-p"}
	}
	a := f.targets
	// noTenantA: a tenant-b token never sees tenant-a's dead letters.
	noTenantA := func(t *testing.T, tok int, body []byte) {
		if tok == adminB {
			for name, tg := range a {
				if tg.tenant == "tenant-a" && (strings.Contains(string(body), tg.eventID) || strings.Contains(string(body), tg.entryID)) {
					t.Errorf("tenant-b sees tenant-a's dead letter %s: %s", name, body)
				}
			}
			if strings.Contains(string(body), "tenant-a") {
				t.Errorf("tenant-b's answer names tenant-a: %s", body)
			}
		}
	}
	statsCheck := func(t *testing.T, tok int, _ dlqTarget, body []byte) {
		var st eventbus.Stats
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatalf("stats body %s: %v", body, err)
		}
		want := map[int]struct {
			scope string
			dlq   int64
		}{adminA: {"tenant-a", 15}, adminB: {"tenant-b", 1}, platform: {"*", 16}}[tok]
		if st.Scope != want.scope || st.DLQ.Length != want.dlq {
			t.Errorf("stats scope %q dlq %d, want %q %d", st.Scope, st.DLQ.Length, want.scope, want.dlq)
		}
		noTenantA(t, tok, body)
	}
	listCheck := func(t *testing.T, tok int, _ dlqTarget, body []byte) {
		var page eventbus.DLQPage
		if err := json.Unmarshal(body, &page); err != nil || page.Items == nil {
			t.Fatalf("list body %s: %v", body, err)
		}
		want := map[int]int{adminA: 15, adminB: 1, platform: 16}[tok]
		if len(page.Items) != want {
			t.Errorf("%d items, want %d", len(page.Items), want)
		}
		for _, it := range page.Items {
			if it.ID == "" || it.EventID == "" || it.Handler != "billing" || it.Attempts < 1 || it.LastError == "" || it.MovedAt.IsZero() {
				t.Errorf("item lacks fields: %+v", it)
			}
		}
		noTenantA(t, tok, body)
	}
	// countCheck checks a write's answer: {field: n}, and for a bulk
	// route (matched >= 0) matched and dryRun. Another tenant's token
	// selects nothing.
	countCheck := func(field string, matched, n int64, dryRun bool) func(t *testing.T, tok int, _ dlqTarget, body []byte) {
		return func(t *testing.T, tok int, _ dlqTarget, body []byte) {
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			wantMatched, wantN := matched, n
			if tok == adminB {
				wantMatched, wantN = 0, 0
			}
			if got[field] != float64(wantN) {
				t.Errorf("%s %v, want %d: %s", field, got[field], wantN, body)
			}
			if matched >= 0 && (got["matched"] != float64(wantMatched) || got["dryRun"] != dryRun) {
				t.Errorf("matched %v dryRun %v, want %d %v: %s", got["matched"], got["dryRun"], wantMatched, dryRun, body)
			}
		}
	}
	eventPath := func(suffix string) func(dlqTarget) string {
		return func(tg dlqTarget) string { return "/admin/events/dlq/" + tg.eventID + suffix }
	}
	static := func(p string) func(dlqTarget) string { return func(dlqTarget) string { return p } }
	rows := []row{
		{name: "stats", method: "GET", path: static("/admin/events/stats"), want: allAllowed, check: statsCheck},
		{name: "stats of tenant-a", method: "GET", path: static("/admin/events/stats?tenantId=tenant-a"), want: tenantAOnly,
			check: func(t *testing.T, tok int, tg dlqTarget, body []byte) {
				var st eventbus.Stats
				if json.Unmarshal(body, &st) != nil || st.Scope != "tenant-a" || st.DLQ.Length != 15 {
					t.Errorf("stats %s", body)
				}
			}},
		{name: "list", method: "GET", path: static("/admin/events/dlq"), want: allAllowed, check: listCheck},
		{name: "list of tenant-a", method: "GET", path: static("/admin/events/dlq?tenantId=tenant-a&limit=100"), want: tenantAOnly,
			check: func(t *testing.T, tok int, tg dlqTarget, body []byte) {
				var page eventbus.DLQPage
				if json.Unmarshal(body, &page) != nil || len(page.Items) != 15 || strings.Contains(string(body), "tenant-b") {
					t.Errorf("list %s", body)
				}
			}},
		{name: "show", method: "GET", path: eventPath(""), want: tenantAOnly,
			check: func(t *testing.T, tok int, tg dlqTarget, body []byte) {
				var dl eventbus.EventDeadLetters
				if err := json.Unmarshal(body, &dl); err != nil || dl.EventID != tg.eventID || len(dl.Entries) != 1 ||
					dl.Entries[0].ID != tg.entryID || dl.Entries[0].Event == nil || len(dl.Entries[0].Errors) == 0 {
					t.Errorf("show %s: %v", body, err)
				}
			}},
		{name: "show another tenant's", method: "GET", path: eventPath(""), want: [5]int{401, 403, 200, 404, 200},
			targets: [5]string{"b-other", "b-other", "b-other", "b-other", "b-other"}},
		{name: "entry", method: "GET", path: func(tg dlqTarget) string { return "/admin/events/dlq/entries/" + tg.entryID }, want: tenantAOnly,
			check: func(t *testing.T, tok int, tg dlqTarget, body []byte) {
				var e eventbus.DLQEntry
				if err := json.Unmarshal(body, &e); err != nil || e.ID != tg.entryID || e.EventID != tg.eventID || e.Handler != "billing" || e.Event == nil {
					t.Errorf("entry %s: %v", body, err)
				}
			}},
		{name: "retry dry run by filter", method: "POST", path: static("/admin/events/dlq/retry"),
			body: func(tg dlqTarget) string { return `{"filter":{"type":"` + tg.typ + `"}}` }, want: allAllowed,
			check: countCheck("redriven", 1, 0, true)},
		{name: "purge dry run by ids", method: "POST", path: static("/admin/events/dlq/purge"),
			body: func(tg dlqTarget) string { return `{"ids":["` + tg.entryID + `"],"confirm":false}` }, want: allAllowed,
			check: countCheck("deleted", 1, 0, true)},
		{name: "retry one", method: "POST", path: eventPath("/retry"), want: tenantAOnly, targets: pair("retry"), acts: writers, redrives: true,
			check: countCheck("redriven", -1, 1, false)},
		{name: "delete one", method: "DELETE", path: eventPath(""), want: tenantAOnly, targets: pair("delete"), acts: writers,
			check: countCheck("deleted", -1, 1, false)},
		{name: "bulk retry by ids", method: "POST", path: static("/admin/events/dlq/retry"),
			body:    func(tg dlqTarget) string { return `{"ids":["` + tg.entryID + `"],"confirm":true}` },
			targets: pair("bulk-ids"), want: allAllowed, acts: writers, redrives: true, check: countCheck("redriven", 1, 1, false)},
		{name: "bulk retry by event ids", method: "POST", path: static("/admin/events/dlq/retry"),
			body:    func(tg dlqTarget) string { return `{"eventIds":["` + tg.eventID + `"],"confirm":true}` },
			targets: pair("bulk-events"), want: allAllowed, acts: writers, redrives: true, check: countCheck("redriven", 1, 1, false)},
		{name: "bulk retry by filter of tenant-a", method: "POST", path: static("/admin/events/dlq/retry"),
			body: func(tg dlqTarget) string {
				return `{"filter":{"type":"` + tg.typ + `","tenantId":"tenant-a"},"confirm":true}`
			},
			targets: pair("bulk-filter"), want: tenantAOnly, acts: writers, redrives: true, check: countCheck("redriven", 1, 1, false)},
		{name: "purge by ids", method: "POST", path: static("/admin/events/dlq/purge"),
			body:    func(tg dlqTarget) string { return `{"ids":["` + tg.entryID + `"],"confirm":true}` },
			targets: pair("purge-ids"), want: allAllowed, acts: writers, check: countCheck("deleted", 1, 1, false)},
		{name: "purge by filter of tenant-a", method: "POST", path: static("/admin/events/dlq/purge"),
			body: func(tg dlqTarget) string {
				return `{"filter":{"type":"` + tg.typ + `","tenantId":"tenant-a","q":"card declined"},"confirm":true}`
			},
			targets: pair("purge-filter"), want: tenantAOnly, acts: writers, check: countCheck("deleted", 1, 1, false)},
	}
	for _, r := range rows {
		for i, tok := range tokens {
			name := r.targets[i]
			if name == "" {
				name = "read"
			}
			tg := a[name]
			t.Run(r.name+"/"+tok.name, func(t *testing.T) {
				var body io.Reader
				if r.body != nil {
					body = strings.NewReader(r.body(tg))
				}
				before := f.state(t)
				rep := send(t, r.method, f.srv.URL+r.path(tg), tok.token, body)
				after := f.state(t)
				if rep.status != r.want[i] {
					t.Errorf("%s %s: %d %s, want %d", r.method, r.path(tg), rep.status, rep.body, r.want[i])
				}
				switch {
				case r.acts[i] && rep.status == 200:
					if f.inDLQ(t, tg.entryID) {
						t.Errorf("%s is still in the DLQ", name)
					}
					if r.redrives == (before.retries == after.retries) {
						t.Errorf("retry schedule before %s, after %s (redrive: %v)", before.retries, after.retries, r.redrives)
					}
					if before.audit == after.audit {
						t.Error("the write was not audited")
					}
				case rep.status == 200:
					// A read or a dry run: no dead letter changed (a dry run
					// may be audited).
					after.audit = before.audit
					if after != before {
						t.Errorf("changed state: before %+v, after %+v", before, after)
					}
				default:
					if after != before {
						t.Errorf("refused request changed state: before %+v, after %+v", before, after)
					}
					if !r.acts[i] && !f.inDLQ(t, tg.entryID) {
						t.Errorf("%s left the DLQ", name)
					}
				}
				if rep.status != 200 {
					code, _ := rep.errorCode(t)
					wantCode := map[int]string{401: "unauthenticated", 403: "forbidden", 404: "not_found"}[r.want[i]]
					if code != wantCode {
						t.Errorf("code %q, want %q", code, wantCode)
					}
					// The message may repeat the id asked for, nothing of the
					// dead letter itself.
					if strings.Contains(string(rep.body), tg.typ) || strings.Contains(string(rep.body), "card declined") {
						t.Errorf("refusal shows the dead letter: %s", rep.body)
					}
					return
				}
				if r.check != nil {
					r.check(t, i, tg, rep.body)
				}
			})
		}
	}
}
