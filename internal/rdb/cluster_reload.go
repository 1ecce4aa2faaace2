package rdb

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterReloadEvery is the least time between two slot-map reloads that
// failed commands ask of a Redis Cluster client.
const ClusterReloadEvery = 250 * time.Millisecond

// clusterReload makes a Redis Cluster client notice a failover. go-redis
// reloads its slot map only on MOVED or ASK replies and otherwise every
// ClusterStateReloadInterval (default 60s): after a master dies, every
// command for its slots goes to the dead address (connection refused)
// and no node ever answers MOVED, so the client keeps failing until that
// interval has passed, long after a replica took over. clusterReload asks
// for a reload (ClusterClient.ReloadState: one CLUSTER SLOTS in a
// goroutine of go-redis that ends with it) whenever a command fails as if
// its node were gone or the cluster were changing, or the breaker of its
// node refuses one, at most once per every. While the dead master is still listed the reload changes
// nothing; the failures that follow ask again, so the client routes to
// the promoted replica within about every of the cluster's failover.
type clusterReload struct {
	reload func()
	every  time.Duration
	now    func() time.Time
	last   atomic.Int64 // UnixNano of the last reload asked, 0 for none
}

// newClusterReload returns the reloader of c, or nil when c is not a
// Redis Cluster client (after on nil does nothing).
func newClusterReload(c redis.UniversalClient, every time.Duration) *clusterReload {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return nil
	}
	return &clusterReload{
		reload: func() { cc.ReloadState(context.Background()) },
		every:  every,
		now:    time.Now,
	}
}

// after asks for a reload when err may mean a change of the cluster's
// topology, unless one was asked less than every ago.
func (r *clusterReload) after(err error) {
	if r != nil && topologyError(err) {
		r.request()
	}
}

// refused is told of every call a node's breaker refused. Refused calls
// never reach Redis, so while the breaker is open only its one probe per
// cool-down would fail and ask for a reload: the next probe would then
// still find the slot map as it was up to a cool-down ago. Asking here
// too keeps the map at most every old while callers are waiting, so that
// the first probe after the promotion goes to the new master. (The reload,
// CLUSTER SLOTS, goes through the breakers of the nodes it asks: a node
// whose breaker is open refuses at once and go-redis asks the next one.)
func (r *clusterReload) refused() {
	if r != nil {
		r.request()
	}
}

// request asks for a reload unless one was asked less than every ago.
func (r *clusterReload) request() {
	now := r.now().UnixNano()
	last := r.last.Load()
	if last != 0 && now-last < int64(r.every) {
		return
	}
	if r.last.CompareAndSwap(last, now) { // one caller per interval
		r.reload()
	}
}

// topologyError reports a failure that a stale slot map may cause: the
// node is not there (network errors: refused, reset, EOF, timeouts) or
// the cluster is failing over (CLUSTERDOWN, TRYAGAIN, MASTERDOWN,
// LOADING). Refusals of the breaker (nothing was sent) and of our
// password are not.
func topologyError(err error) bool {
	return unavailable(err) && !errors.Is(err, errBreakerOpen) && !isRefusal(err)
}
