package rdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// LastID is the id of the last entry of stream, "0-0" when the stream is
// empty or missing: a live tail that reads after it sees every entry
// written from now on (XREAD from "$", made explicit so that a read that
// times out cannot skip the entries written before the next one).
func (r *RDB) LastID(ctx context.Context, stream string) (string, error) {
	msgs, err := r.c.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("xrevrange %s: %w", stream, err)
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// ReadAfter reads up to count entries of stream written after the id
// after, waiting up to block for the first one (XREAD BLOCK, no consumer
// group: nothing is acknowledged, claimed or recorded). It returns nil,
// nil when nothing arrived in time. block must be positive: a block of 0
// would wait for ever.
func (r *RDB) ReadAfter(ctx context.Context, stream, after string, count int64, block time.Duration) ([]redis.XMessage, error) {
	if block <= 0 {
		return nil, fmt.Errorf("xread %s: block %v is not positive", stream, block)
	}
	res, err := r.c.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, after}, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("xread %s: %w", stream, err)
	}
	if len(res) == 0 {
		return nil, nil
	}
	return res[0].Messages, nil
}

// LastIDs is LastID of each of streams, in one pipeline (on a Redis
// Cluster, one per node).
func (r *RDB) LastIDs(ctx context.Context, streams []string) ([]string, error) {
	cmds := make([]*redis.XMessageSliceCmd, len(streams))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range streams {
			cmds[i] = p.XRevRangeN(ctx, s, "+", "-", 1)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("xrevrange: %w", err)
	}
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = "0-0"
		if v := c.Val(); len(v) > 0 {
			out[i] = v[0].ID
		}
	}
	return out, nil
}

// ReadAfterMany is ReadAfter over several streams in one XREAD (one hash
// slot on a Redis Cluster): up to count entries of each streams[i]
// written after afters[i]. It returns nil, nil when nothing arrived in
// time.
func (r *RDB) ReadAfterMany(ctx context.Context, streams, afters []string, count int64, block time.Duration) ([]redis.XStream, error) {
	if block <= 0 {
		return nil, fmt.Errorf("xread: block %v is not positive", block)
	}
	args := make([]string, 0, 2*len(streams))
	args = append(args, streams...)
	args = append(args, afters...)
	res, err := r.c.XRead(ctx, &redis.XReadArgs{Streams: args, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("xread: %w", err)
	}
	return res, nil
}
