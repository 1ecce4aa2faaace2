package eventbus

import (
	"context"
	"log/slog"
	"slices"

	"github.com/redis/go-redis/v9"
)

// removeDeadConsumers deletes consumers of the group that have been idle
// longer than DeadConsumerIdle, only when their heartbeat is missing or
// older than DeadConsumerIdle (Redis 7.0 counts idle from the last
// delivery, so a live consumer of a quiet stream looks idle) and they hold
// no pending entry. A consumer's idle time is its least over the main
// streams of every partition.
func (c *Consumer) removeDeadConsumers(ctx context.Context) {
	cfg := c.bus.cfg
	k := c.bus.rdb.Keys()
	var consumers []redis.XInfoConsumer
	for p := range k.Partitions() {
		cs, err := c.bus.rdb.Consumers(ctx, k.MainPartition(p), cfg.Group)
		if err != nil {
			return
		}
		consumers = mergeIdle(consumers, cs)
	}
	for _, cs := range consumers {
		if cs.Name == c.cfg.Name || cs.Idle < c.cfg.DeadConsumerIdle {
			continue
		}
		removed, err := c.bus.rdb.DeleteIdleConsumer(ctx, c.bus.slotStreams(), cfg.Group, cs.Name, c.cfg.DeadConsumerIdle)
		if err == nil && removed {
			c.log.LogAttrs(ctx, slog.LevelInfo, "removed dead consumer", slog.String("consumer", cs.Name), slog.Duration("idle", cs.Idle))
		}
	}
}

// mergeIdle adds the consumers of one more stream to all, keeping each
// consumer's least idle time.
func mergeIdle(all, more []redis.XInfoConsumer) []redis.XInfoConsumer {
	if all == nil {
		return more
	}
	for _, m := range more {
		i := slices.IndexFunc(all, func(a redis.XInfoConsumer) bool { return a.Name == m.Name })
		if i < 0 {
			all = append(all, m)
		} else if m.Idle < all[i].Idle {
			all[i].Idle = m.Idle
		}
	}
	return all
}
