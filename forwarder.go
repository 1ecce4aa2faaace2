package eventbus

import (
	"context"
	"time"

	"github.com/hyvve/eventbus/internal/backoff"
	"github.com/hyvve/eventbus/internal/rdb"
)

// retryLoop forwards due retries to the retries streams every
// RetryPollInterval, partition by partition. A partition whose Redis (on
// a Cluster, its master) does not answer is skipped until the next round,
// without holding up the others; while any fails, rounds back off up to
// maxForwardBackoff.
func (c *Consumer) retryLoop(ctx context.Context) {
	const limit = 100
	cfg := c.bus.cfg
	bo := backoff.Backoff{Min: c.cfg.RetryPollInterval, Max: max(c.cfg.RetryPollInterval, maxForwardBackoff)}
	wait := c.cfg.RetryPollInterval
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		failed := false
		for p := range c.bus.rdb.Keys().Partitions() {
			for ctx.Err() == nil {
				now := time.Now()
				n, err := c.bus.rdb.ForwardDueRetries(ctx, cfg.Group, p, now, limit, rdb.MinIDFor(now, cfg.Retention.Main))
				if err != nil {
					failed = true // Redis away for this partition: the next one
					break
				}
				if n < limit {
					break
				}
			}
		}
		if failed {
			wait = bo.Next()
		} else {
			bo.Reset()
			wait = c.cfg.RetryPollInterval
		}
	}
}

// maxForwardBackoff is the longest wait between two forwarding rounds
// while Redis (or one partition's master) does not answer: retries due
// during an outage are forwarded within it of the recovery.
const maxForwardBackoff = 5 * time.Second
