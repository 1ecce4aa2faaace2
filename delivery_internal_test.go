package eventbus

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reading the delivery from a handler's context costs no allocation.
func TestDeliveryFromContextDoesNotAllocate(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	b, err := New(Config{Redis: client, Prefix: "p", Group: "g", Consumer: "c"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := b.NewConsumer(ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tk := &task{stream: "p:events:retries:g", m: redis.XMessage{ID: "9-0"},
		retry: &retryData{Attempt: 2, Stream: "p:events:main", OriginalStreamID: "1-0"}}
	r := &runCtx{parent: context.Background(), deadline: time.Now().Add(time.Minute), c: c, t: tk, s: &subscription{name: "h"}}
	var d Delivery
	allocs := testing.AllocsPerRun(100, func() { d, _ = DeliveryFromContext(r) })
	if allocs != 0 {
		t.Errorf("DeliveryFromContext: %v allocations, want 0", allocs)
	}
	want := Delivery{Handler: "h", Attempt: 2, Stream: "p:events:main", StreamID: "1-0", Group: "g", Consumer: "c"}
	if d != want {
		t.Errorf("got %+v, want %+v", d, want)
	}
	if _, ok := DeliveryFromContext(context.Background()); ok {
		t.Error("a plain context has a delivery")
	}
}
