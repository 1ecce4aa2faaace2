package rdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Append is one event to write: its encoded envelope and, for a
// caller-supplied id, the event id to check for idempotency ("" skips the
// check).
type Append struct {
	Payload  []byte
	EventID  string
	TenantID string // scopes EventID
	// Part is the partition the event goes to (Keys.Partition): its main
	// stream and its idempotency key are that partition's.
	Part int
	// VerifyFrom, when not empty, marks EventID as an id the bus generated
	// (sent again after an unknown outcome): when its idempotency key is
	// absent, the main stream is searched from this stream id on for the
	// entry before anything is written (see publishChecked).
	VerifyFrom string
}

// Wait asks a write to be followed, on the same connection, by
// `WAIT Replicas Timeout`: the write is acknowledged only when that many
// replicas confirm it. Replicas 0 sends nothing more.
type Wait struct {
	Replicas int
	Timeout  time.Duration
}

// waitCmd queues WAIT on p (nil when w asks for nothing).
func (w Wait) queue(ctx context.Context, p redis.Pipeliner) *redis.IntCmd {
	if w.Replicas <= 0 {
		return nil
	}
	c := w.cmd(ctx)
	_ = p.Process(ctx, c) // queues; errors come with Exec
	return c
}

// cmd returns `WAIT Replicas <Timeout in ms>`.
func (w Wait) cmd(ctx context.Context) *redis.IntCmd {
	return redis.NewIntCmd(ctx, "wait", w.Replicas, max(w.Timeout.Milliseconds(), 1))
}

// check returns nil when the WAIT reply confirms w.Replicas, else a
// *NotReplicated.
func (w Wait) check(c *redis.IntCmd) error {
	if c == nil {
		return nil
	}
	n, err := c.Result()
	if err != nil {
		return &NotReplicated{Wanted: w.Replicas, Err: cause(err)}
	}
	if n < int64(w.Replicas) {
		return &NotReplicated{Replicas: int(n), Wanted: w.Replicas}
	}
	return nil
}

// VerifyCap is how many main-stream entries one verified event may read
// inside Redis before its outcome is declared still unknown.
const VerifyCap = 10000

// Appended is the outcome of one Append. Err is nil when the event was
// written (or was a duplicate); else ErrUnavailable (wrapped) or a reply
// error when nothing was written, or an *OutcomeUnknown.
type Appended struct {
	StreamID  string
	Duplicate bool // the id was published before; nothing was written
	Err       error
}

// noRetryString and noRetryCmd mark a write as never to be re-sent by
// go-redis (MaxRetries): a re-sent XADD or script whose first send went
// through writes the event twice. Embedding promotes the unexported
// methods of redis.Cmder.
type noRetryString struct{ *redis.StringCmd }

func (noRetryString) NoRetry() bool { return true }

type noRetryCmd struct{ *redis.Cmd }

func (noRetryCmd) NoRetry() bool { return true }

// xadd returns `XADD stream [MINID ~ minID] * event payload`: the entry
// with the envelope as its `event` field and, when minID is not empty, an
// inline trim by time. One trim per round trip is enough: writers pass
// minID to the first XADD of a batch only. (Built directly rather than
// through redis.XAddArgs: two allocations less on the publish path.)
func xadd(ctx context.Context, stream, minID string, payload []byte) *redis.StringCmd {
	args := make([]any, 0, 9)
	args = append(args, "xadd", stream)
	if minID != "" {
		args = append(args, "minid", "~", minID)
	}
	args = append(args, "*", FieldEvent, payload)
	return redis.NewStringCmd(ctx, args...)
}

// script returns an EVALSHA (or EVAL, when body is set) of publishChecked.
func script(ctx context.Context, body bool, keys []string, args []any) *redis.Cmd {
	all := make([]any, 0, 3+len(keys)+len(args))
	if body {
		all = append(all, "eval", publishCheckedSrc)
	} else {
		all = append(all, "evalsha", publishChecked.Hash())
	}
	all = append(all, len(keys))
	for _, k := range keys {
		all = append(all, k)
	}
	all = append(all, args...)
	return redis.NewCmd(ctx, all...)
}

