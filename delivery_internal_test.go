package eventbus

import (
	"context"
	"testing"
	"time"
)

// Reading the delivery from a handler's context costs no allocation.
func TestDeliveryFromContextDoesNotAllocate(t *testing.T) {
	r := &runCtx{parent: context.Background(), deadline: time.Now().Add(time.Minute),
		delivery: Delivery{Handler: "h", Attempt: 2, Stream: "s", StreamID: "1-0", Group: "g", Consumer: "c"}}
	var d Delivery
	allocs := testing.AllocsPerRun(100, func() { d, _ = DeliveryFromContext(r) })
	if allocs != 0 {
		t.Errorf("DeliveryFromContext: %v allocations, want 0", allocs)
	}
	if d != r.delivery {
		t.Errorf("got %+v, want %+v", d, r.delivery)
	}
	if _, ok := DeliveryFromContext(context.Background()); ok {
		t.Error("a plain context has a delivery")
	}
}
