package rdb

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// PendingByConsumer counts, per consumer, the entries of group's pending
// lists over streams, with one XPENDING summary per stream in one round
// trip (constant cost: Redis keeps the counts). Each command names one
// stream, so on a Redis Cluster the pipeline goes to each stream's master
// (one round trip per node) and never spans slots. A stream without the
// group (not set up yet) counts nothing.
func (r *RDB) PendingByConsumer(ctx context.Context, streams []string, group string) (map[string]int64, error) {
	cmds := make([]*redis.XPendingCmd, len(streams))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range streams {
			cmds[i] = p.XPending(ctx, s, group)
		}
		return nil
	})
	if err != nil && !IsNoGroup(err) {
		return nil, fmt.Errorf("xpending of group %s: %w", group, err)
	}
	out := map[string]int64{}
	for i, c := range cmds {
		v, err := c.Result()
		switch {
		case IsNoGroup(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("xpending %s: %w", streams[i], err)
		}
		for name, n := range v.Consumers {
			out[name] += n
		}
	}
	return out, nil
}
