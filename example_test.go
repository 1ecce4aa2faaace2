package eventbus_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

// exampleRedis connects to the test Redis (EVENTBUS_TEST_REDIS_URL, else
// 127.0.0.1:6379).
func exampleRedis() *redis.Client {
	url := os.Getenv(redistest.SharedURLEnv)
	if url == "" {
		url = "redis://127.0.0.1:6379"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		panic(err)
	}
	return redis.NewClient(opt)
}

func ExampleBus_Publish() {
	ctx := context.Background()
	client := exampleRedis()
	defer client.Close()
	defer redistest.DeletePrefix(ctx, client, "example-publish")

	bus, err := eventbus.New(eventbus.Config{Redis: client, Prefix: "example-publish"})
	if err != nil {
		panic(err)
	}
	type ItemApproved struct {
		ItemID string `json:"itemId"`
	}
	ev, err := eventbus.NewEvent("approval.item.approved", "tenant-1", "user-1", ItemApproved{ItemID: "item-7"})
	if err != nil {
		panic(err)
	}
	ev.ID = "approval-item-7" // a caller-supplied id makes the publish idempotent
	first, err := bus.Publish(ctx, ev)
	if err != nil {
		panic(err)
	}
	again, err := bus.Publish(ctx, ev)
	if err != nil {
		panic(err)
	}
	fmt.Println(first.ID, again.Duplicate, again.StreamID == first.StreamID)

	// Validation names the field; nothing is written.
	_, err = bus.Publish(ctx, eventbus.Event{Type: "approval.item.approved", UserID: "user-1"})
	fmt.Println(err)
	// Output:
	// approval-item-7 true true
	// eventbus: invalid event: tenantId: required
}

func ExampleBus_PublishBatch() {
	ctx := context.Background()
	client := exampleRedis()
	defer client.Close()
	defer redistest.DeletePrefix(ctx, client, "example-batch")

	bus, err := eventbus.New(eventbus.Config{Redis: client, Prefix: "example-batch"})
	if err != nil {
		panic(err)
	}
	events := []eventbus.Event{
		{Type: "crm.deal.created", TenantID: "t1", UserID: "u1"},
		{Type: "crm.deal.won", TenantID: "t1", UserID: "u1"},
	}
	res, err := bus.PublishBatch(ctx, events) // all or nothing, contiguous
	if err != nil {
		panic(err)
	}
	fmt.Println(len(res), res[0].StreamID < res[1].StreamID)
	// Output: 2 true
}

func ExampleConsumer() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := exampleRedis()
	defer client.Close()
	defer redistest.DeletePrefix(context.Background(), client, "example-consume")

	bus, err := eventbus.New(eventbus.Config{Redis: client, Prefix: "example-consume", Block: 100 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	if err := bus.SetUp(ctx); err != nil {
		panic(err)
	}
	consumer, err := bus.NewConsumer(eventbus.ConsumerConfig{})
	if err != nil {
		panic(err)
	}
	done := make(chan string, 1)
	// Every approval event, any depth below "approval".
	err = consumer.Handle("notify-approver", "approval.*", eventbus.HandlerFunc(func(ctx context.Context, ev eventbus.Event) error {
		var data struct {
			ItemID string `json:"itemId"`
		}
		if err := ev.Bind(&data); err != nil {
			return eventbus.Permanent(err) // retrying cannot fix bad data: straight to the DLQ
		}
		done <- ev.Type + " " + data.ItemID
		return nil // a returned error would schedule a retry of this handler alone
	}), eventbus.Priority(10))
	if err != nil {
		panic(err)
	}
	go consumer.Run(ctx)

	ev, _ := eventbus.NewEvent("approval.item.approved", "tenant-1", "user-1", map[string]string{"itemId": "item-7"})
	if _, err := bus.Publish(ctx, ev); err != nil {
		panic(err)
	}
	fmt.Println(<-done)
	// Output: approval.item.approved item-7
}

func ExampleDeliveryFromContext() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := exampleRedis()
	defer client.Close()
	defer redistest.DeletePrefix(context.Background(), client, "example-delivery")

	bus, err := eventbus.New(eventbus.Config{Redis: client, Prefix: "example-delivery", Block: 100 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	if err := bus.SetUp(ctx); err != nil {
		panic(err)
	}
	consumer, err := bus.NewConsumer(eventbus.ConsumerConfig{
		RetryPollInterval: 10 * time.Millisecond,
		Retry:             &eventbus.RetryPolicy{Delays: []time.Duration{10 * time.Millisecond}},
	})
	if err != nil {
		panic(err)
	}
	// A metrics or tracing middleware: it sees which handler runs, which
	// attempt this is, and the event's stream id.
	lines := make(chan string, 2)
	consumer.Use(func(next eventbus.Handler) eventbus.Handler {
		return eventbus.HandlerFunc(func(ctx context.Context, ev eventbus.Event) error {
			d, _ := eventbus.DeliveryFromContext(ctx)
			err := next.Handle(ctx, ev)
			lines <- fmt.Sprintf("%s attempt %d ok=%v", d.Handler, d.Attempt, err == nil)
			return err
		})
	})
	var runs atomic.Int32
	err = consumer.Handle("index-item", "approval.*", eventbus.HandlerFunc(func(ctx context.Context, ev eventbus.Event) error {
		if runs.Add(1) == 1 {
			return fmt.Errorf("search index unavailable") // a retry follows
		}
		return nil
	}))
	if err != nil {
		panic(err)
	}
	go consumer.Run(ctx)

	ev, _ := eventbus.NewEvent("approval.item.approved", "tenant-1", "user-1", map[string]string{"itemId": "item-7"})
	if _, err := bus.Publish(ctx, ev); err != nil {
		panic(err)
	}
	fmt.Println(<-lines)
	fmt.Println(<-lines)
	// Output:
	// index-item attempt 1 ok=false
	// index-item attempt 2 ok=true
}
