package eventbus_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// xrangeCounter counts the stream entries XRANGE replies carry.
type xrangeCounter struct{ entries atomic.Int64 }

func (h *xrangeCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *xrangeCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *xrangeCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if c, ok := cmd.(*redis.XMessageSliceCmd); ok && cmd.Name() == "xrange" {
			h.entries.Add(int64(len(c.Val())))
		}
		return err
	}
}

// browseBus sets up a bus on the shared Redis with its own prefix.
func browseBus(t *testing.T) (*eventbus.Bus, *redis.Client, string) {
	t.Helper()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	if err := b.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b, c, prefix
}

// publishMany publishes n events of type typ and tenant in batches.
func publishMany(t *testing.T, b *eventbus.Bus, n int, typ, tenant string) []eventbus.Published {
	t.Helper()
	var out []eventbus.Published
	for n > 0 {
		k := min(n, 1000)
		evs := make([]eventbus.Event, k)
		for i := range evs {
			ev, err := eventbus.NewEvent(typ, tenant, "u", map[string]int{"i": i})
			if err != nil {
				t.Fatal(err)
			}
			evs[i] = ev
		}
		res, err := b.PublishBatch(context.Background(), evs)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res...)
		n -= k
	}
	return out
}

// browseAll pages through every event of f in scope, failing on an error
// or on more than maxPages pages.
func browseAll(t *testing.T, in *eventbus.Inspector, scope eventbus.Scope, f eventbus.EventFilter, maxPages int) []eventbus.BrowsedEvent {
	t.Helper()
	var all []eventbus.BrowsedEvent
	for range maxPages {
		p, err := in.Events(context.Background(), scope, f)
		if err != nil {
			t.Fatalf("Events(%+v): %v", f, err)
		}
		all = append(all, p.Items...)
		if p.NextCursor == "" {
			return all
		}
		f.Cursor = p.NextCursor
	}
	t.Fatalf("more than %d pages", maxPages)
	return nil
}

// TestEventsPagingWhileWriting: paging with a small limit returns every
// event that existed when paging began exactly once, oldest first, while
// other events keep arriving (three after every page, so that the reader,
// seven a page, reaches the end whatever the machine's speed); nothing is
// returned twice.
func TestEventsPagingWhileWriting(t *testing.T) {
	b, _, _ := browseBus(t)
	before := publishMany(t, b, 230, "orders.order.created", "t1")
	in := b.Inspector()
	f := eventbus.EventFilter{Limit: 7}
	var items []eventbus.BrowsedEvent
	written := 0
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatalf("more than 1000 pages")
		}
		p, err := in.Events(context.Background(), eventbus.AllTenants(), f)
		if err != nil {
			t.Fatalf("Events(%+v): %v", f, err)
		}
		items = append(items, p.Items...)
		if p.NextCursor == "" {
			break
		}
		f.Cursor = p.NextCursor
		publishMany(t, b, 3, "orders.order.created", "t1")
		written += 3
	}
	if written == 0 {
		t.Fatal("no event was written while paging")
	}
	seen := map[string]bool{}
	for i, it := range items {
		if seen[it.StreamID] {
			t.Fatalf("entry %s returned twice", it.StreamID)
		}
		seen[it.StreamID] = true
		if i > 0 && rdb.CompareIDs(items[i-1].StreamID, it.StreamID) >= 0 {
			t.Fatalf("not oldest first: %s then %s", items[i-1].StreamID, it.StreamID)
		}
		if it.Event == nil || it.DecodeError != "" {
			t.Fatalf("entry %s not decoded: %+v", it.StreamID, it)
		}
	}
	for _, p := range before {
		if !seen[p.StreamID] {
			t.Fatalf("event %s (%s) missing", p.ID, p.StreamID)
		}
	}
	if items[0].StreamID != before[0].StreamID || items[0].Event.ID != before[0].ID {
		t.Errorf("first item %+v, want %+v", items[0], before[0])
	}
	t.Logf("%d items paged, %d written before paging", len(items), len(before))
}

