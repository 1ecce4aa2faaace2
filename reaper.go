package eventbus

import (
	"context"
	"log/slog"
)

// removeDeadConsumers deletes consumers of the group that have been idle
// longer than DeadConsumerIdle, only when their heartbeat is missing or
// older than DeadConsumerIdle (Redis 7.0 counts idle from the last
// delivery, so a live consumer of a quiet stream looks idle) and they hold
// no pending entry.
func (c *Consumer) removeDeadConsumers(ctx context.Context) {
	cfg := c.bus.cfg
	consumers, err := c.bus.rdb.Consumers(ctx, c.bus.rdb.Keys().Main(), cfg.Group)
	if err != nil {
		return
	}
	for _, cs := range consumers {
		if cs.Name == c.cfg.Name || cs.Idle < c.cfg.DeadConsumerIdle {
			continue
		}
		removed, err := c.bus.rdb.DeleteIdleConsumer(ctx, c.bus.groupStreams(), cfg.Group, cs.Name, c.cfg.DeadConsumerIdle)
		if err == nil && removed {
			c.log.LogAttrs(ctx, slog.LevelInfo, "removed dead consumer", slog.String("consumer", cs.Name), slog.Duration("idle", cs.Idle))
		}
	}
}
