package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// failoverBound is how long after the SIGKILL the bus must publish to the
// dead master's slots again, by itself.
const failoverBound = 30 * time.Second

// TestClusterFailoverUnderLoad kills with SIGKILL, under publishing and
// consuming load, the Redis Cluster master (of 3, each with one replica)
// that owns the most partitions, and measures how the bus comes through
// the promotion of its replica: how long until publishes to the dead
// master's partitions are acknowledged again and their events delivered,
// how many acknowledged events are never delivered (acknowledged loss)
// and how many are delivered twice. With several partitions it also
// checks that the partitions of the masters that stay up go on working:
// every node has its own circuit breaker, so none of their publishes may
// be refused by a breaker (the dead master's).
//
// With MinReplicas 1 no acknowledged event may be lost. The promoted
// replica has no replica of its own, so every publish to its slots fails
// with a *NotReplicatedError (not acknowledged) until the killed node is
// restarted: it rejoins as the new master's replica and WAIT succeeds
// again. Without MinReplicas acknowledged writes the replica had not
// received yet are lost; the test reports that count (often 0 on
// loopback) without asserting on it.
func TestClusterFailoverUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a six-node Redis Cluster per row; run without -short")
	}
	for _, tc := range []struct{ partitions, minReplicas int }{
		{1, 0}, {1, 1}, {8, 0}, {8, 1},
	} {
		t.Run(fmt.Sprintf("partitions=%d/minReplicas=%d", tc.partitions, tc.minReplicas), func(t *testing.T) {
			failoverUnderLoad(t, tc.partitions, tc.minReplicas)
		})
	}
}

// failoverRun records one row's publishes and deliveries.
type failoverRun struct {
	affected []bool // by partition: owned by the master that is killed

	mu          sync.Mutex
	killed      time.Time // zero until the kill
	restarted   time.Time // zero until the killed node runs again
	acked       map[string]int
	errs        map[string]int // publish failures by kind
	delivered   map[string]int
	firstFail   time.Time     // first failed publish to an affected partition after the kill: the outage began
	firstAck    time.Time     // first acknowledged publish to an affected partition after firstFail
	firstNotRep time.Time     // first *NotReplicatedError after the kill (the write reached the new master)
	ackRestart  time.Time     // first acknowledged publish to an affected partition after the restart
	ackNoRepl   int           // acknowledged publishes to affected partitions after firstFail, before the restart
	firstDeliv  time.Time     // first delivery of an affected event published after firstFail
	firstLag    time.Duration // its publish-to-handler time: how long the reads took to resume
	maxLag      time.Duration // longest publish-to-handler time of those events
	lastDeliv   time.Time
	healthyGap  time.Duration  // longest gap between acks to unaffected partitions after the kill
	healthyErr  map[string]int // failed publishes to unaffected partitions after the kill, by cause
	lastHealthy time.Time
}

// tenantPartition is the test's partitioner: tenant "p<n>" goes to
// partition n mod the partition count.
func tenantPartition(ev *eventbus.Event, n int) int {
	p, _ := strconv.Atoi(strings.TrimPrefix(ev.TenantID, "p"))
	return p % n
}

func (r *failoverRun) published(part int, id string, err error) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	after := !r.killed.IsZero() && now.After(r.killed)
	if err != nil && after && r.affected[part] && r.firstFail.IsZero() {
		r.firstFail = now
	}
	if err != nil && after && !r.affected[part] {
		cause := "other"
		for _, c := range []string{"circuit breaker open", "CLUSTERDOWN", "TRYAGAIN", "connection refused"} {
			if strings.Contains(err.Error(), c) {
				cause = c
				break
			}
		}
		r.healthyErr[cause]++
	}
	if err != nil {
		var nr *eventbus.NotReplicatedError
		switch {
		case errors.As(err, &nr):
			r.errs["not replicated"]++
			if after && r.firstNotRep.IsZero() {
				r.firstNotRep = now
			}
		case errors.Is(err, eventbus.ErrOutcomeUnknown):
			r.errs["outcome unknown"]++
		case errors.Is(err, eventbus.ErrUnavailable):
			r.errs["unavailable"]++
		default:
			r.errs[err.Error()]++
		}
		return
	}
	r.acked[id]++
	switch {
	case !after:
	case r.affected[part]:
		if r.firstAck.IsZero() && !r.firstFail.IsZero() {
			r.firstAck = now
		}
		if !r.firstFail.IsZero() && r.restarted.IsZero() {
			r.ackNoRepl++
		}
		if !r.restarted.IsZero() && r.ackRestart.IsZero() {
			r.ackRestart = now
		}
	default:
		if r.lastHealthy.IsZero() {
			r.lastHealthy = r.killed
		}
		r.healthyGap = max(r.healthyGap, now.Sub(r.lastHealthy))
		r.lastHealthy = now
	}
}

