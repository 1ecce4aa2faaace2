package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

var testActor = eventbus.Actor{Subject: "ops@example.com", TenantID: "*", Role: "admin"}

func TestDeadLettersScopeAndFilters(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	in := b.Inspector()
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	id := func(min int) string { return fmt.Sprintf("%d-1", base.Add(time.Duration(min)*time.Minute).UnixMilli()) }
	poison := deadLetterOf("A", "a3", "order.paid", "h1", "consumer crash")
	poison.Handlers = []string{"h1", "h2"}
	poison.Reason = "delivered 3 times without an outcome"
	seeds := []dlqSeed{
		{id: id(0), dl: deadLetterOf("A", "a1", "order.created", "h1", "DB Timeout")},
		{id: id(1), dl: deadLetterOf("B", "b1", "order.created", "h1", "db timeout")},
		{id: id(2), dl: deadLetterOf("A", "a2", "invoice.sent", "h2", "smtp refused")},
		{id: id(3), dl: poison},
		{id: id(4), dl: eventbus.DeadLetter{Reason: "entry has no event field", Errors: []eventbus.AttemptError{{Message: "entry has no event field"}}}, payload: "not json"},
		{id: id(5), dl: deadLetterOf("B", "a1", "order.created", "h2", "boom")}, // B's event with A's event id
	}
	ids := seedDLQ(t, c, prefix, seeds)
	A, B, all := eventbus.TenantScope("A"), eventbus.TenantScope("B"), eventbus.AllTenants()
	for _, tc := range []struct {
		name  string
		scope eventbus.Scope
		f     eventbus.DLQFilter
		want  []int // indexes into ids, newest first
	}{
		{"tenant A", A, eventbus.DLQFilter{}, []int{3, 2, 0}},
		{"tenant B", B, eventbus.DLQFilter{}, []int{5, 1}},
		{"all", all, eventbus.DLQFilter{}, []int{5, 4, 3, 2, 1, 0}},
		{"all narrowed to A", all, eventbus.DLQFilter{TenantID: "A"}, []int{3, 2, 0}},
		{"own tenant named", A, eventbus.DLQFilter{TenantID: "A"}, []int{3, 2, 0}},
		{"type pattern", all, eventbus.DLQFilter{Types: []string{"order.*"}}, []int{5, 3, 1, 0}},
		{"two types", A, eventbus.DLQFilter{Types: []string{"invoice.sent", "order.paid"}}, []int{3, 2}},
		{"handler", all, eventbus.DLQFilter{Handler: "h2"}, []int{5, 3, 2}},
		{"query in an error, any case", all, eventbus.DLQFilter{Query: "DB TIMEOUT"}, []int{1, 0}},
		{"query in the reason", all, eventbus.DLQFilter{Query: "without an outcome"}, []int{3}},
		{"from", all, eventbus.DLQFilter{From: base.Add(3 * time.Minute)}, []int{5, 4, 3}},
		{"to", A, eventbus.DLQFilter{To: base.Add(2 * time.Minute)}, []int{2, 0}},
		{"from to", all, eventbus.DLQFilter{From: base.Add(time.Minute), To: base.Add(2 * time.Minute)}, []int{2, 1}},
		{"nothing", B, eventbus.DLQFilter{Handler: "nobody"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := listAll(t, in, tc.scope, tc.f, 2, nil)
			var want []string
			for _, i := range tc.want {
				want = append(want, ids[i])
			}
			if !slices.Equal(got, want) {
				t.Errorf("ids %v, want %v", got, want)
			}
		})
	}

	// Items carry the listing fields.
	p, err := in.DeadLetters(ctx, A, eventbus.DLQListOptions{Limit: 1})
	if err != nil || len(p.Items) != 1 || p.NextCursor != ids[3] {
		t.Fatalf("page %+v %v", p, err)
	}
	if it := p.Items[0]; it.EventID != "a3" || it.TenantID != "A" || it.Handler != "h1" || !slices.Equal(it.Handlers, []string{"h1", "h2"}) ||
		it.LastError != "consumer crash" || it.Attempts != 1 || it.Group != eventbus.DefaultGroup || it.MovedAt.IsZero() {
		t.Errorf("item %+v", it)
	}

	// Bad filters name their field; another tenant is not in scope.
	for _, tc := range []struct {
		scope eventbus.Scope
		opts  eventbus.DLQListOptions
		field string
	}{
		{A, eventbus.DLQListOptions{Filter: eventbus.DLQFilter{Types: []string{"a.*.b"}}}, "type"},
		{A, eventbus.DLQListOptions{Filter: eventbus.DLQFilter{TenantID: "B"}}, "tenantId"},
		{A, eventbus.DLQListOptions{Filter: eventbus.DLQFilter{From: base, To: base.Add(-time.Second)}}, "to"},
		{A, eventbus.DLQListOptions{Filter: eventbus.DLQFilter{Query: string(make([]byte, 300))}}, "q"},
		{A, eventbus.DLQListOptions{Filter: eventbus.DLQFilter{Handler: "\xff"}}, "handler"},
		{A, eventbus.DLQListOptions{Cursor: "abc"}, "cursor"},
		{A, eventbus.DLQListOptions{Limit: 101}, "limit"},
		{A, eventbus.DLQListOptions{Limit: -1}, "limit"},
	} {
		_, err := in.DeadLetters(ctx, tc.scope, tc.opts)
		var fe *eventbus.FilterError
		if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, eventbus.ErrInvalidFilter) {
			t.Errorf("%+v: error %v, want a FilterError on %s", tc.opts, err, tc.field)
		}
	}
	if _, err := in.DeadLetters(ctx, eventbus.Scope{}, eventbus.DLQListOptions{}); !errors.Is(err, eventbus.ErrInvalidScope) {
		t.Errorf("zero scope: %v", err)
	}

	// Show by entry id and by event id, scoped.
	if e, err := in.DeadLetter(ctx, A, ids[0]); err != nil || e.EventID != "a1" || e.Errors[0].Message != "DB Timeout" || len(e.Event) == 0 {
		t.Errorf("A's entry: %+v %v", e, err)
	}
	for _, tc := range []struct {
		scope eventbus.Scope
		id    string
	}{{A, ids[1]}, {B, ids[0]}, {A, ids[4]}, {A, "1-1"}, {A, "nonsense"}} {
		if _, err := in.DeadLetter(ctx, tc.scope, tc.id); !errors.Is(err, eventbus.ErrNotFound) {
			t.Errorf("DeadLetter(%v, %s): %v, want ErrNotFound", tc.scope, tc.id, err)
		}
	}
	if e, err := in.DeadLetter(ctx, all, ids[4]); err != nil || e.Raw != "not json" || e.Event != nil {
		t.Errorf("invalid entry: %+v %v", e, err)
	}
	ev, err := in.DeadLettersOf(ctx, A, "a1")
	if err != nil || len(ev.Entries) != 1 || ev.Entries[0].ID != ids[0] {
		t.Errorf("A's a1: %+v %v", ev, err)
	}
	if ev, err := in.DeadLettersOf(ctx, all, "a1"); err != nil || len(ev.Entries) != 2 || ev.Entries[0].ID != ids[0] || ev.Entries[1].ID != ids[5] {
		t.Errorf("every a1, oldest first: %+v %v", ev, err)
	}
	if _, err := in.DeadLettersOf(ctx, B, "a2"); !errors.Is(err, eventbus.ErrNotFound) {
		t.Errorf("B reading A's event: %v, want ErrNotFound", err)
	}
	// Another tenant's dead letter cannot be redriven or deleted.
	if _, err := in.Redrive(ctx, B, testActor, "a2"); !errors.Is(err, eventbus.ErrNotFound) {
		t.Errorf("B redriving A's event: %v", err)
	}
	if _, err := in.DeleteDeadLetters(ctx, B, testActor, "a2"); !errors.Is(err, eventbus.ErrNotFound) {
		t.Errorf("B deleting A's event: %v", err)
	}
	if res, err := in.Purge(ctx, B, testActor, eventbus.DLQSelection{IDs: []string{ids[0], ids[2]}}, true); err != nil || res.Matched != 0 || res.Deleted != 0 {
		t.Errorf("B purging A's ids: %+v %v", res, err)
	}
	if n := c.XLen(ctx, testKeys(prefix).DLQ()).Val(); n != int64(len(ids)) {
		t.Errorf("dlq has %d entries, want %d", n, len(ids))
	}
}

