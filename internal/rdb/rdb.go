// Package rdb is the only package that speaks Redis: key names, commands and
// Lua scripts live here. Every call goes through a circuit breaker, so that
// callers get ErrUnavailable at once while Redis is unreachable. On a Redis
// Cluster every node has its own breaker: a dead master does not make the
// calls to the others fail.
package rdb

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/redis/go-redis/v9"
)

// Options tunes the Redis layer.
type Options struct {
	// BreakerThreshold is the number of consecutive unavailable errors
	// that open the circuit breaker. Default 3.
	BreakerThreshold int
	// BreakerCooldown is how long the breaker stays open before calls are
	// let through again. Default 1s.
	BreakerCooldown time.Duration
	// OnNoGroup is called when a command answers NOGROUP (the stream or
	// group is gone). It must not block.
	OnNoGroup func()
}

// RDB wraps a go-redis client with the product's key schema, commands and
// breaker.
type RDB struct {
	c    redis.UniversalClient
	keys Keys
	h    *hook // installed on c; also on the node connections of nodeConn
}

// errBreakerOpen is the cause of the errors of calls the breaker refused:
// nothing was sent.
var errBreakerOpen = errors.New("circuit breaker open")

// hooks holds the hook installed on each client, so that several RDBs
// sharing a client share one breaker instead of stacking hooks.
var hooks sync.Map // redis.UniversalClient -> *hook

// New wraps c. It installs the breaker hook on c once (every command of c
// then goes through the breaker); RDBs sharing c share the breaker, and the
// first one's breaker options.
//
// On a *redis.ClusterClient the breaker is per node: New registers a
// ClusterClient.OnNewNode callback that gives every node client the
// client creates from then on its own breaker (nodeHook), and the hook on
// c itself only marks errors with ErrUnavailable, reports NOGROUP and asks
// for slot-map reloads. go-redis offers no way to reach the node clients
// that already exist, so nodes c created before New (c used before it was
// handed to New) run without a breaker: their calls are never refused and
// fail only after the client's own timeouts while the node is down. Hand
// New a ClusterClient that has not run commands yet. (The connections that
// nodeConn pins to a master do get the node's breaker.)
func New(c redis.UniversalClient, keys Keys, opt Options) *RDB {
	if opt.BreakerThreshold <= 0 {
		opt.BreakerThreshold = 3
	}
	if opt.BreakerCooldown <= 0 {
		opt.BreakerCooldown = time.Second
	}
	h := &hook{reload: newClusterReload(c, ClusterReloadEvery), opt: opt}
	cc, cluster := c.(*redis.ClusterClient)
	if !cluster {
		h.brk = newBreaker(opt.BreakerThreshold, opt.BreakerCooldown)
	}
	v, loaded := hooks.LoadOrStore(c, h)
	h = v.(*hook)
	if !loaded {
		if cluster {
			cc.OnNewNode(func(node *redis.Client) { h.nodeHook(node) })
		}
		c.AddHook(h)
	}
	if opt.OnNoGroup != nil {
		h.addNoGroup(opt.OnNoGroup)
	}
	return &RDB{c: c, keys: keys, h: h}
}

// Cluster reports whether the client is a Redis Cluster client: an
// atomic step, a MULTI or one XREADGROUP must then touch one hash slot.
func (r *RDB) Cluster() bool {
	_, ok := r.c.(*redis.ClusterClient)
	return ok
}

// Keys returns the key schema.
func (r *RDB) Keys() Keys { return r.keys }

// hook reports NOGROUP replies, marks the errors of unavailable Redis with
// ErrUnavailable and, on a Redis Cluster, has the slot map reloaded after
// failures that may come from a failover. On a single-node or failover
// client it also applies the breaker (brk) to every command and pipeline;
// on a Redis Cluster client brk is nil and each node client has its own
// breaker in a nodeHook, installed by nodeHook(node).
type hook struct {
	brk    *breaker       // nil on a Redis Cluster client
	reload *clusterReload // nil unless the client is a ClusterClient
	opt    Options        // breaker options of the node breakers

	// nodes holds the node clients given a breaker: weak.Pointer to the
	// *redis.Client -> *nodeHook. An entry goes when its client is
	// collected (go-redis drops the clients of nodes that left).
	nodes sync.Map

	mu        sync.Mutex
	onNoGroup []func()
}

