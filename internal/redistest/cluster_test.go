package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestClusterWithReplicasFailover starts 3 masters with a replica each,
// kills one master with SIGKILL and waits until its replica is promoted
// and the cluster is ok again.
func TestClusterWithReplicasFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a six-node Redis Cluster; run without -short")
	}
	start := time.Now()
	nodes := StartClusterWithReplicas(t, 3, 1)
	t.Logf("3 masters + 3 replicas ready in %v", time.Since(start))
	if len(nodes.Addrs()) != 6 || len(nodes.Replicas[1]) != 1 {
		t.Fatalf("nodes: %v", nodes.Addrs())
	}
	ctx := context.Background()
	for i, m := range nodes.Masters {
		role, err := nodes.Replicas[i][0].Client(t).Do(ctx, "ROLE").Slice()
		if err != nil || len(role) < 3 || role[0] != "slave" || !strings.HasSuffix(m.Addr(), ":"+fmt.Sprint(role[2])) {
			t.Fatalf("replica %d of %s: ROLE %v %v", i, m.Addr(), role, err)
		}
	}

	// A write on master 1's slots, to see it survive on the promoted replica.
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: nodes.Addrs()})
	t.Cleanup(func() { cc.Close() })
	key := keyOn(t, ctx, cc, nodes.Masters[1].Addr())
	if err := cc.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := nodes.Masters[1].Client(t).Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d %v", n, err)
	}

	killed := time.Now()
	nodes.Masters[1].Stop() // SIGKILL
	rc := nodes.Replicas[1][0].Client(t)
	deadline := killed.Add(60 * time.Second)
	for {
		role, err := rc.Do(ctx, "ROLE").Slice()
		if err == nil && len(role) > 0 && role[0] == "master" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not promoted 60s after its master was killed: ROLE %v %v", role, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	promoted := time.Since(killed)
	nodes.WaitClusterOK(t, 60*time.Second)
	t.Logf("master killed: replica promoted after %v, cluster ok after %v (cluster-node-timeout %v)", promoted, time.Since(killed), ClusterNodeTimeout)

	// The write is on the promoted replica. (A go-redis ClusterClient that
	// knew the dead master took about 60 s here to route to the new one
	// with default options: it does not reload the slots on a dial error.)
	if got, err := rc.Get(ctx, key).Result(); err != nil || got != "v" {
		t.Errorf("GET %s on the promoted replica = %q %v, want v", key, got, err)
	}
}

func TestStartClusterNoReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster; run without -short")
	}
	addrs := StartCluster(t, 2)
	if len(addrs) != 2 {
		t.Fatalf("addrs %v", addrs)
	}
}

// keyOn returns a key whose slot the master at addr owns.
func keyOn(t *testing.T, ctx context.Context, cc *redis.ClusterClient, addr string) string {
	t.Helper()
	for i := range 1000 {
		key := fmt.Sprintf("k%d", i)
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if m.Options().Addr == addr {
			return key
		}
	}
	t.Fatalf("no key on %s", addr)
	return ""
}
