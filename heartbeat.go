package eventbus

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"
)

// maxHeartbeatInterval caps the time between two heartbeats.
const maxHeartbeatInterval = 5 * time.Second

// heartbeatInterval is how often a running consumer refreshes its entry in
// the group's registry: a quarter of DeadConsumerIdle, at most 5 s.
func (c *Consumer) heartbeatInterval() time.Duration {
	return max(min(c.cfg.DeadConsumerIdle/4, maxHeartbeatInterval), 10*time.Millisecond)
}

// beat writes this consumer's heartbeat and handler names once.
func (c *Consumer) beat(ctx context.Context) error {
	names := make([]string, 0, len(c.subs))
	for _, s := range c.subs {
		names = append(names, s.name)
	}
	handlers, _ := json.Marshal(names)
	// The registry outlives the slowest heartbeat of the group by far; it
	// goes only when no consumer of the group runs any more.
	keep := max(2*c.cfg.DeadConsumerIdle, time.Minute)
	return c.bus.rdb.Heartbeat(ctx, c.bus.cfg.Group, c.cfg.Name, handlers, keep)
}

// heartbeatLoop refreshes the heartbeat until stop is closed, then removes
// it: a consumer that stopped is dead for the group (its pending entries,
// if any, are claimed by others after ClaimIdle).
func (c *Consumer) heartbeatLoop(stop <-chan struct{}) {
	t := time.NewTicker(c.heartbeatInterval())
	defer t.Stop()
	for {
		select {
		case <-stop:
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := c.bus.rdb.RemoveHeartbeat(ctx, c.bus.cfg.Group, c.cfg.Name); err != nil {
				c.log.LogAttrs(ctx, slog.LevelWarn, "could not remove heartbeat", slog.String("error", err.Error()))
			}
			return
		case <-t.C:
		}
		if err := c.beat(c.handlerCtx); err != nil && c.handlerCtx.Err() == nil {
			c.log.LogAttrs(context.Background(), slog.LevelWarn, "heartbeat failed", slog.String("error", err.Error()))
		}
	}
}