// nodeHook installs a breaker hook on the Redis Cluster node client node,
// once, and returns it.
func (h *hook) nodeHook(node *redis.Client) *nodeHook {
	key := weak.Make(node)
	if v, ok := h.nodes.Load(key); ok {
		return v.(*nodeHook)
	}
	v, loaded := h.nodes.LoadOrStore(key, &nodeHook{brk: newBreaker(h.opt.BreakerThreshold, h.opt.BreakerCooldown)})
	n := v.(*nodeHook)
	if !loaded {
		node.AddHook(n) // safe on a client in use: go-redis swaps its hook chain atomically
		runtime.AddCleanup(node, func(key weak.Pointer[redis.Client]) { h.nodes.Delete(key) }, key)
	}
	return n
}

func (h *hook) addNoGroup(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onNoGroup = append(h.onNoGroup, f)
}

func (h *hook) noGroup() {
	h.mu.Lock()
	fs := h.onNoGroup
	h.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

func (h *hook) DialHook(next redis.DialHook) redis.DialHook { return next }

// probeKey marks the context of the breaker's probe call: the commands
// go-redis runs to set up a new connection for it (HELLO, AUTH, SELECT)
// carry that context and must pass too.
type probeKey struct{}

// admit applies brk to a call; it returns the context to run the call
// with.
func admit(ctx context.Context, brk *breaker) (context.Context, bool) {
	ok, probe := brk.allow()
	switch {
	case probe:
		return context.WithValue(ctx, probeKey{}, true), true
	case ok:
		return ctx, true
	}
	return ctx, ctx.Value(probeKey{}) != nil
}

func (h *hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.brk != nil {
			var ok bool
			if ctx, ok = admit(ctx, h.brk); !ok {
				err := wrapUnavailable(h.brk.refusal())
				cmd.SetErr(err)
				return err
			}
		}
		err := next(ctx, cmd)
		return h.after(err, cmd)
	}
}

func (h *hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.brk != nil {
			var ok bool
			if ctx, ok = admit(ctx, h.brk); !ok {
				err := wrapUnavailable(h.brk.refusal())
				for _, c := range cmds {
					c.SetErr(err)
				}
				return err
			}
		}
		err := next(ctx, cmds)
		if unavailable(err) {
			h.failed(err)
			werr := wrapUnavailable(err)
			for _, c := range cmds {
				if c.Err() != nil && unavailable(c.Err()) {
					c.SetErr(wrapUnavailable(c.Err()))
				}
			}
			return werr
		}
		if h.brk != nil {
			h.brk.record(false)
		}
		for _, c := range cmds {
			if IsNoGroup(c.Err()) {
				h.noGroup()
				break
			}
		}
		return err
	}
}

func (h *hook) after(err error, cmd redis.Cmder) error {
	if unavailable(err) {
		h.failed(err)
		err = wrapUnavailable(err)
		cmd.SetErr(err)
		return err
	}
	if h.brk != nil && (err == nil || !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)) {
		h.brk.record(false)
	}
	if IsNoGroup(err) {
		h.noGroup()
	}
	return err
}

// failed records an unavailable error: in the breaker, when the hook has
// one, and as a reason to reload the slot map of a Redis Cluster. A
// refusal of a node's breaker (nothing was sent) asks for a reload too:
// see clusterReload.refused.
func (h *hook) failed(err error) {
	if h.brk != nil {
		h.brk.fail(err)
	}
	if errors.Is(err, errBreakerOpen) {
		h.reload.refused()
		return
	}
	h.reload.after(err)
}

// nodeHook is the circuit breaker of one Redis Cluster node client: the
// cluster client runs every command, and every pipeline or MULTI/EXEC it
// routes to the node, through the node client's hooks. A refusal returns
// without calling next: go-redis does not retry it (its error is none of
// the errors it retries) and does not re-route it, and the cluster-level
// hook then marks it ErrUnavailable (as "not sent": errBreakerOpen) and
// asks for a reload of the slot map. Errors are otherwise passed on as
// they are, so that go-redis sees MOVED, ASK and TRYAGAIN replies.
type nodeHook struct{ brk *breaker }