// TestEventsFilters: type patterns, time range and tenant scope.
func TestEventsFilters(t *testing.T) {
	b, _, _ := browseBus(t)
	in := b.Inspector()
	ctx := context.Background()
	var ids []string
	pub := func(typ, tenant string) eventbus.Published {
		ev, _ := eventbus.NewEvent(typ, tenant, "u", nil)
		p := inspPublish(t, b, ev)
		ids = append(ids, p.StreamID)
		return p
	}
	pub("orders.order.created", "t1")
	pub("orders.order.paid", "t2")
	pub("billing.invoice.sent", "t1")
	// The next ones are written at a later millisecond.
	first := ids[len(ids)-1]
	waitFor(t, 5*time.Second, "a later millisecond", func() bool {
		tm, _ := rdb.IDTime(first)
		return time.Since(tm) > 5*time.Millisecond
	})
	late := pub("orders.order.created", "t2")
	lateTime, _ := rdb.IDTime(late.StreamID)

	types := func(items []eventbus.BrowsedEvent) []string {
		var s []string
		for _, it := range items {
			s = append(s, it.Event.Type+"/"+it.Event.TenantID)
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		scope eventbus.Scope
		f     eventbus.EventFilter
		want  []string
	}{
		{"all", eventbus.AllTenants(), eventbus.EventFilter{}, []string{"orders.order.created/t1", "orders.order.paid/t2", "billing.invoice.sent/t1", "orders.order.created/t2"}},
		{"star", eventbus.AllTenants(), eventbus.EventFilter{Types: []string{"*"}}, []string{"orders.order.created/t1", "orders.order.paid/t2", "billing.invoice.sent/t1", "orders.order.created/t2"}},
		{"prefix", eventbus.AllTenants(), eventbus.EventFilter{Types: []string{"orders.*"}}, []string{"orders.order.created/t1", "orders.order.paid/t2", "orders.order.created/t2"}},
		{"exact", eventbus.AllTenants(), eventbus.EventFilter{Types: []string{"orders.order.paid"}}, []string{"orders.order.paid/t2"}},
		{"two", eventbus.AllTenants(), eventbus.EventFilter{Types: []string{"orders.order.paid", "billing.*"}}, []string{"orders.order.paid/t2", "billing.invoice.sent/t1"}},
		{"tenant t1", eventbus.TenantScope("t1"), eventbus.EventFilter{}, []string{"orders.order.created/t1", "billing.invoice.sent/t1"}},
		{"tenant t2 orders", eventbus.TenantScope("t2"), eventbus.EventFilter{Types: []string{"orders.*"}}, []string{"orders.order.paid/t2", "orders.order.created/t2"}},
		{"tenant none", eventbus.TenantScope("t3"), eventbus.EventFilter{}, nil},
		{"from late", eventbus.AllTenants(), eventbus.EventFilter{From: lateTime}, []string{"orders.order.created/t2"}},
		{"to before late", eventbus.AllTenants(), eventbus.EventFilter{To: lateTime.Add(-time.Millisecond)}, []string{"orders.order.created/t1", "orders.order.paid/t2", "billing.invoice.sent/t1"}},
		{"from to late", eventbus.AllTenants(), eventbus.EventFilter{From: lateTime, To: lateTime}, []string{"orders.order.created/t2"}},
		{"future", eventbus.AllTenants(), eventbus.EventFilter{From: time.Now().Add(time.Hour)}, nil},
	} {
		got := types(browseAll(t, in, tc.scope, tc.f, 10))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}

	for _, tc := range []struct {
		f     eventbus.EventFilter
		field string
	}{
		{eventbus.EventFilter{Types: []string{"orders*"}}, "type"},
		{eventbus.EventFilter{Types: []string{"single"}}, "type"},
		{eventbus.EventFilter{Cursor: "abc"}, "cursor"},
		{eventbus.EventFilter{Cursor: "12-"}, "cursor"},
		{eventbus.EventFilter{Limit: -1}, "limit"},
		{eventbus.EventFilter{Limit: eventbus.MaxBrowseLimit + 1}, "limit"},
		{eventbus.EventFilter{From: lateTime, To: lateTime.Add(-time.Second)}, "to"},
	} {
		_, err := in.Events(ctx, eventbus.AllTenants(), tc.f)
		var fe *eventbus.FilterError
		if !errors.Is(err, eventbus.ErrInvalidFilter) || !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("Events(%+v) = %v, want ErrInvalidFilter on %s", tc.f, err, tc.field)
		}
	}
	for _, cur := range []string{rdb.MaxID, "18446744073709551615-0", ids[len(ids)-1]} {
		if p, err := in.Events(ctx, eventbus.AllTenants(), eventbus.EventFilter{Cursor: cur}); err != nil || len(p.Items) != 0 || p.NextCursor != "" {
			t.Errorf("cursor %s at the end: %+v %v", cur, p, err)
		}
	}
	if _, err := in.Events(ctx, eventbus.Scope{}, eventbus.EventFilter{}); !errors.Is(err, eventbus.ErrInvalidScope) {
		t.Errorf("zero scope: %v, want ErrInvalidScope", err)
	}
	// The cursor of a page continues after it, and limit bounds the page.
	p, err := in.Events(ctx, eventbus.AllTenants(), eventbus.EventFilter{Limit: 2})
	if err != nil || len(p.Items) != 2 || p.NextCursor != ids[1] {
		t.Fatalf("page of 2: %+v %v", p, err)
	}
	p, err = in.Events(ctx, eventbus.AllTenants(), eventbus.EventFilter{Limit: 2, Cursor: p.NextCursor})
	if err != nil || len(p.Items) != 2 || p.Items[0].StreamID != ids[2] {
		t.Fatalf("second page: %+v %v", p, err)
	}
}

