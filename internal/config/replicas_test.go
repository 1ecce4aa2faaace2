package config

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestMinReplicasSettings(t *testing.T) {
	s, err := load(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.MinReplicas != 0 || s.ReplicaTimeout != 100*time.Millisecond {
		t.Errorf("defaults %d %v, want 0 100ms", s.MinReplicas, s.ReplicaTimeout)
	}
	s, err = load([]string{"--min-replicas", "2", "--replica-timeout", "250ms"},
		map[string]string{"EVENTBUS_MIN_REPLICAS": "1", "EVENTBUS_REPLICA_TIMEOUT": "1s"})
	if err != nil || s.MinReplicas != 2 || s.ReplicaTimeout != 250*time.Millisecond {
		t.Errorf("flags over env: %d %v %v", s.MinReplicas, s.ReplicaTimeout, err)
	}
	s, err = load(nil, map[string]string{"EVENTBUS_MIN_REPLICAS": "1", "EVENTBUS_REPLICA_TIMEOUT": "1s"})
	if err != nil || s.MinReplicas != 1 || s.ReplicaTimeout != time.Second {
		t.Errorf("env: %d %v %v", s.MinReplicas, s.ReplicaTimeout, err)
	}
	for _, env := range []map[string]string{
		{"EVENTBUS_MIN_REPLICAS": "-1"},
		{"EVENTBUS_MIN_REPLICAS": "x"},
		{"EVENTBUS_MIN_REPLICAS": "17"},
		{"EVENTBUS_REPLICA_TIMEOUT": "0"},
		{"EVENTBUS_REPLICA_TIMEOUT": "-1s"},
		{"EVENTBUS_REPLICA_TIMEOUT": "2s"}, // not under the 2s publish timeout
		{"EVENTBUS_REPLICA_TIMEOUT": "1s", "EVENTBUS_PUBLISH_TIMEOUT": "500ms"},
	} {
		if _, err := load(nil, env); !errors.Is(err, ErrInvalid) {
			t.Errorf("%v: %v, want ErrInvalid", env, err)
		}
	}
}

func TestMinReplicasBusConfig(t *testing.T) {
	s, err := load(nil, map[string]string{"EVENTBUS_MIN_REPLICAS": "1", "EVENTBUS_REPLICA_TIMEOUT": "300ms"})
	if err != nil {
		t.Fatal(err)
	}
	if c := s.BusConfig(nil, nil); c.MinReplicas != 1 || c.ReplicaTimeout != 300*time.Millisecond {
		t.Errorf("BusConfig: %d %v", c.MinReplicas, c.ReplicaTimeout)
	}
}

// TestClusterPoolSizeHoldsTheReaders checks that the cluster client's pool
// leaves go-redis's default free beside two blocking readers per
// partition, so that many partitions cannot starve publishing.
func TestClusterPoolSizeHoldsTheReaders(t *testing.T) {
	s, err := load([]string{"--cluster-addrs", "127.0.0.1:7000", "--partitions", "64", "--previous-partitions", "8"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.RedisClient()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("client %T", c)
	}
	want := 10*runtime.GOMAXPROCS(0) + 2*(64+8+1)
	if got := cc.Options().PoolSize; got != want {
		t.Errorf("PoolSize %d, want %d", got, want)
	}
}
