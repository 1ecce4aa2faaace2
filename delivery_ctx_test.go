package eventbus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// ctxKey is a middleware's own context key.
type ctxKey struct{}

// Middleware (and the handler) see the delivery through the context:
// handler name, attempt 1 then 2 on a retry, the event's stream and stream
// id (kept by the retry), group and consumer.
func TestMiddlewareSeesTheDelivery(t *testing.T) {
	if _, ok := eventbus.DeliveryFromContext(context.Background()); ok {
		t.Fatal("a plain context carries no delivery")
	}
	c, prefix := redistest.Shared(t)
	b := fastBus(t, c, prefix, nil)
	cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) { cfg.Name = "mw-consumer" })
	var mu sync.Mutex
	var seen, inHandler []eventbus.Delivery
	cons.Use(func(next eventbus.Handler) eventbus.Handler {
		return eventbus.HandlerFunc(func(ctx context.Context, ev eventbus.Event) error {
			d, ok := eventbus.DeliveryFromContext(ctx)
			if !ok {
				t.Error("middleware: no delivery in the context")
			}
			mu.Lock()
			seen = append(seen, d)
			mu.Unlock()
			// A middleware that derives its own context keeps the delivery.
			return next.Handle(context.WithValue(ctx, ctxKey{}, "x"), ev)
		})
	})
	var runs int
	mustHandle(t, cons, "flaky", "approval.*", func(ctx context.Context, ev eventbus.Event) error {
		d, _ := eventbus.DeliveryFromContext(ctx)
		mu.Lock()
		defer mu.Unlock()
		inHandler = append(inHandler, d)
		runs++
		if runs == 1 {
			return errors.New("first run fails")
		}
		return nil
	})
	if err := b.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	runConsumer(t, cons)
	p, err := b.Publish(context.Background(), approved("t1"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "status COMPLETED", func() bool {
		st, err := b.Status(context.Background(), "", p.ID)
		return err == nil && st.State == eventbus.StateCompleted
	})
	mu.Lock()
	defer mu.Unlock()
	main, _, _ := b.Streams()
	want := eventbus.Delivery{Handler: "flaky", Attempt: 1, Stream: main, StreamID: p.StreamID, Group: eventbus.DefaultGroup, Consumer: "mw-consumer"}
	if len(seen) != 2 || len(inHandler) != 2 {
		t.Fatalf("middleware saw %d runs, handler %d; want 2 each", len(seen), len(inHandler))
	}
	if seen[0] != want {
		t.Errorf("first run: delivery %+v, want %+v", seen[0], want)
	}
	want.Attempt = 2
	if seen[1] != want {
		t.Errorf("retry: delivery %+v, want %+v", seen[1], want)
	}
	for i := range seen {
		if inHandler[i] != seen[i] {
			t.Errorf("run %d: handler saw %+v, middleware %+v", i+1, inHandler[i], seen[i])
		}
	}
}