// Pages return every entry exactly once while new dead letters arrive
// (they are newer than the first page, so not in this listing).
func TestDeadLettersPaginationWhileNewArrive(t *testing.T) {
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	in := b.Inspector()
	var seeds []dlqSeed
	for i := range 230 {
		seeds = append(seeds, dlqSeed{dl: deadLetterOf([]string{"A", "B", "C"}[i%3], fmt.Sprintf("e%d", i), "order.created", "h", "x")})
	}
	seedDLQ(t, c, prefix, seeds)
	for _, tc := range []struct {
		scope  eventbus.Scope
		tenant string
	}{{eventbus.AllTenants(), ""}, {eventbus.TenantScope("A"), "A"}} {
		var want []string // what the DLQ holds when the listing starts
		for _, m := range c.XRevRange(context.Background(), testKeys(prefix).DLQ(), "+", "-").Val() {
			var dl eventbus.DeadLetter
			_ = json.Unmarshal([]byte(m.Values[rdb.FieldDLQ].(string)), &dl)
			if tc.tenant == "" || dl.TenantID == tc.tenant {
				want = append(want, m.ID)
			}
		}
		n := 0
		got := listAll(t, in, tc.scope, eventbus.DLQFilter{}, 7, func() {
			n++
			seedDLQ(t, c, prefix, []dlqSeed{{dl: deadLetterOf("A", fmt.Sprintf("new%d", n), "order.created", "h", "x")}})
		})
		if !slices.Equal(got, want) {
			t.Errorf("%v: listed %d entries, want %d, each once, newest first", tc.scope, len(got), len(want))
		}
	}
}

