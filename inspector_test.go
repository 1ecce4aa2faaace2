package eventbus_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// inspPublish publishes ev and fails the test unless it was written.
func inspPublish(t *testing.T, b *eventbus.Bus, ev eventbus.Event) eventbus.Published {
	t.Helper()
	p, err := b.Publish(context.Background(), ev)
	if err != nil || p.StreamID == "" {
		t.Fatalf("publish %+v: %+v %v", ev, p, err)
	}
	return p
}

// TestScopeValidation: an empty or blank tenant is an invalid scope, never
// "all tenants"; the zero Scope is invalid too.
func TestScopeValidation(t *testing.T) {
	for _, s := range []eventbus.Scope{{}, eventbus.TenantScope(""), eventbus.TenantScope("  ")} {
		if err := s.Validate(); !errors.Is(err, eventbus.ErrInvalidScope) {
			t.Errorf("%v.Validate() = %v, want ErrInvalidScope", s, err)
		}
		if s.All() || s.Includes("") || s.Includes("t1") {
			t.Errorf("invalid scope %v covers tenants", s)
		}
	}
	one, all := eventbus.TenantScope("t1"), eventbus.AllTenants()
	if one.Validate() != nil || all.Validate() != nil {
		t.Fatalf("valid scopes refused: %v, %v", one.Validate(), all.Validate())
	}
	if !one.Includes("t1") || one.Includes("t2") || one.All() || one.TenantID() != "t1" {
		t.Errorf("TenantScope(t1) = %v: includes t1 %v, t2 %v, all %v", one, one.Includes("t1"), one.Includes("t2"), one.All())
	}
	if !all.Includes("t1") || !all.Includes("t2") || !all.All() || all.TenantID() != "" {
		t.Errorf("AllTenants() = %v", all)
	}
}

