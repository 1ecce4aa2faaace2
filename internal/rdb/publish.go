package rdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Append is one event to write: its encoded envelope and, for a
// caller-supplied id, the event id to check for idempotency ("" skips the
// check).
type Append struct {
	Payload  []byte
	EventID  string
	TenantID string // scopes EventID
}

// Appended is the outcome of one Append.
type Appended struct {
	StreamID  string
	Duplicate bool // the id was published before; nothing was written
	Err       error
}

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
	args = append(args, "*", "event", payload)
	return redis.NewStringCmd(ctx, args...)
}

// AppendEach writes independent events in one pipeline: plain XADDs for
// events without an idempotency id, the idempotent script for the others.
// Each event succeeds or fails on its own.
func (r *RDB) AppendEach(ctx context.Context, stream, minID string, windowMs int64, items []Append) []Appended {
	out := make([]Appended, len(items))
	cmds := make([]redis.Cmder, len(items))
	pipe := r.c.Pipeline()
	trim := minID // the first write of the pipeline trims
	for i, it := range items {
		if it.EventID == "" {
			cmd := xadd(ctx, stream, trim, it.Payload)
			_ = pipe.Process(ctx, cmd) // queues; errors come with Exec
			cmds[i] = cmd
		} else {
			keys, args := idempotentArgs(r.keys, stream, trim, windowMs, items[i:i+1])
			cmds[i] = publishIdempotent.EvalSha(ctx, pipe, keys, args...)
		}
		trim = ""
	}
	_, _ = pipe.Exec(ctx)

	var noscript []int
	for i, c := range cmds {
		if items[i].EventID != "" && isNoScript(c.Err()) {
			noscript = append(noscript, i)
			continue
		}
		out[i] = appendedFrom(c)
	}
	if len(noscript) > 0 {
		// First use on this server (or after SCRIPT FLUSH / restart): send
		// the body once with EVAL.
		pipe := r.c.Pipeline()
		retry := make([]*redis.Cmd, len(noscript))
		for j, i := range noscript {
			keys, args := idempotentArgs(r.keys, stream, minID, windowMs, items[i:i+1])
			retry[j] = publishIdempotent.Eval(ctx, pipe, keys, args...) // each may trim: rare path
		}
		_, _ = pipe.Exec(ctx)
		for j, i := range noscript {
			out[i] = appendedFrom(retry[j])
		}
	}
	return out
}

// AppendAll writes events atomically: all or none, contiguous in the
// stream, results in order. Without idempotency ids it is MULTI/EXEC of
// XADDs; with any, one script run.
func (r *RDB) AppendAll(ctx context.Context, stream, minID string, windowMs int64, items []Append) ([]Appended, error) {
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
		_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			trim := minID // the first XADD trims for the batch
			for i, it := range items {
				cmds[i] = xadd(ctx, stream, trim, it.Payload)
				_ = p.Process(ctx, cmds[i])
				trim = ""
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("append batch: %w", err)
		}
		for i, c := range cmds {
			out[i].StreamID = c.Val()
		}
		return out, nil
	}
	keys, args := idempotentArgs(r.keys, stream, minID, windowMs, items)
	res, err := publishIdempotent.Run(ctx, r.c, keys, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("append batch: %w", err)
	}
	if len(res) != len(items) {
		return nil, fmt.Errorf("append batch: script returned %d results for %d events", len(res), len(items))
	}
	for i, v := range res {
		if out[i], err = parseIdempotentResult(v); err != nil {
			return nil, fmt.Errorf("append batch: %w", err)
		}
	}
	return out, nil
}

func idempotentArgs(k Keys, stream, minID string, windowMs int64, items []Append) ([]string, []any) {
	keys := []string{stream}
	args := make([]any, 0, 2+2*len(items))
	args = append(args, minID, strconv.FormatInt(windowMs, 10))
	for _, it := range items {
		if it.EventID != "" {
			keys = append(keys, k.Idempotency(it.TenantID, it.EventID))
			args = append(args, "1", it.Payload)
		} else {
			args = append(args, "0", it.Payload)
		}
	}
	return keys, args
}

func appendedFrom(c redis.Cmder) Appended {
	switch c := c.(type) {
	case *redis.StringCmd:
		if err := c.Err(); err != nil {
			return Appended{Err: fmt.Errorf("xadd: %w", err)}
		}
		return Appended{StreamID: c.Val()}
	case *redis.Cmd:
		if err := c.Err(); err != nil {
			return Appended{Err: fmt.Errorf("publish script: %w", err)}
		}
		res, ok := c.Val().([]any)
		if !ok || len(res) != 1 {
			return Appended{Err: fmt.Errorf("publish script: unexpected reply %v", c.Val())}
		}
		a, err := parseIdempotentResult(res[0])
		if err != nil {
			a.Err = fmt.Errorf("publish script: %w", err)
		}
		return a
	}
	return Appended{Err: fmt.Errorf("unexpected command %T", c)}
}

func parseIdempotentResult(v any) (Appended, error) {
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return Appended{}, fmt.Errorf("unexpected reply %v", v)
	}
	id, ok1 := pair[0].(string)
	dup, ok2 := pair[1].(int64)
	if !ok1 || !ok2 {
		return Appended{}, fmt.Errorf("unexpected reply %v", v)
	}
	return Appended{StreamID: id, Duplicate: dup == 1}, nil
}

func isNoScript(err error) bool {
	var rerr redis.Error
	return err != nil && errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "NOSCRIPT")
}
