package eventbus_test

import (
	"context"
	"fmt"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

func ExampleInspector_Stats() {
	ctx := context.Background()
	client := exampleRedis()
	defer client.Close()
	redistest.DeletePrefix(ctx, client, "example-stats")
	defer redistest.DeletePrefix(ctx, client, "example-stats")

	bus, err := eventbus.New(eventbus.Config{Redis: client, Prefix: "example-stats"})
	if err != nil {
		panic(err)
	}
	// Run flushes the throughput counters to Redis every second, and
	// once more when it stops.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- bus.Run(runCtx) }()
	if err := bus.SetUp(ctx); err != nil {
		panic(err)
	}
	for _, tenant := range []string{"tenant-1", "tenant-1", "tenant-2"} {
		ev, err := eventbus.NewEvent("approval.item.approved", tenant, "user-1", map[string]string{"itemId": "item-7"})
		if err != nil {
			panic(err)
		}
		if _, err := bus.Publish(ctx, ev); err != nil {
			panic(err)
		}
	}
	stop()
	if err := <-done; err != nil {
		panic(err)
	}

	in := bus.Inspector()
	all, err := in.Stats(ctx, eventbus.AllTenants())
	if err != nil {
		panic(err)
	}
	fmt.Println(all.MainStream.Length, all.Throughput.LastHour, all.Throughput.ByType["approval.item.approved"].LastHour, len(all.Alarms))
	one, err := in.Stats(ctx, eventbus.TenantScope("tenant-2")) // that tenant's counts only
	if err != nil {
		panic(err)
	}
	fmt.Println(one.MainStream == nil, one.Throughput.LastHour)
	// Output:
	// 3 3 3 0
	// true 1
}