// TestInspectorStatusScopes: Status with a tenant scope finds that
// tenant's events only (bus-made and caller-supplied ids); with
// AllTenants it finds bus-made ids of any tenant and not caller-supplied
// ones; an invalid scope reads nothing; Bus.Status answers the same.
func TestInspectorStatusScopes(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	in := b.Inspector()
	evA, err := eventbus.NewEvent("orders.order.created", "tenant-a", "u", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	made := inspPublish(t, b, evA) // a bus-made ULID id
	given := map[string]eventbus.Published{}
	for _, tenant := range []string{"tenant-a", "tenant-b"} { // one caller id, two tenants
		given[tenant] = inspPublish(t, b, eventbus.Event{ID: "order-1", Type: "orders.order.created", TenantID: tenant, UserID: "u"})
	}

	for _, tt := range []struct {
		scope      eventbus.Scope
		id         string
		wantStream string // "" for ErrNotFound
		wantTenant string
	}{
		{eventbus.TenantScope("tenant-a"), made.ID, made.StreamID, "tenant-a"},
		{eventbus.AllTenants(), made.ID, made.StreamID, "tenant-a"},
		{eventbus.TenantScope("tenant-b"), made.ID, "", ""}, // another tenant's event
		{eventbus.TenantScope("tenant-a"), "order-1", given["tenant-a"].StreamID, "tenant-a"},
		{eventbus.TenantScope("tenant-b"), "order-1", given["tenant-b"].StreamID, "tenant-b"},
		{eventbus.TenantScope("tenant-c"), "order-1", "", ""},
		{eventbus.AllTenants(), "order-1", "", ""}, // caller ids need their tenant
	} {
		st, err := in.Status(ctx, tt.scope, tt.id)
		if tt.wantStream == "" {
			if !errors.Is(err, eventbus.ErrNotFound) {
				t.Errorf("Status(%v, %s) = %+v, %v; want ErrNotFound", tt.scope, tt.id, st, err)
			}
		} else if err != nil || st.StreamID != tt.wantStream || st.TenantID != tt.wantTenant || st.EventID != tt.id ||
			st.State != eventbus.StatePending || st.Type != "orders.order.created" {
			t.Errorf("Status(%v, %s) = %+v, %v; want pending at %s of %s", tt.scope, tt.id, st, err, tt.wantStream, tt.wantTenant)
		}
		// Bus.Status is the same read: "" is every tenant.
		tenant := tt.scope.TenantID()
		bst, berr := b.Status(ctx, tenant, tt.id)
		sameErr := berr == nil && err == nil || errors.Is(berr, eventbus.ErrNotFound) && errors.Is(err, eventbus.ErrNotFound)
		if !sameErr || bst.StreamID != st.StreamID || bst.State != st.State || bst.TenantID != st.TenantID {
			t.Errorf("Bus.Status(%q, %s) = %+v, %v; Inspector: %+v, %v", tenant, tt.id, bst, berr, st, err)
		}
	}
	for _, s := range []eventbus.Scope{{}, eventbus.TenantScope(""), eventbus.TenantScope(" ")} {
		if st, err := in.Status(ctx, s, made.ID); !errors.Is(err, eventbus.ErrInvalidScope) || st.StreamID != "" {
			t.Errorf("Status with invalid scope %v = %+v, %v; want ErrInvalidScope", s, st, err)
		}
	}
	// Bus.Status keeps its answer for a blank tenant: not found.
	if st, err := b.Status(ctx, " ", made.ID); !errors.Is(err, eventbus.ErrNotFound) || st.StreamID != "" {
		t.Errorf("Bus.Status with a blank tenant = %+v, %v; want ErrNotFound", st, err)
	}
}

// TestInspectorConsumers: a running consumer is listed with its handler
// names, a recent heartbeat and its pending entries; a dead-lettered
// event's status is read through the Inspector in its tenant's scope and
// not in another's; a consumer that stopped is no longer listed.
func TestInspectorConsumers(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	b := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Block = 100 * time.Millisecond })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	in := b.Inspector()
	if cs, err := in.Consumers(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("Consumers before any ran = %+v, %v; want none", cs, err)
	}

	cons, err := b.NewConsumer(eventbus.ConsumerConfig{Name: "insp-c1"})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	if err := cons.Handle("holder", "orders.order.held", eventbus.HandlerFunc(func(ctx context.Context, ev eventbus.Event) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	if err := cons.Handle("rejecter", "orders.order.rejected", eventbus.HandlerFunc(func(ctx context.Context, ev eventbus.Event) error {
		return eventbus.Permanent(errors.New("bad order"))
	})); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cons.Run(runCtx) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			releaseAll()
			stop()
			<-done
		}
	})

	var listed []eventbus.ConsumerInfo
	waitFor(t, 10*time.Second, "the consumer to be listed", func() bool {
		listed, err = in.Consumers(ctx)
		return err == nil && len(listed) == 1
	})
	got := listed[0]
	handlers := slices.Sorted(slices.Values(got.Handlers))
	if got.Name != "insp-c1" || !slices.Equal(handlers, []string{"holder", "rejecter"}) || got.Pending != 0 {
		t.Errorf("Consumers = %+v, want insp-c1 with holder and rejecter, nothing pending", listed)
	}
	if age := time.Since(got.LastSeen); age < -time.Minute || age > time.Minute {
		t.Errorf("LastSeen %v is %v from now", got.LastSeen, age)
	}

	// An entry in a handler is pending for its consumer.
	inspPublish(t, b, eventbus.Event{Type: "orders.order.held", TenantID: "tenant-a", UserID: "u"})
	waitFor(t, 10*time.Second, "one pending entry", func() bool {
		listed, err = in.Consumers(ctx)
		return err == nil && len(listed) == 1 && listed[0].Pending == 1
	})
	releaseAll()
	waitFor(t, 10*time.Second, "the entry to be acknowledged", func() bool {
		listed, err = in.Consumers(ctx)
		return err == nil && len(listed) == 1 && listed[0].Pending == 0
	})

	// A dead letter's status, in its tenant's scope only.
	rej := inspPublish(t, b, eventbus.Event{Type: "orders.order.rejected", TenantID: "tenant-a", UserID: "u"})
	var st eventbus.EventStatus
	waitFor(t, 10*time.Second, "the event to be dead-lettered", func() bool {
		st, err = in.Status(ctx, eventbus.TenantScope("tenant-a"), rej.ID)
		return err == nil && st.State == eventbus.StateDLQ
	})
	if len(st.Handlers) != 1 || st.Handlers[0].Name != "rejecter" || st.LastError == "" || st.TenantID != "tenant-a" {
		t.Errorf("status of the dead letter = %+v", st)
	}
	if all, err := in.Status(ctx, eventbus.AllTenants(), rej.ID); err != nil || all.State != eventbus.StateDLQ || all.TenantID != "tenant-a" {
		t.Errorf("status of the dead letter in all tenants = %+v, %v", all, err)
	}
	if other, err := in.Status(ctx, eventbus.TenantScope("tenant-b"), rej.ID); !errors.Is(err, eventbus.ErrNotFound) {
		t.Errorf("status of tenant-a's dead letter for tenant-b = %+v, %v; want ErrNotFound", other, err)
	}

	// A stopped consumer leaves the list.
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	stopped = true
	if cs, err := in.Consumers(ctx); err != nil || len(cs) != 0 {
		t.Errorf("Consumers after stop = %+v, %v; want none", cs, err)
	}
}