// AppendEach writes independent events in one pipeline: plain XADDs for
// events without an idempotency id, the checked script for the others,
// each to its partition's main stream (Append.Part). Each event succeeds
// or fails on its own. No write is ever re-sent by go-redis; a missing
// reply is a failure, never a success. The first write of each partition
// trims that partition's stream to minID.
//
// With w.Replicas > 0 the pipeline ends with WAIT (every pipeline runs on
// one connection; on Redis Cluster, one pipeline per partition, in
// parallel, each on a connection to the master that owns the partition's
// slot): the events written get a *NotReplicated as their Err, StreamID
// kept, unless the replicas confirmed them.
func (r *RDB) AppendEach(ctx context.Context, minID string, windowMs int64, w Wait, items []Append) []Appended {
	out := make([]Appended, len(items))
	cc, cluster := r.c.(*redis.ClusterClient)
	if !cluster || w.Replicas <= 0 {
		r.appendEach(ctx, r.c, minID, windowMs, w, items, out)
		return out
	}
	one := true
	for _, it := range items[1:] {
		if it.Part != items[0].Part {
			one = false
			break
		}
	}
	if one {
		r.appendEachOn(ctx, cc, minID, windowMs, w, items, out)
		return out
	}
	groups := map[int][]int{}
	for i, it := range items {
		groups[it.Part] = append(groups[it.Part], i)
	}
	var wg sync.WaitGroup
	for _, idx := range groups {
		wg.Go(func() {
			sub := make([]Append, len(idx))
			for j, i := range idx {
				sub[j] = items[i]
			}
			res := make([]Appended, len(sub))
			r.appendEachOn(ctx, cc, minID, windowMs, w, sub, res)
			for j, i := range idx {
				out[i] = res[j]
			}
		})
	}
	wg.Wait()
	return out
}

// appendEachOn is appendEach for items of one partition, on a connection
// pinned to the Redis Cluster master that owns its slot (WAIT must follow
// the writes on their connection).
func (r *RDB) appendEachOn(ctx context.Context, cc *redis.ClusterClient, minID string, windowMs int64, w Wait, items []Append, out []Appended) {
	conn, err := r.nodeConn(ctx, cc, r.keys.Partition(items[0].Part).Main())
	if err != nil {
		for i := range out {
			out[i].Err = fmt.Errorf("append: %w", err)
		}
		return
	}
	defer conn.Close()
	r.appendEach(ctx, conn, minID, windowMs, w, items, out)
}

// appendEach is AppendEach on src: one pipeline (and one more for scripts
// the server did not know).
func (r *RDB) appendEach(ctx context.Context, src interface{ Pipeline() redis.Pipeliner }, minID string, windowMs int64, w Wait, items []Append, out []Appended) {
	cmds := make([]redis.Cmder, len(items))
	pipe := src.Pipeline()
	var trimmed []bool // by partition, when there are several
	if r.keys.Partitions() > 1 {
		trimmed = make([]bool, r.keys.Partitions())
	}
	first := true
	for i, it := range items {
		pk := r.keys.Partition(it.Part)
		trim := ""
		if trimmed == nil && first || trimmed != nil && !trimmed[it.Part] {
			trim = minID // the first write of each partition trims
		}
		first = false
		if trimmed != nil {
			trimmed[it.Part] = true
		}
		if it.EventID == "" {
			cmd := xadd(ctx, pk.Main(), trim, it.Payload)
			_ = pipe.Process(ctx, noRetryString{cmd}) // queues; errors come with Exec
			cmds[i] = cmd
		} else {
			keys, args := checkedArgs(pk, trim, windowMs, items[i:i+1])
			cmd := script(ctx, false, keys, args)
			_ = pipe.Process(ctx, noRetryCmd{cmd})
			cmds[i] = cmd
		}
	}
	wait := w.queue(ctx, pipe)
	_, execErr := pipe.Exec(ctx)

	var noscript []int
	for i, c := range cmds {
		if items[i].EventID != "" && isNoScript(c.Err()) {
			noscript = append(noscript, i)
			continue
		}
		out[i] = appendedFrom(c, execErr)
	}
	if wait != nil { // no closure on the default path
		w.mark(out, wait, func(i int) bool { return !slices.Contains(noscript, i) })
	}
	if len(noscript) > 0 {
		// First use on this server (or after SCRIPT FLUSH / restart): send
		// the body once with EVAL. NOSCRIPT means nothing ran.
		pipe := src.Pipeline()
		retry := make([]*redis.Cmd, len(noscript))
		for j, i := range noscript {
			keys, args := checkedArgs(r.keys.Partition(items[i].Part), minID, windowMs, items[i:i+1])
			retry[j] = script(ctx, true, keys, args) // each may trim: rare path
			_ = pipe.Process(ctx, noRetryCmd{retry[j]})
		}
		wait := w.queue(ctx, pipe)
		_, execErr := pipe.Exec(ctx)
		for j, i := range noscript {
			out[i] = appendedFrom(retry[j], execErr)
		}
		if wait != nil {
			w.mark(out, wait, func(i int) bool { return slices.Contains(noscript, i) })
		}
	}
}

