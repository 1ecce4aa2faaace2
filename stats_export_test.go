package eventbus

import "context"

// DisableStats stops b counting stats: the "off" side of the stats
// benchmark. Call it before b publishes.
func DisableStats(b *Bus) { b.stats = nil }

// FlushStats adds b's stats counts to Redis now.
func FlushStats(ctx context.Context, b *Bus) error { return b.stats.flush(ctx) }