// TestEventsReadBound: a page over 5,000 entries that do not match reads
// at most BrowseReadMax entries, returns no items and a cursor where it
// stopped; following the cursors finds the matching event at the end.
func TestEventsReadBound(t *testing.T) {
	b, c, prefix := browseBus(t)
	publishMany(t, b, 5000, "noise.thing.happened", "t1")
	want := publishMany(t, b, 1, "orders.order.created", "t1")[0]
	hook := &xrangeCounter{}
	c.AddHook(hook)
	in := b.Inspector()
	f := eventbus.EventFilter{Types: []string{"orders.*"}}
	start := time.Now()
	p, err := in.Events(context.Background(), eventbus.AllTenants(), f)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 0 || p.NextCursor == "" {
		t.Fatalf("first page: %d items, cursor %q; want none and a cursor", len(p.Items), p.NextCursor)
	}
	if n := hook.entries.Load(); n > eventbus.BrowseReadMax {
		t.Errorf("one page read %d entries, over the bound %d", n, eventbus.BrowseReadMax)
	}
	t.Logf("a page over %d non-matching entries: %v, %d entries read", eventbus.BrowseReadMax, took, hook.entries.Load())
	// The cursor is the BrowseReadMax-th entry.
	upTo, err := c.XRange(context.Background(), testKeys(prefix).Main(), "-", p.NextCursor).Result()
	if err != nil || len(upTo) != eventbus.BrowseReadMax {
		t.Errorf("cursor %s is after %d entries (%v), want %d", p.NextCursor, len(upTo), err, eventbus.BrowseReadMax)
	}
	hook.entries.Store(0)
	var pages int
	var got []eventbus.BrowsedEvent
	for {
		pages++
		got = append(got, p.Items...)
		if p.NextCursor == "" {
			break
		}
		f.Cursor = p.NextCursor
		if p, err = in.Events(context.Background(), eventbus.AllTenants(), f); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 1 || got[0].StreamID != want.StreamID {
		t.Fatalf("got %+v, want only %s", got, want.StreamID)
	}
	if pages != 6 {
		t.Errorf("%d pages, want 6 (5,001 entries at %d a page)", pages, eventbus.BrowseReadMax)
	}
}

// TestEventsBadEntry: an entry that is not a valid event is returned with
// its raw text and decode error, to a scope that covers it.
func TestEventsBadEntry(t *testing.T) {
	b, c, prefix := browseBus(t)
	ctx := context.Background()
	main := testKeys(prefix).Main()
	good, _ := eventbus.NewEvent("orders.order.created", "t1", "u", nil)
	inspPublish(t, b, good)
	notJSON, err := c.XAdd(ctx, &redis.XAddArgs{Stream: main, Values: []any{rdb.FieldEvent, "not json"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	invalid, err := c.XAdd(ctx, &redis.XAddArgs{Stream: main, Values: []any{rdb.FieldEvent, `{"id":"x1","type":"orders.order.created","tenantId":"t1","source":"s","userId":"","version":"1.0","data":{}}`}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	noField, err := c.XAdd(ctx, &redis.XAddArgs{Stream: main, Values: []any{"other", "v"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	in := b.Inspector()
	all := browseAll(t, in, eventbus.AllTenants(), eventbus.EventFilter{}, 5)
	if len(all) != 4 {
		t.Fatalf("AllTenants: %d items, want 4: %+v", len(all), all)
	}
	for i, want := range []struct{ id, raw, err string }{
		{notJSON, "not json", "not a JSON object"},
		{invalid, `"userId":""`, "userId"},
		{noField, `"other":"v"`, "no event field"},
	} {
		it := all[i+1]
		if it.StreamID != want.id || !strings.Contains(it.Raw, want.raw) || !strings.Contains(it.DecodeError, want.err) {
			t.Errorf("bad entry %d: %+v, want id %s raw ~%q error ~%q", i, it, want.id, want.raw, want.err)
		}
	}
	// A tenant sees its own bad entry (the tenant can be read), not the
	// unreadable ones; a type filter keeps the bad entry whose type matches.
	t1 := browseAll(t, in, eventbus.TenantScope("t1"), eventbus.EventFilter{Types: []string{"orders.*"}}, 5)
	if len(t1) != 2 || t1[1].StreamID != invalid || t1[1].DecodeError == "" {
		t.Errorf("t1: %+v", t1)
	}
	if t2 := browseAll(t, in, eventbus.TenantScope("t2"), eventbus.EventFilter{}, 5); len(t2) != 0 {
		t.Errorf("t2 sees %+v", t2)
	}
}