// A page reads at most DLQReadMax entries: with few matches it returns
// fewer items and a cursor to go on, and the listing still ends.
func TestDeadLettersPageReadsBoundedEntries(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	in := b.Inspector()
	var seeds []dlqSeed
	for i := range 2*eventbus.DLQReadMax + 10 {
		msg := "x"
		if i == 5 {
			msg = "needle"
		}
		seeds = append(seeds, dlqSeed{dl: deadLetterOf("A", fmt.Sprintf("e%d", i), "order.created", "h", msg)})
	}
	ids := seedDLQ(t, c, prefix, seeds)
	for _, scope := range []eventbus.Scope{eventbus.AllTenants(), eventbus.TenantScope("A")} {
		p, err := in.DeadLetters(ctx, scope, eventbus.DLQListOptions{Filter: eventbus.DLQFilter{Query: "needle"}})
		if err != nil || len(p.Items) != 0 || p.NextCursor != ids[len(ids)-eventbus.DLQReadMax] {
			t.Fatalf("%v first page: %d items, cursor %q, %v; want none and the cursor of the %dth entry", scope, len(p.Items), p.NextCursor, err, eventbus.DLQReadMax)
		}
		got := listAll(t, in, scope, eventbus.DLQFilter{Query: "needle"}, 0, nil)
		if !slices.Equal(got, []string{ids[5]}) {
			t.Errorf("%v: %v, want %s", scope, got, ids[5])
		}
	}
}