// BenchmarkInspectorStatus: the status of a bus-made id without a status
// hash (located by the time in its ULID) among 1,000 events.
func BenchmarkInspectorStatus(b *testing.B) {
	ctx := context.Background()
	c, prefix := redistest.Shared(b)
	bus := newBus(b, c, prefix, nil)
	if err := bus.SetUp(ctx); err != nil {
		b.Fatal(err)
	}
	events := make([]eventbus.Event, 1000)
	for i := range events {
		events[i] = eventbus.Event{Type: "orders.order.created", TenantID: "tenant-a", UserID: "u"}
	}
	res, err := bus.PublishBatch(ctx, events)
	if err != nil {
		b.Fatal(err)
	}
	in, id := bus.Inspector(), res[500].ID
	for _, scope := range []eventbus.Scope{eventbus.TenantScope("tenant-a"), eventbus.AllTenants()} {
		b.Run(scope.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := in.Status(ctx, scope, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInspectorConsumers: the live consumers of a group with one
// running consumer holding one pending entry.
func BenchmarkInspectorConsumers(b *testing.B) {
	ctx := context.Background()
	c, prefix := redistest.Shared(b)
	bus := newBus(b, c, prefix, func(cfg *eventbus.Config) { cfg.Block = 100 * time.Millisecond })
	if err := bus.SetUp(ctx); err != nil {
		b.Fatal(err)
	}
	cons, err := bus.NewConsumer(eventbus.ConsumerConfig{Name: "bench-c1"})
	if err != nil {
		b.Fatal(err)
	}
	release := make(chan struct{})
	if err := cons.Handle("holder", "orders.*", eventbus.HandlerFunc(func(ctx context.Context, ev eventbus.Event) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})); err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- cons.Run(runCtx) }()
	defer func() { close(release); stop(); <-done }()
	if _, err := bus.Publish(ctx, eventbus.Event{Type: "orders.order.held", TenantID: "t", UserID: "u"}); err != nil {
		b.Fatal(err)
	}
	in := bus.Inspector()
	waitFor(b, 10*time.Second, "a pending entry", func() bool {
		cs, err := in.Consumers(ctx)
		return err == nil && len(cs) == 1 && cs[0].Pending == 1
	})
	for b.Loop() {
		if cs, err := in.Consumers(ctx); err != nil || len(cs) != 1 {
			b.Fatal(cs, err)
		}
	}
}
