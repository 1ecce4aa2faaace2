package eventbus_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

var errStopTail = errors.New("stop tail")

// tailUntil runs Tail and collects what it delivers until an event of
// type stopType arrives (not collected), failing after a generous bound.
func tailUntil(t *testing.T, insp *eventbus.Inspector, scope eventbus.Scope, f eventbus.TailFilter, stopType string) (chan []eventbus.BrowsedEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	out := make(chan []eventbus.BrowsedEvent, 1)
	go func() {
		var got []eventbus.BrowsedEvent
		err := insp.Tail(ctx, scope, f, func(it eventbus.BrowsedEvent) error {
			if it.Event != nil && it.Event.Type == stopType {
				return errStopTail
			}
			got = append(got, it)
			return nil
		})
		if !errors.Is(err, errStopTail) {
			t.Errorf("Tail(%v, %v) = %v, want the stop", scope, f.Types, err)
		}
		out <- got
	}()
	return out, cancel
}

// TestTailDeliversNewMatchingEntries: Tail from TailStart delivers the
// entries written afterwards, in stream order, filtered by scope and type
// patterns exactly as Events filters them (invalid entries to an
// unfiltered AllTenants tail only), and never what was written before.
func TestTailDeliversNewMatchingEntries(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	bus := newBus(t, c, prefix, nil)
	if err := bus.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	insp := bus.Inspector()
	if _, err := bus.Publish(ctx, eventbus.Event{Type: "orders.order.created", TenantID: "t1", UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	start, err := insp.TailStart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		scope eventbus.Scope
		types []string
	}{
		{"all", eventbus.AllTenants(), nil},
		{"t1", eventbus.TenantScope("t1"), nil},
		{"t2 orders", eventbus.TenantScope("t2"), []string{"orders.*"}},
		{"all billing or exact", eventbus.AllTenants(), []string{"billing.*", "orders.order.paid"}},
	}
	const stop = "zz.tail.stop"
	outs := make([]chan []eventbus.BrowsedEvent, len(cases))
	for i, tc := range cases {
		types := tc.types
		if len(types) > 0 {
			types = slices.Concat(types, []string{stop})
		}
		var cancel func()
		outs[i], cancel = tailUntil(t, insp, tc.scope, eventbus.TailFilter{Types: types, After: start}, stop)
		defer cancel()
	}
	for _, e := range []struct{ typ, tenant string }{
		{"orders.order.created", "t1"}, {"orders.order.paid", "t2"}, {"billing.invoice.sent", "t1"}, {"orders.order.created", "t2"},
	} {
		if _, err := bus.Publish(ctx, eventbus.Event{Type: e.typ, TenantID: e.tenant, UserID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: testKeys(prefix).Main(), Values: []any{rdb.FieldEvent, "not json"}}).Err(); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"t1", "t2"} {
		if _, err := bus.Publish(ctx, eventbus.Event{Type: stop, TenantID: tenant, UserID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	// What Events returns for the same range and filter is the truth.
	for i, tc := range cases {
		got := <-outs[i]
		page, err := insp.Events(ctx, tc.scope, eventbus.EventFilter{Types: tc.types, Cursor: start, Limit: eventbus.MaxBrowseLimit})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, it := range page.Items {
			if it.Event == nil || it.Event.Type != stop {
				want = append(want, it.StreamID)
			}
		}
		var ids []string
		for _, it := range got {
			ids = append(ids, it.StreamID)
		}
		if !slices.Equal(ids, want) || len(want) == 0 {
			t.Errorf("%s: tail delivered %v, Events lists %v", tc.name, ids, want)
		}
		// Match over the unfiltered tail gives the same selection.
		if tc.name == "all" {
			for _, oc := range cases {
				f := eventbus.TailFilter{Types: oc.types}
				ev, _ := insp.Events(ctx, oc.scope, eventbus.EventFilter{Types: oc.types, Cursor: start, Limit: eventbus.MaxBrowseLimit})
				var viaEvents, viaMatch []string
				for _, it := range ev.Items {
					if it.Event == nil || it.Event.Type != stop {
						viaEvents = append(viaEvents, it.StreamID)
					}
				}
				for _, it := range got {
					if f.Match(oc.scope, it) {
						viaMatch = append(viaMatch, it.StreamID)
					}
				}
				if !slices.Equal(viaEvents, viaMatch) {
					t.Errorf("Match for %s selects %v, Events %v", oc.name, viaMatch, viaEvents)
				}
			}
			if last := got[len(got)-1]; last.Event != nil || last.DecodeError == "" {
				t.Errorf("the invalid entry was delivered as %+v", last)
			}
		}
	}
}

// TestTailStartsAtTheEndAndStopsOnCancel: without After, Tail never
// delivers what was written before it started; a cancelled Tail returns
// nil; bad filters and scopes are refused.
func TestTailStartsAtTheEndAndStopsOnCancel(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	bus := newBus(t, c, prefix, nil)
	if err := bus.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	insp := bus.Inspector()
	old, err := bus.Publish(ctx, eventbus.Event{Type: "orders.order.created", TenantID: "t1", UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := make(chan string, 1000)
	done := make(chan error, 1)
	go func() {
		done <- insp.Tail(tctx, eventbus.AllTenants(), eventbus.TailFilter{}, func(it eventbus.BrowsedEvent) error {
			seen <- it.Event.ID
			return nil
		})
	}()
	// Publish until the tail (which starts at some point) sees one.
	var first string
	waitFor(t, 20*time.Second, "the tail to deliver a new event", func() bool {
		select {
		case first = <-seen:
			return true
		default:
		}
		if _, err := bus.Publish(ctx, eventbus.Event{Type: "orders.order.paid", TenantID: "t1", UserID: "u"}); err != nil {
			t.Fatal(err)
		}
		return false
	})
	if first == old.ID {
		t.Errorf("the tail delivered %s, written before it started", old.ID)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("cancelled Tail = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Tail did not return after its context was cancelled")
	}

	noop := func(eventbus.BrowsedEvent) error { return nil }
	if err := insp.Tail(ctx, eventbus.AllTenants(), eventbus.TailFilter{Types: []string{"a*b"}}, noop); !errors.Is(err, eventbus.ErrInvalidFilter) {
		t.Errorf("bad pattern: %v", err)
	}
	if err := insp.Tail(ctx, eventbus.AllTenants(), eventbus.TailFilter{After: "x"}, noop); !errors.Is(err, eventbus.ErrInvalidFilter) {
		t.Errorf("bad after: %v", err)
	}
	if err := insp.Tail(ctx, eventbus.TenantScope(" "), eventbus.TailFilter{}, noop); !errors.Is(err, eventbus.ErrInvalidScope) {
		t.Errorf("blank tenant: %v", err)
	}
}