func TestPurgeByFilterLeavesEverythingElse(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	in := b.Inspector()
	var seeds []dlqSeed
	for i := range 300 {
		typ := []string{"order.created", "invoice.sent"}[i%2]
		seeds = append(seeds, dlqSeed{dl: deadLetterOf([]string{"A", "B"}[i/150], fmt.Sprintf("e%d", i), typ, "h", "x")})
	}
	ids := seedDLQ(t, c, prefix, seeds)
	A := eventbus.TenantScope("A")
	sel := eventbus.DLQSelection{Filter: &eventbus.DLQFilter{Types: []string{"order.*"}}}
	dry, err := in.Purge(ctx, A, testActor, sel, false)
	if err != nil || !dry.DryRun || dry.Matched != 75 || dry.Deleted != 0 {
		t.Fatalf("dry run %+v %v, want 75 matched, nothing deleted", dry, err)
	}
	if n := c.XLen(ctx, testKeys(prefix).DLQ()).Val(); n != 300 {
		t.Fatalf("the dry run changed the DLQ: %d entries", n)
	}
	res, err := in.Purge(ctx, A, testActor, sel, true)
	if err != nil || res.DryRun || res.Matched != 75 || res.Deleted != 75 {
		t.Fatalf("purge %+v %v, want 75 deleted", res, err)
	}
	checkDLQIndex(t, c, prefix)
	left := listAll(t, in, eventbus.AllTenants(), eventbus.DLQFilter{}, 100, nil)
	var want []string
	for i := len(ids) - 1; i >= 0; i-- {
		if !(i < 150 && i%2 == 0) {
			want = append(want, ids[i])
		}
	}
	if !slices.Equal(left, want) {
		t.Errorf("%d entries left, want %d (every other one)", len(left), len(want))
	}
	// Delete one event's dead letters; purge by ids.
	if n, err := in.DeleteDeadLetters(ctx, eventbus.TenantScope("B"), testActor, "e151"); err != nil || n != 1 {
		t.Errorf("delete e151: %d %v", n, err)
	}
	if _, err := in.DeleteDeadLetters(ctx, eventbus.TenantScope("B"), testActor, "e151"); !errors.Is(err, eventbus.ErrNotFound) {
		t.Errorf("delete e151 again: %v, want ErrNotFound", err)
	}
	res, err = in.Purge(ctx, eventbus.AllTenants(), testActor, eventbus.DLQSelection{IDs: []string{ids[299], ids[0], ids[1]}}, true)
	if err != nil || res.Matched != 2 || res.Deleted != 2 {
		t.Errorf("purge by ids %+v %v, want 2 (one was purged already)", res, err)
	}
	checkDLQIndex(t, c, prefix)
	counts := c.HGetAll(ctx, testKeys(prefix).DLQCounters()).Val()
	if counts[rdb.DLQCounterDeleted] != "78" {
		t.Errorf("deleted counter %v, want 78", counts)
	}
	// Every confirmed action is in the audit log; the dry run is not.
	page, err := in.Audit(ctx, eventbus.AllTenants(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Items {
		got = append(got, fmt.Sprintf("%s %s %d %s", e.Action, e.Scope, e.Count, e.Subject))
	}
	wantAudit := []string{"dlq.purge * 2 ops@example.com", "dlq.delete B 1 ops@example.com", "dlq.purge A 75 ops@example.com"}
	if !slices.Equal(got, wantAudit) {
		t.Errorf("audit %q, want %q", got, wantAudit)
	}
	var f eventbus.DLQSelection
	if err := json.Unmarshal(page.Items[2].Filter, &f); err != nil || f.Filter == nil || !slices.Equal(f.Filter.Types, []string{"order.*"}) {
		t.Errorf("audit filter %s %v", page.Items[2].Filter, err)
	}

	// A selection needs exactly one of its three parts.
	for _, sel := range []eventbus.DLQSelection{{}, {IDs: []string{ids[2]}, EventIDs: []string{"e2"}}, {IDs: []string{"x"}},
		{Filter: &eventbus.DLQFilter{TenantID: "B"}}} {
		if _, err := in.Purge(ctx, A, testActor, sel, true); !errors.Is(err, eventbus.ErrInvalidFilter) {
			t.Errorf("selection %+v: %v, want a FilterError", sel, err)
		}
	}
}

func TestRedriveLimitAndUnredrivable(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.MaxRedrives = 2 })
	in := b.Inspector()
	k := testKeys(prefix)
	once := deadLetterOf("A", "e1", "order.created", "h", "x")
	once.Redrives = 1
	spent := deadLetterOf("A", "e2", "order.created", "h", "x")
	spent.Redrives = 2
	ids := seedDLQ(t, c, prefix, []dlqSeed{{dl: once}, {dl: spent},
		{dl: eventbus.DeadLetter{Reason: "entry has no event field"}, payload: "{}"}})
	all := eventbus.AllTenants()
	if _, err := in.Redrive(ctx, all, testActor, "e2"); !errors.Is(err, eventbus.ErrRedriveLimit) {
		t.Errorf("redrive past the limit: %v, want ErrRedriveLimit", err)
	}
	res, err := in.RedriveMany(ctx, all, testActor, eventbus.DLQSelection{IDs: ids}, true)
	if err != nil || res.Matched != 3 || res.Redriven != 1 || res.OverLimit != 1 || res.NotRedrivable != 1 {
		t.Fatalf("redrive many %+v %v", res, err)
	}
	checkDLQIndex(t, c, prefix)
	if n := c.XLen(ctx, k.DLQ()).Val(); n != 2 {
		t.Errorf("dlq %d entries, want the 2 not redriven", n)
	}
	// The retry carries a fresh budget, the history and the redrive count.
	member := rdb.RetryMember("h", "1-1", "e1")
	var data struct {
		Attempt  int               `json:"attempt"`
		Redrives int               `json:"redrives"`
		Errors   []json.RawMessage `json:"errors"`
		Event    string            `json:"event"`
	}
	if err := json.Unmarshal([]byte(c.HGet(ctx, k.RetryData(eventbus.DefaultGroup), member).Val()), &data); err != nil {
		t.Fatal(err)
	}
	if data.Attempt != 1 || data.Redrives != 2 || len(data.Errors) != 1 || data.Event == "" {
		t.Errorf("retry data %+v", data)
	}
	if c.ZScore(ctx, k.RetrySchedule(eventbus.DefaultGroup), member).Val() == 0 {
		t.Error("the retry is not scheduled")
	}
	if st, err := b.Status(ctx, "A", "e1"); err != nil || st.State != eventbus.StateFailed {
		t.Errorf("status %+v %v, want FAILED (retrying)", st, err)
	}
	// Dry run changes nothing.
	before := c.XLen(ctx, k.DLQ()).Val()
	if res, err := in.RedriveMany(ctx, all, testActor, eventbus.DLQSelection{Filter: &eventbus.DLQFilter{}}, false); err != nil || res.Matched != 2 || !res.DryRun || res.Redriven != 0 {
		t.Errorf("dry run %+v %v", res, err)
	}
	if c.XLen(ctx, k.DLQ()).Val() != before {
		t.Error("the dry run changed the DLQ")
	}
	if _, err := in.Redrive(ctx, all, testActor, "nope"); !errors.Is(err, eventbus.ErrNotFound) {
		t.Errorf("redrive of an unknown event: %v", err)
	}
	if n := c.HGet(ctx, k.DLQCounters(), rdb.DLQCounterRedriven).Val(); n != "1" {
		t.Errorf("redriven counter %q, want 1", n)
	}
}