func (n *nodeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (n *nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		ctx, ok := admit(ctx, n.brk)
		if !ok {
			err := wrapUnavailable(n.brk.refusal())
			cmd.SetErr(err)
			return err
		}
		err := next(ctx, cmd)
		n.record(err)
		return err
	}
}

func (n *nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		ctx, ok := admit(ctx, n.brk)
		if !ok {
			err := wrapUnavailable(n.brk.refusal())
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		err := next(ctx, cmds)
		n.record(err)
		return err
	}
}

// record counts the outcome of a call the node was sent. CLUSTERDOWN and
// TRYAGAIN come from a node that answers: the cluster (or a slot) is
// changing, which the node's breaker must not turn into refusals of the
// node's calls for a cool-down after the cluster is whole again.
func (n *nodeHook) record(err error) {
	switch {
	case clusterStateError(err):
		n.brk.record(false)
	case unavailable(err):
		n.brk.fail(err)
	case err == nil || !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
		n.brk.record(false)
	}
}

// clusterStateError reports a CLUSTERDOWN or TRYAGAIN reply.
func clusterStateError(err error) bool {
	var rerr redis.Error
	if err == nil || !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.HasPrefix(msg, "CLUSTERDOWN") || strings.HasPrefix(msg, "TRYAGAIN")
}

// Ping measures one round trip.
func (r *RDB) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if err := r.c.Ping(ctx).Err(); err != nil {
		return 0, fmt.Errorf("ping: %w", err)
	}
	return time.Since(start), nil
}

// CreateGroup creates group on stream, reading from the beginning, and
// creates the stream if missing. An existing group (BUSYGROUP) is success;
// created reports whether this call made it.
func (r *RDB) CreateGroup(ctx context.Context, stream, group string) (created bool, err error) {
	err = r.c.XGroupCreateMkStream(ctx, stream, group, "0").Err()
	switch {
	case err == nil:
		return true, nil
	case isBusyGroup(err):
		return false, nil
	default:
		return false, fmt.Errorf("create group %s on %s: %w", group, stream, err)
	}
}

// CountExisting returns how many of keys exist.
func (r *RDB) CountExisting(ctx context.Context, keys ...string) (int64, error) {
	if !r.Cluster() {
		n, err := r.c.Exists(ctx, keys...).Result()
		if err != nil {
			return 0, fmt.Errorf("exists: %w", err)
		}
		return n, nil
	}
	// One EXISTS per key: a multi-key EXISTS cannot span slots.
	cmds := make([]*redis.IntCmd, len(keys))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, key := range keys {
			cmds[i] = p.Exists(ctx, key)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("exists: %w", err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// TrimMinID removes entries with ids below minID from stream. approx uses
// "~" (whole macro nodes only: cheap, may keep a few older entries); exact
// removes every older entry. It returns the number of entries removed.
func (r *RDB) TrimMinID(ctx context.Context, stream, minID string, approx bool) (int64, error) {
	var cmd *redis.IntCmd
	if approx {
		cmd = r.c.XTrimMinIDApprox(ctx, stream, minID, 0)
	} else {
		cmd = r.c.XTrimMinID(ctx, stream, minID)
	}
	n, err := cmd.Result()
	if err != nil {
		return 0, fmt.Errorf("trim %s: %w", stream, err)
	}
	return n, nil
}

// MinIDFor returns the stream id below which entries are older than
// retention at now: stream ids are millisecond timestamps.
func MinIDFor(now time.Time, retention time.Duration) string {
	ms := now.Add(-retention).UnixMilli()
	if ms < 0 {
		ms = 0
	}
	return strconv.FormatInt(ms, 10) + "-0"
}

// IDTime returns the time encoded in a stream id ("<ms>-<seq>").
func IDTime(id string) (time.Time, bool) {
	ms, _, ok := strings.Cut(id, "-")
	if !ok {
		ms = id
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(n).UTC(), true
}

// CompareIDs compares two stream ids numerically: -1, 0 or +1.
func CompareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	switch {
	case am < bm:
		return -1
	case am > bm:
		return 1
	case as < bs:
		return -1
	case as > bs:
		return 1
	}
	return 0
}

func splitID(id string) (uint64, uint64) {
	ms, seq, _ := strings.Cut(id, "-")
	m, _ := strconv.ParseUint(ms, 10, 64)
	s, _ := strconv.ParseUint(seq, 10, 64)
	return m, s
}