// mark sets a *NotReplicated on every written result (in(i)) when wait
// does not confirm the replicas.
func (w Wait) mark(out []Appended, wait *redis.IntCmd, in func(int) bool) {
	err := w.check(wait)
	if err == nil {
		return
	}
	for i := range out {
		if in(i) && out[i].Err == nil {
			out[i].Err = err
		}
	}
}

// AppendAll writes events of partition part atomically: all or none,
// contiguous in the partition's main stream, results in order (every
// item's Part must be part). Without idempotency ids it is MULTI/EXEC of
// XADDs; with any, one script run. The error is ErrUnavailable (wrapped)
// or a reply error when nothing was written, or an *OutcomeUnknown.
//
// With w.Replicas > 0 the write is followed by WAIT on the same
// connection (on Redis Cluster, one to the master that owns stream's
// slot); when the replicas do not confirm it, the results (stream ids
// set) come back with a *NotReplicated error.
func (r *RDB) AppendAll(ctx context.Context, part int, minID string, windowMs int64, w Wait, items []Append) ([]Appended, error) {
	pk := r.keys.Partition(part)
	stream := pk.Main()
	if w.Replicas <= 0 {
		return appendAll(ctx, r.c, pk, minID, windowMs, items, nil)
	}
	var conn *redis.Conn
	switch c := r.c.(type) {
	case *redis.Client:
		conn = c.Conn() // carries c's hooks, the breaker's among them
	case *redis.ClusterClient:
		var err error
		if conn, err = r.nodeConn(ctx, c, stream); err != nil {
			return nil, fmt.Errorf("append batch: %w", err)
		}
	default:
		return nil, fmt.Errorf("append batch: %w: waiting for replicas needs a single-node, failover or cluster client, not %T", ErrUnavailable, r.c)
	}
	defer conn.Close()
	return appendAll(ctx, conn, pk, minID, windowMs, items, func() error {
		c := w.cmd(ctx)
		_ = conn.Process(ctx, c) // the error is c's
		return w.check(c)
	})
}

// nodeConn returns a connection pinned to the Redis Cluster master that
// owns key's slot, for a write that WAIT must follow on the same
// connection (WAIT sent through the cluster client could reach any node).
// The connection carries the node client's hooks, the node's breaker
// among them (installed here if the node client predates New), once; the
// cluster client's hook (ErrUnavailable marks, NOGROUP, slot-map reloads)
// does not apply to node clients and is added to the connection. The
// caller closes it. An error means nothing was sent.
func (r *RDB) nodeConn(ctx context.Context, cc *redis.ClusterClient, key string) (*redis.Conn, error) {
	node, err := cc.MasterForKey(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("find the master of %s: %w", key, wrapUnavailable(err))
	}
	r.h.nodeHook(node)
	conn := node.Conn()
	conn.AddHook(r.h)
	return conn, nil
}

// appendAll is AppendAll on c; wait, when not nil, runs WAIT after the
// write on the same connection and returns its *NotReplicated.
func appendAll(ctx context.Context, c cmdProcessor, pk PartitionKeys, minID string, windowMs int64, items []Append, wait func() error) ([]Appended, error) {
	stream := pk.Main()
	idem := false
	for _, it := range items {
		if it.EventID != "" {
			idem = true
			break
		}
	}
	out := make([]Appended, len(items))
	if !idem {
		cmds := make([]*redis.StringCmd, len(items))
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			trim := minID // the first XADD trims for the batch
			for i, it := range items {
				cmds[i] = xadd(ctx, stream, trim, it.Payload)
				_ = p.Process(ctx, noRetryString{cmds[i]})
				trim = ""
			}
			return nil
		})
		for i, c := range cmds {
			if err == nil {
				err = c.Err()
			}
			if err == nil && c.Val() == "" {
				err = errors.New("empty reply")
			}
			if err != nil {
				return nil, fmt.Errorf("append batch: %w", writeError(err))
			}
			out[i].StreamID = c.Val()
		}
		return out, waited(wait)
	}
	keys, args := checkedArgs(pk, minID, windowMs, items)
	cmd := script(ctx, false, keys, args)
	err := c.Process(ctx, noRetryCmd{cmd})
	if isNoScript(err) {
		cmd = script(ctx, true, keys, args)
		err = c.Process(ctx, noRetryCmd{cmd})
	}
	if err != nil {
		return nil, fmt.Errorf("append batch: %w", writeError(err))
	}
	res, ok := cmd.Val().([]any)
	if !ok || len(res) != len(items) {
		return nil, fmt.Errorf("append batch: %w", &OutcomeUnknown{Err: fmt.Errorf("script returned %v for %d events", cmd.Val(), len(items))})
	}
	for i, v := range res {
		if out[i], err = parseCheckedResult(v); err != nil {
			return nil, fmt.Errorf("append batch: %w", err)
		}
	}
	return out, waited(wait)
}

