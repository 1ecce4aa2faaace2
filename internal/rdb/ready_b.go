package rdb

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// GroupReady reports in one round trip (a pipelined EXISTS and XINFO
// GROUPS) whether every stream of streams exists and stream has group.
// A missing stream or group is (false, nil); an error means Redis did not
// answer the check.
func (r *RDB) GroupReady(ctx context.Context, streams []string, stream, group string) (bool, error) {
	pipe := r.c.Pipeline()
	var exists []*redis.IntCmd
	if r.Cluster() { // a multi-key EXISTS cannot span slots
		for _, s := range streams {
			exists = append(exists, pipe.Exists(ctx, s))
		}
	} else {
		exists = append(exists, pipe.Exists(ctx, streams...))
	}
	groups := pipe.XInfoGroups(ctx, stream)
	_, execErr := pipe.Exec(ctx)
	var n int64
	for _, e := range exists {
		if err := e.Err(); err != nil {
			return false, fmt.Errorf("ready check: %w", err)
		}
		n += e.Val()
	}
	if err := groups.Err(); err != nil {
		if isNoSuchKey(err) {
			return false, nil
		}
		return false, fmt.Errorf("ready check: %w", err)
	}
	if execErr != nil {
		// The pipeline failed without marking a command (go-redis does
		// that when the connection itself is refused): no answer.
		return false, fmt.Errorf("ready check: %w", execErr)
	}
	if n < int64(len(streams)) {
		return false, nil
	}
	for _, g := range groups.Val() {
		if g.Name == group {
			return true, nil
		}
	}
	return false, nil
}
