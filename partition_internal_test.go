package eventbus

import (
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"
)

// With one partition the consumer reads, sets up, claims from and settles
// on today's streams, all partition 0.
func TestOnePartitionKeepsTodaysStreams(t *testing.T) {
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
	if got, want := c.streams(), []string{"p:events:main", "p:events:replay", "p:events:retries:g"}; !slices.Equal(got, want) {
		t.Errorf("read streams %v, want %v", got, want)
	}
	if got, want := b.groupStreams(), []string{"p:events:main", "p:events:dlq", "p:events:replay", "p:events:retries:g"}; !slices.Equal(got, want) {
		t.Errorf("group streams %v, want %v", got, want)
	}
	for _, s := range c.groupStreams {
		if s.part != 0 || s.retries != (s.name == "p:events:retries:g") {
			t.Errorf("stream %+v: want partition 0, retries only for the retries stream", s)
		}
	}
	if gs := c.stream("p:events:retries:g"); !gs.retries || gs.part != 0 {
		t.Errorf("stream(retries) = %+v", gs)
	}
}