func (r *failoverRun) handled(part int, ev eventbus.Event) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered[ev.ID]++
	r.lastDeliv = now
	if !r.firstFail.IsZero() && r.affected[part] && ev.Timestamp.After(r.firstFail) {
		lag := now.Sub(ev.Timestamp)
		if r.firstDeliv.IsZero() {
			r.firstDeliv, r.firstLag = now, lag
		}
		r.maxLag = max(r.maxLag, lag)
	}
}

// since returns how long after from at happened, or "never".
func (r *failoverRun) since(at, from time.Time) string {
	if at.IsZero() {
		return "never"
	}
	return at.Sub(from).Round(time.Millisecond).String()
}

func failoverUnderLoad(t *testing.T, partitions, minReplicas int) {
	nodes := redistest.StartClusterWithReplicas(t, 3, 1)
	// The server's client settings (internal/config): fail fast on a dead
	// node instead of go-redis's default dial retries.
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: nodes.Addrs(), DialerRetries: 2, DialerRetryTimeout: 50 * time.Millisecond, MaxRetries: 1,
		DialTimeout: 2 * time.Second, ContextTimeoutEnabled: true,
		ReadTimeout: 3 * time.Second, WriteTimeout: 3 * time.Second, PoolTimeout: 4 * time.Second,
	})
	t.Cleanup(func() { cc.Close() })
	ctx := context.Background()
	prefix := redistest.Prefix(t)

	// The bus first: the breaker of each node is installed on the node
	// clients cc creates after it (rdb.New), and MasterForKey creates them.
	b := newBus(t, cc, prefix, func(c *eventbus.Config) {
		c.Cluster = true
		c.Partitions = partitions
		c.Partitioner = tenantPartition
		c.MinReplicas = minReplicas
		c.ReplicaTimeout = 200 * time.Millisecond
		c.Block = 100 * time.Millisecond
		c.Logger = slog.New(slog.DiscardHandler) // thousands of publishes
	})

	// The victim: the master owning the most partitions' main streams.
	keys := rdb.NewPartitionedKeys(prefix, true, partitions, 0)
	owners := make([]string, partitions)
	count := map[string]int{}
	for p := range partitions {
		m, err := cc.MasterForKey(ctx, keys.MainPartition(p))
		if err != nil {
			t.Fatal(err)
		}
		owners[p] = m.Options().Addr
		count[owners[p]]++
	}
	victim := 0
	for i, m := range nodes.Masters {
		if count[m.Addr()] > count[nodes.Masters[victim].Addr()] {
			victim = i
		}
	}
	run := &failoverRun{
		affected: make([]bool, partitions),
		acked:    map[string]int{}, errs: map[string]int{}, delivered: map[string]int{}, healthyErr: map[string]int{},
	}
	for p, addr := range owners {
		run.affected[p] = addr == nodes.Masters[victim].Addr()
	}

	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	runBus(t, b)
	cons := fastConsumer(t, b, nil)
	mustHandle(t, cons, "record", "*", func(_ context.Context, ev eventbus.Event) error {
		run.handled(tenantPartition(&ev, partitions), ev)
		return nil
	})
	runConsumer(t, cons)

	const publishers = 4
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range publishers {
		wg.Go(func() {
			for i := g; ; i += publishers {
				select {
				case <-stop:
					return
				default:
				}
				ev := plain()
				ev.TenantID = "p" + strconv.Itoa(i%partitions)
				p, err := b.Publish(ctx, ev)
				run.published(i%partitions, p.ID, err)
				if err != nil {
					time.Sleep(5 * time.Millisecond) // as a client would back off
				}
			}
		})
	}
	stopped := false
	stopPublishing := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(stopPublishing)
	waitFor(t, 20*time.Second, "deliveries before the kill", func() bool {
		run.mu.Lock()
		defer run.mu.Unlock()
		return len(run.delivered) >= 300
	})

	dead := nodes.Masters[victim]
	run.mu.Lock()
	killed := time.Now()
	run.killed = killed
	run.mu.Unlock()
	if err := syscall.Kill(dead.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	dead.Stop() // reaps it
	promoted := waitPromoted(t, nodes.Replicas[victim][0], killed)
	clusterOK := time.Since(killed) + nodes.WaitClusterOK(t, failoverBound)

	if minReplicas > 0 {
		// The promoted replica has no replica: WAIT 1 fails for its slots
		// until the killed node rejoins as its replica.
		waitFor(t, failoverBound, "a write to the promoted replica (NotReplicated)", func() bool {
			run.mu.Lock()
			defer run.mu.Unlock()
			return !run.firstNotRep.IsZero()
		})
		time.Sleep(500 * time.Millisecond) // load on the promoted replica alone: nothing acknowledged
		run.mu.Lock()
		run.restarted = time.Now() // Restart returns once it answers: it may be a replica by then
		run.mu.Unlock()
		dead.Restart()
	}
	waitFor(t, failoverBound-time.Since(killed), "an acknowledged publish to the dead master's partitions", func() bool {
		run.mu.Lock()
		defer run.mu.Unlock()
		return !run.firstAck.IsZero() && (minReplicas == 0 || !run.ackRestart.IsZero())
	})
	waitFor(t, 10*time.Second, "a delivery of an event published after the outage began", func() bool {
		run.mu.Lock()
		defer run.mu.Unlock()
		return !run.firstDeliv.IsZero()
	})
	time.Sleep(500 * time.Millisecond) // load after the recovery
	stopPublishing()
	published := time.Now()

	// Drain: until every acknowledged event was delivered, or nothing was
	// delivered for 3s (longer than ClaimIdle: entries read by a call the
	// kill cut are claimed by then).
	var lost []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		run.mu.Lock()
		lost = lost[:0]
		for id := range run.acked {
			if run.delivered[id] == 0 {
				lost = append(lost, id)
			}
		}
		quiet := time.Since(run.lastDeliv)
		run.mu.Unlock()
		if len(lost) == 0 || quiet > 3*time.Second || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	run.mu.Lock()
	defer run.mu.Unlock()
	dups, unacked := 0, 0
	for id, n := range run.delivered {
		if n > 1 {
			dups++
		}
		if run.acked[id] == 0 {
			unacked++
		}
	}
	t.Logf("partitions=%d minReplicas=%d: killed master %d of 3 (owning %d of %d partitions)", partitions, minReplicas, victim, count[dead.Addr()], partitions)
	t.Logf("replica promoted %v, cluster ok %v after the kill; first NotReplicated %s, killed node restarted %s after the kill",
		promoted.Round(time.Millisecond), clusterOK.Round(time.Millisecond), run.since(run.firstNotRep, killed), run.since(run.restarted, killed))
	t.Logf("publishes to the dead master's partitions: first failure %s, first ack after it %s after the kill (%s after the restart); first delivery of an event published since that failure %s after the kill",
		run.since(run.firstFail, killed), run.since(run.firstAck, killed), run.since(run.ackRestart, run.restarted), run.since(run.firstDeliv, killed))
	if minReplicas > 0 {
		t.Logf("acknowledged publishes to the dead master's partitions between their first failure and the restart: %d", run.ackNoRepl)
	}
	if partitions > 1 {
		t.Logf("other masters' partitions after the kill: longest gap between acks %v, failures by cause %v", run.healthyGap.Round(time.Millisecond), run.healthyErr)
	}
	t.Logf("publish-to-handler time of the dead master's partitions' events published since the outage began: first delivered %v, longest %v",
		run.firstLag.Round(time.Millisecond), run.maxLag.Round(time.Millisecond))
	t.Logf("acknowledged %d, delivered %d distinct; acknowledged loss %d, delivered twice %d, delivered without an ack %d; drained %v after the last publish; failures %v",
		len(run.acked), len(run.delivered), len(lost), dups, unacked, time.Since(published).Round(time.Millisecond), run.errs)

	if got := run.firstAck.Sub(killed); got > failoverBound {
		t.Errorf("first acknowledged publish to the dead master's partitions %v after the kill, want within %v", got, failoverBound)
	}
	if minReplicas > 0 && run.ackNoRepl > 0 {
		t.Errorf("with MinReplicas %d, %d publishes to the promoted replica were acknowledged before it had a replica", minReplicas, run.ackNoRepl)
	}
	if n := run.healthyErr["circuit breaker open"]; n > 0 {
		t.Errorf("%d publishes to the partitions of the masters that stayed up were refused by a circuit breaker, want 0 (one breaker per node)", n)
	}
	if minReplicas > 0 && len(lost) > 0 {
		t.Errorf("with MinReplicas %d, %d acknowledged events were never delivered, e.g. %v", minReplicas, len(lost), lost[:min(5, len(lost))])
	}
}

// waitPromoted waits until replica reports the master role and returns how
// long after killed that was.
func waitPromoted(t *testing.T, replica *redistest.Server, killed time.Time) time.Duration {
	t.Helper()
	c := replica.Client(t)
	for {
		role, err := c.Do(context.Background(), "ROLE").Slice()
		if err == nil && len(role) > 0 && role[0] == "master" {
			return time.Since(killed)
		}
		if time.Since(killed) > failoverBound {
			t.Fatalf("replica not promoted %v after its master was killed: ROLE %v %v", failoverBound, role, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
