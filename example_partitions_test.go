package eventbus_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// ExampleConfig_partitions spreads the main stream over 8 partitions (on
// Redis Cluster, over the masters). Events go to their tenant's partition
// unless a Partitioner says otherwise; here, by user. A batch across
// partitions is atomic per partition.
func ExampleConfig_partitions() {
	ctx := context.Background()
	client := exampleRedis()
	defer client.Close()
	defer redistest.DeletePrefix(ctx, client, "example-partitions")

	bus, err := eventbus.New(eventbus.Config{
		Redis:      client,
		Prefix:     "example-partitions",
		Partitions: 8,
		Partitioner: func(ev *eventbus.Event, n int) int {
			return int(ev.UserID[len(ev.UserID)-1]) % n // keep each user's events in order
		},
	})
	if err != nil {
		panic(err)
	}
	var batch []eventbus.Event
	for _, user := range []string{"user-1", "user-2", "user-3"} {
		ev, err := eventbus.NewEvent("approval.item.approved", "tenant-1", user, map[string]string{"itemId": "item-7"})
		if err != nil {
			panic(err)
		}
		batch = append(batch, ev)
	}
	res, err := bus.PublishBatch(ctx, batch)
	var partial *eventbus.PartialBatchError
	switch {
	case errors.As(err, &partial):
		fmt.Println("written in part; publish the failed ones again with their ids")
	case err != nil:
		panic(err)
	}
	fmt.Println(len(res), "events in", bus.Config().Partitions, "partitions")
	// Output: 3 events in 8 partitions
}