// Entries removed by the DLQ's retention leave no index member behind and
// are counted.
func TestDLQIndexRightAfterRetentionTrims(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Retention.DLQ = time.Hour })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour).UnixMilli()
	var seeds []dlqSeed
	for i := range 1234 {
		seeds = append(seeds, dlqSeed{id: fmt.Sprintf("%d-%d", old, i+1), dl: deadLetterOf(fmt.Sprintf("T%d", i%7), fmt.Sprintf("old%d", i), "order.created", "h", "x")})
	}
	for i := range 10 {
		seeds = append(seeds, dlqSeed{dl: deadLetterOf("T1", fmt.Sprintf("new%d", i), "order.created", "h", "x")})
	}
	seedDLQ(t, c, prefix, seeds)
	res, err := b.Trim(ctx)
	if err != nil || res.DLQ != 1234 {
		t.Fatalf("trim %+v %v, want 1234 DLQ entries removed", res, err)
	}
	checkDLQIndex(t, c, prefix)
	if got := listAll(t, b.Inspector(), eventbus.TenantScope("T1"), eventbus.DLQFilter{}, 100, nil); len(got) != 10 {
		t.Errorf("T1 lists %d entries, want its 10 new ones", len(got))
	}
	if h := b.Health(ctx); h.DLQBudget.TrimmedByRetention != 1234 || h.DLQBudget.Length != 10 {
		t.Errorf("health dlq budget %+v", h.DLQBudget)
	}
}
