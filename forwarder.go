package eventbus

import (
	"context"
	"time"

	"github.com/hyvve/eventbus/internal/backoff"
	"github.com/hyvve/eventbus/internal/rdb"
)

// retryLoop forwards due retries to the retries streams every
// RetryPollInterval, partition by partition.
func (c *Consumer) retryLoop(ctx context.Context) {
	const limit = 100
	cfg := c.bus.cfg
	bo := backoff.Backoff{Min: c.cfg.RetryPollInterval, Max: maxReadBackoff}
	wait := c.cfg.RetryPollInterval
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = c.cfg.RetryPollInterval
	partitions:
		for p := range c.bus.rdb.Keys().Partitions() {
			for ctx.Err() == nil {
				now := time.Now()
				n, err := c.bus.rdb.ForwardDueRetries(ctx, cfg.Group, p, now, limit, rdb.MinIDFor(now, cfg.Retention.Main))
				if err != nil {
					wait = bo.Next() // Redis away: back off
					break partitions
				}
				bo.Reset()
				if n < limit {
					break
				}
			}
		}
	}
}
