package rdb

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/redistest"
)

// countHook counts the calls that reach a node client's hooks, but for
// the CLUSTER SLOTS of slot-map reloads (which refusals ask for, in a
// goroutine of go-redis).
type countHook struct{ calls atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "cluster" {
			h.calls.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.calls.Add(1); return next(ctx, cmds) }
}

// TestClusterBreakerPerNode kills one master of a 3-master Redis Cluster:
// its breaker opens and refuses the calls for its slots at once (single
// commands, pipelines and MULTI/EXEC, each tried once by go-redis, not
// retried), while the calls to the other masters' slots go on working.
func TestClusterBreakerPerNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster; run without -short")
	}
	nodes := redistest.StartClusterWithReplicas(t, 3, 0)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: nodes.Addrs(), DialTimeout: 500 * time.Millisecond})
	t.Cleanup(func() { cc.Close() })
	var counts sync.Map // node address -> *countHook
	cc.OnNewNode(func(c *redis.Client) {
		h := &countHook{}
		counts.Store(c.Options().Addr, h)
		c.AddHook(h) // before New's: outside the breaker, counts refused calls too
	})
	// No probe during the test: every call to the dead node after the
	// breaker opened is refused.
	r := New(cc, NewKeys("nb", true), Options{BreakerCooldown: time.Hour})
	ctx := context.Background()

	// One key per master.
	keyOf := map[string]string{}
	for i := 0; len(keyOf) < len(nodes.Masters); i++ {
		key := "nb:{" + strconv.Itoa(i) + "}"
		m, err := cc.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := keyOf[m.Options().Addr]; !ok {
			keyOf[m.Options().Addr] = key
		}
	}
	for _, key := range keyOf {
		if err := cc.Set(ctx, key, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	dead := nodes.Masters[0]
	deadKey := keyOf[dead.Addr()]
	v, ok := counts.Load(dead.Addr())
	if !ok {
		t.Fatalf("no node client for %s", dead.Addr())
	}
	deadCount := v.(*countHook)

	if err := syscall.Kill(dead.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	dead.Stop() // reaps it
	// Connection refused, a few times: the dead node's breaker opens.
	var err error
	for range 10 {
		if err = cc.Set(ctx, deadKey, "w", 0).Err(); errors.Is(err, errBreakerOpen) {
			break
		}
	}
	if !errors.Is(err, errBreakerOpen) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("SET to the dead master: %v, want a refusal of its breaker (ErrUnavailable)", err)
	}

	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"command", func() error { return cc.Set(ctx, deadKey, "w", 0).Err() }},
		{"pipeline", func() error {
			_, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error { p.Set(ctx, deadKey, "w", 0); return nil })
			return err
		}},
		{"multi", func() error {
			_, err := cc.TxPipelined(ctx, func(p redis.Pipeliner) error { p.Set(ctx, deadKey, "w", 0); return nil })
			return err
		}},
		{"node connection", func() error {
			conn, err := r.nodeConn(ctx, cc, deadKey)
			if err != nil {
				return err
			}
			defer conn.Close()
			return conn.Set(ctx, deadKey, "w", 0).Err()
		}},
	} {
		before := deadCount.calls.Load()
		err := tc.run()
		if !errors.Is(err, errBreakerOpen) || !errors.Is(err, ErrUnavailable) || !notSent(err) {
			t.Errorf("%s to the dead master: %v, want a refusal (ErrUnavailable, not sent)", tc.name, err)
		}
		if n := deadCount.calls.Load() - before; n != 1 {
			t.Errorf("%s to the dead master reached its node client %d times, want once (a refusal is not retried)", tc.name, n)
		}
	}

	// The other masters answer, and their breakers are closed. (Once the
	// cluster marks the dead master failing they answer CLUSTERDOWN: no
	// replica takes over; that is not a refusal either.)
	for addr, key := range keyOf {
		if addr == dead.Addr() {
			continue
		}
		for range 20 {
			err := cc.Set(ctx, key, "w", 0).Err()
			if errors.Is(err, errBreakerOpen) {
				t.Fatalf("SET to the live master %s refused by a breaker: %v", addr, err)
			}
			if err != nil && !clusterStateError(err) {
				t.Fatalf("SET to the live master %s: %v", addr, err)
			}
		}
		// A pipeline spanning a live and the dead master: the live one's
		// command succeeds.
		var live, gone *redis.StatusCmd
		_, _ = cc.Pipelined(ctx, func(p redis.Pipeliner) error {
			live = p.Set(ctx, key, "p", 0)
			gone = p.Set(ctx, deadKey, "p", 0)
			return nil
		})
		if err := live.Err(); err != nil && !clusterStateError(err) {
			t.Errorf("pipelined SET to the live master %s: %v", addr, err)
		}
		if err := gone.Err(); !errors.Is(err, errBreakerOpen) {
			t.Errorf("pipelined SET to the dead master: %v, want a refusal", err)
		}
	}
}

// TestNodeHookRecord: a node that answers CLUSTERDOWN or TRYAGAIN is
// reachable; one that does not answer, or is loading, counts as a failure.
func TestNodeHookRecord(t *testing.T) {
	for _, tc := range []struct {
		err  error
		open bool
	}{
		{redis.ErrClosed, false},
		{proto("CLUSTERDOWN The cluster is down"), false},
		{proto("TRYAGAIN Multiple keys request during rehashing of slot"), false},
		{proto("MOVED 3999 127.0.0.1:6381"), false},
		{proto("LOADING Redis is loading the dataset in memory"), true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{context.Canceled, false},
	} {
		n := &nodeHook{brk: newBreaker(3, time.Hour)}
		for range 3 {
			n.record(tc.err)
		}
		if ok, _ := n.brk.allow(); ok == tc.open {
			t.Errorf("after 3 × %v: breaker open %v, want %v", tc.err, !ok, tc.open)
		}
	}
}

// TestNodeHookOncePerClient: a node client gets one breaker however often
// it is asked for (OnNewNode, then nodeConn), and its entry goes once the
// client is collected.
func TestNodeHookOncePerClient(t *testing.T) {
	h := &hook{opt: Options{BreakerThreshold: 3, BreakerCooldown: time.Second}}
	func() { // the clients are unreachable once it returns
		c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
		defer c.Close()
		if a, b := h.nodeHook(c), h.nodeHook(c); a != b {
			t.Fatal("two breakers for one node client")
		}
		other := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
		defer other.Close()
		if h.nodeHook(other) == h.nodeHook(c) {
			t.Fatal("two node clients share a breaker")
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		n := 0
		h.nodes.Range(func(any, any) bool { n++; return true })
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d node entries left after their clients were dropped", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
