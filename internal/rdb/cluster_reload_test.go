package rdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/redistest"
)

func TestTopologyError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"EOF", io.EOF, true},
		{"CLUSTERDOWN", proto("CLUSTERDOWN The cluster is down"), true},
		{"TRYAGAIN", proto("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{"MASTERDOWN", proto("MASTERDOWN Link with MASTER is down"), true},
		{"reply error", proto("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{"redis.Nil", redis.Nil, false},
		{"context canceled", context.Canceled, false},
		{"breaker open", fmt.Errorf("%w (last error: EOF)", errBreakerOpen), false},
		{"wrong password", proto("WRONGPASS invalid username-password pair"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := topologyError(tt.err); got != tt.want {
				t.Errorf("topologyError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestClusterReloadRateLimited: failures ask for a reload at most once
// per interval; other errors never do.
func TestClusterReloadRateLimited(t *testing.T) {
	now := time.Unix(1000, 0)
	reloads := 0
	r := &clusterReload{reload: func() { reloads++ }, every: 250 * time.Millisecond, now: func() time.Time { return now }}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	steps := []struct {
		advance time.Duration
		err     error
		want    int
	}{
		{0, refused, 1},
		{0, refused, 1},
		{249 * time.Millisecond, io.EOF, 1},
		{time.Millisecond, io.EOF, 2},
		{time.Second, proto("WRONGTYPE x"), 2},
		{0, proto("CLUSTERDOWN The cluster is down"), 3},
		{100 * time.Millisecond, proto("TRYAGAIN x"), 3},
		{150 * time.Millisecond, nil, 4}, // nil: a call the breaker refused
		{100 * time.Millisecond, nil, 4},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if s.err == nil {
			r.refused()
		} else {
			r.after(s.err)
		}
		if reloads != s.want {
			t.Fatalf("step %d (%v): %d reloads, want %d", i, s.err, reloads, s.want)
		}
	}
	var none *clusterReload
	none.after(io.EOF) // a non-cluster client: nothing to do
	none.refused()
	if newClusterReload(redis.NewClient(&redis.Options{}), time.Second) != nil {
		t.Error("a reloader for a single-node client")
	}
}

// TestClusterClientFollowsFailover kills the master of a key with SIGKILL
// on a 3+3 Redis Cluster and measures how long a ClusterClient wrapped by
// New takes to write that key again: with the reload on failures it is
// about the cluster's failover time, not go-redis' 60s reload interval.
// The pinned node connection (nodeConn, used with WAIT) follows too.
func TestClusterClientFollowsFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a six-node Redis Cluster; run without -short")
	}
	nodes := redistest.StartClusterWithReplicas(t, 3, 1)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: nodes.Addrs()})
	t.Cleanup(func() { cc.Close() })
	r := New(cc, NewKeys("fo", true), Options{})
	ctx := context.Background()
	key := r.Keys().Main()
	owner, err := cc.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	victim := -1
	for i, m := range nodes.Masters {
		if m.Addr() == owner.Options().Addr {
			victim = i
		}
	}
	if victim < 0 {
		t.Fatalf("master %s of %s not among %v", owner.Options().Addr, key, nodes.Addrs())
	}
	if err := cc.Set(ctx, key, "before", 0).Err(); err != nil {
		t.Fatal(err)
	}

	killed := time.Now()
	if err := syscall.Kill(nodes.Masters[victim].Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	const bound = 15 * time.Second
	var lastErr error
	for {
		if lastErr = cc.Set(ctx, key, "after", 0).Err(); lastErr == nil {
			break
		}
		if time.Since(killed) > bound {
			t.Fatalf("no write to the dead master's slot %v after the kill: %v", bound, lastErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	recovered := time.Since(killed)
	newOwner, err := cc.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if want := nodes.Replicas[victim][0].Addr(); newOwner.Options().Addr != want {
		t.Errorf("master of %s after the failover: %s, want the promoted replica %s", key, newOwner.Options().Addr, want)
	}
	conn, err := r.nodeConn(ctx, cc, key)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got, err := conn.Get(ctx, key).Result(); err != nil || got != "after" {
		t.Errorf("GET on the node connection after the failover: %q %v", got, err)
	}
	if errors.Is(lastErr, ErrUnavailable) {
		t.Log("last error before recovery was ErrUnavailable, as expected")
	}
	t.Logf("writes to the dead master's slot again %v after SIGKILL (cluster-node-timeout %v)", recovered, redistest.ClusterNodeTimeout)
}