// cmdProcessor is what appendAll needs of a client or a connection.
type cmdProcessor interface {
	redis.Cmdable
	Process(ctx context.Context, cmd redis.Cmder) error
}

// waited runs wait (when not nil) and returns its error, wrapped.
func waited(wait func() error) error {
	if wait == nil {
		return nil
	}
	if err := wait(); err != nil {
		return fmt.Errorf("append batch: %w", err)
	}
	return nil
}

// checkedArgs returns the keys and arguments of publishChecked for items
// of partition pk.
func checkedArgs(pk PartitionKeys, minID string, windowMs int64, items []Append) ([]string, []any) {
	keys := []string{pk.Main()}
	args := make([]any, 0, 3+5*len(items))
	args = append(args, minID, strconv.FormatInt(windowMs, 10), verifyCapArg)
	for _, it := range items {
		switch {
		case it.EventID == "":
			args = append(args, "0", it.Payload, "", "", "")
		case it.VerifyFrom != "":
			keys = append(keys, pk.Idempotency(it.TenantID, it.EventID))
			args = append(args, "2", it.Payload, it.EventID, it.TenantID, it.VerifyFrom)
		default:
			keys = append(keys, pk.Idempotency(it.TenantID, it.EventID))
			args = append(args, "1", it.Payload, "", "", "")
		}
	}
	return keys, args
}

var verifyCapArg = strconv.Itoa(VerifyCap)

// appendedFrom reads the outcome of one write of a pipeline whose Exec
// returned execErr. A command without an error but without a reply either
// (go-redis leaves none when the connection could not be set up) failed
// with execErr.
func appendedFrom(c redis.Cmder, execErr error) Appended {
	fail := func(what string, err error) Appended {
		if err == nil {
			err = execErr
		}
		if err == nil {
			err = &OutcomeUnknown{Err: errors.New("no reply")}
		}
		return Appended{Err: fmt.Errorf("%s: %w", what, writeError(err))}
	}
	switch c := c.(type) {
	case *redis.StringCmd:
		if err := c.Err(); err != nil || c.Val() == "" {
			return fail("xadd", err)
		}
		return Appended{StreamID: c.Val()}
	case *redis.Cmd:
		if err := c.Err(); err != nil || c.Val() == nil {
			return fail("publish script", err)
		}
		res, ok := c.Val().([]any)
		if !ok || len(res) != 1 {
			return Appended{Err: fmt.Errorf("publish script: %w", &OutcomeUnknown{Err: fmt.Errorf("unexpected reply %v", c.Val())})}
		}
		a, err := parseCheckedResult(res[0])
		if err != nil {
			a.Err = fmt.Errorf("publish script: %w", err)
		}
		return a
	}
	return Appended{Err: fmt.Errorf("unexpected command %T", c)}
}

// errVerifyCap is the cause of the unknown outcome of a verified event
// whose search read VerifyCap entries without finding it.
var errVerifyCap = fmt.Errorf("the search for the earlier write read %d entries without reaching the end of the stream; nothing was written", VerifyCap)

func parseCheckedResult(v any) (Appended, error) {
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return Appended{}, &OutcomeUnknown{Err: fmt.Errorf("unexpected reply %v", v)}
	}
	id, ok1 := pair[0].(string)
	flag, ok2 := pair[1].(int64)
	switch {
	case !ok1 || !ok2:
		return Appended{}, &OutcomeUnknown{Err: fmt.Errorf("unexpected reply %v", v)}
	case flag == 2, flag == 3: // 3: another event of the batch hit the cap
		return Appended{}, &OutcomeUnknown{Err: errVerifyCap}
	case id == "":
		return Appended{}, &OutcomeUnknown{Err: fmt.Errorf("empty stream id in reply %v", v)}
	}
	return Appended{StreamID: id, Duplicate: flag == 1}, nil
}

func isNoScript(err error) bool {
	var rerr redis.Error
	return err != nil && errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "NOSCRIPT")
}
