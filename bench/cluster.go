package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterTarget is a throwaway Redis Cluster this process started: masters
// only (no replicas), slots split evenly in node order. It follows
// internal/redistest's StartClusterWithReplicas (this module cannot import
// it).
type clusterTarget struct {
	nodes []*target // masters, in slot order
}

// startCluster runs a Redis Cluster of masters redis-servers on free
// loopback ports (no persistence) and returns once every node reports
// cluster_state:ok and knows every other node.
func startCluster(ctx context.Context, masters int) (*clusterTarget, error) {
	ct := &clusterTarget{}
	for range masters {
		t, err := startServerArgs(ctx, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000")
		if err != nil {
			ct.close()
			return nil, fmt.Errorf("cluster node: %w", err)
		}
		ct.nodes = append(ct.nodes, t)
	}
	const slots = 16384
	for i, t := range ct.nodes {
		lo, hi := i*slots/masters, (i+1)*slots/masters-1
		if err := t.admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			ct.close()
			return nil, fmt.Errorf("CLUSTER ADDSLOTSRANGE on %s: %w", t.addr, err)
		}
		if i == 0 {
			continue
		}
		host, port, _ := net.SplitHostPort(t.addr)
		if err := ct.nodes[0].admin.Do(ctx, "CLUSTER", "MEET", host, port).Err(); err != nil {
			ct.close()
			return nil, fmt.Errorf("CLUSTER MEET %s: %w", t.addr, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, t := range ct.nodes {
		for {
			info, err := t.admin.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(masters)+"\r\n") {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				ct.close()
				return nil, fmt.Errorf("cluster not ok on %s: %v %v", t.addr, info, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return ct, nil
}

func (ct *clusterTarget) addrs() []string {
	out := make([]string, len(ct.nodes))
	for i, t := range ct.nodes {
		out[i] = t.addr
	}
	return out
}

func (ct *clusterTarget) pids() []int {
	out := make([]int, len(ct.nodes))
	for i, t := range ct.nodes {
		out[i] = t.cmd.Process.Pid
	}
	return out
}

// client returns a cluster client with its own connection pools, set up as
// newBus sets up a single-node client.
func (ct *clusterTarget) client() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: ct.addrs(), ContextTimeoutEnabled: true, ReadTimeout: 3 * time.Second,
	})
}

// flush empties every master.
func (ct *clusterTarget) flush(ctx context.Context) error {
	for _, t := range ct.nodes {
		if err := t.admin.FlushAll(ctx).Err(); err != nil {
			return fmt.Errorf("FLUSHALL on %s: %w", t.addr, err)
		}
	}
	return nil
}

// streamEntries sums XLEN over the keys of one node matching pattern and
// counts the keys that hold entries.
func streamEntries(ctx context.Context, rc *redis.Client, pattern string) (total int64, streams int, err error) {
	var cursor uint64
	for {
		keys, next, err := rc.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return 0, 0, err
		}
		for _, k := range keys {
			n, err := rc.XLen(ctx, k).Result()
			if err != nil {
				return 0, 0, fmt.Errorf("XLEN %s: %w", k, err)
			}
			total += n
			if n > 0 {
				streams++
			}
		}
		if next == 0 {
			return total, streams, nil
		}
		cursor = next
	}
}

func (ct *clusterTarget) close() {
	for _, t := range ct.nodes {
		t.close()
	}
}

// balancedStreams returns k stream names under base (k a multiple of the
// masters), the same number on each master, asking a node for their slots.
func (ct *clusterTarget) balancedStreams(ctx context.Context, base string, k int) ([]string, error) {
	per := k / len(ct.nodes)
	have := make([]int, len(ct.nodes))
	var out []string
	for i := 0; len(out) < k; i++ {
		if i > 100*k {
			return nil, fmt.Errorf("no balanced stream names under %s", base)
		}
		name := fmt.Sprintf("%s:%d", base, i)
		slot, err := ct.nodes[0].admin.ClusterKeySlot(ctx, name).Result()
		if err != nil {
			return nil, fmt.Errorf("CLUSTER KEYSLOT: %w", err)
		}
		node := 0 // the slots are split evenly in node order, as startCluster does
		for j := range ct.nodes {
			if int(slot) >= j*16384/len(ct.nodes) {
				node = j
			}
		}
		if have[node] < per {
			have[node]++
			out = append(out, name)
		}
	}
	return out, nil
}
