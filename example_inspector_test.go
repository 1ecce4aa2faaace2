package eventbus_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

func ExampleInspector() {
	ctx := context.Background()
	client := exampleRedis()
	defer client.Close()
	defer redistest.DeletePrefix(ctx, client, "example-inspector")

	bus, err := eventbus.New(eventbus.Config{Redis: client, Prefix: "example-inspector"})
	if err != nil {
		panic(err)
	}
	if err := bus.SetUp(ctx); err != nil {
		panic(err)
	}
	ev, err := eventbus.NewEvent("approval.item.approved", "tenant-1", "user-1", map[string]string{"itemId": "item-7"})
	if err != nil {
		panic(err)
	}
	pub, err := bus.Publish(ctx, ev) // the bus makes the id (a ULID)
	if err != nil {
		panic(err)
	}

	// The read side that the HTTP API and the CLI use.
	in := bus.Inspector()
	st, err := in.Status(ctx, eventbus.TenantScope("tenant-1"), pub.ID)
	fmt.Println(st.State, st.TenantID, err)
	_, err = in.Status(ctx, eventbus.TenantScope("tenant-2"), pub.ID) // another tenant's event
	fmt.Println(errors.Is(err, eventbus.ErrNotFound))
	st, err = in.Status(ctx, eventbus.AllTenants(), pub.ID) // a platform-wide read
	fmt.Println(st.State, st.TenantID, err)
	_, err = in.Status(ctx, eventbus.TenantScope(""), pub.ID) // an empty tenant is not "all"
	fmt.Println(errors.Is(err, eventbus.ErrInvalidScope))

	fmt.Println(in.Health(ctx).Healthy)
	consumers, err := in.Consumers(ctx) // live consumers, from their heartbeats
	fmt.Println(len(consumers), err)
	// Output:
	// PENDING tenant-1 <nil>
	// true
	// PENDING tenant-1 <nil>
	// true
	// true
	// 0 <nil>
}
