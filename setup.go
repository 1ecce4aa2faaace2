package eventbus

import (
	"context"
	"log/slog"
	"time"

	"github.com/hyvve/eventbus/internal/backoff"
)

// setupCheckInterval is how often the set-up loop checks that the streams
// still exist (Redis restarted without persistence, or flushed).
const setupCheckInterval = 5 * time.Second

// SetUp creates the consumer group on the main, DLQ and replay streams
// and on the group's retries stream (XGROUP CREATE ... 0 MKSTREAM), for
// every partition. An existing group counts as success, so
// any number of instances may run it at once. Run calls it and retries
// with backoff; call it directly to set up before Run.
func (b *Bus) SetUp(ctx context.Context) error {
	for _, stream := range b.groupStreams() {
		created, err := b.rdb.CreateGroup(ctx, stream, b.cfg.Group)
		if err != nil {
			b.setUp.Store(false)
			return wrapOp("set up", err)
		}
		b.log.LogAttrs(ctx, slog.LevelInfo, "consumer group ready",
			slog.String("stream", stream), slog.String("group", b.cfg.Group), slog.Bool("created", created))
	}
	b.setUp.Store(true)
	return nil
}

// setupLoop runs set-up until it succeeds, then watches for the streams to
// vanish (or a NOGROUP reply) and sets up again.
func (b *Bus) setupLoop(ctx context.Context) {
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	tick := time.NewTicker(setupCheckInterval)
	defer tick.Stop()
	for ctx.Err() == nil {
		if !b.setUp.Load() {
			if err := b.SetUp(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				b.log.LogAttrs(ctx, slog.LevelWarn, "set-up failed, retrying", slog.String("error", err.Error()))
				bo.Sleep(ctx.Done())
				continue
			}
			bo.Reset()
		}
		select {
		case <-ctx.Done():
			return
		case <-b.resetup:
			b.log.LogAttrs(ctx, slog.LevelWarn, "consumer group missing, setting up again")
			b.setUp.Store(false)
		case <-tick.C:
			streams := b.groupStreams()
			n, err := b.rdb.CountExisting(ctx, streams...)
			if err == nil && n < int64(len(streams)) {
				b.log.LogAttrs(ctx, slog.LevelWarn, "streams missing, setting up again",
					slog.Int64("existing", n), slog.Int("expected", len(streams)))
				b.setUp.Store(false)
			}
		}
	}
}

// groupStreams lists every stream the group reads or holds: every
// partition's main stream, every partition's DLQ, the replay stream and
// every partition's retries stream of the group (with one partition:
// main, DLQ, replay, retries).
func (b *Bus) groupStreams() []string {
	k := b.rdb.Keys()
	var out []string
	for p := range k.Partitions() {
		out = append(out, k.MainPartition(p))
	}
	for p := range k.Partitions() {
		out = append(out, k.Partition(p).DLQ())
	}
	out = append(out, k.Replay())
	for p := range k.Partitions() {
		out = append(out, k.Partition(p).Retries(b.cfg.Group))
	}
	return out
}

// slotStreams returns groupStreams as the sets that one atomic step may
// touch: all of them on a single node, one set per partition on a Cluster.
func (b *Bus) slotStreams() [][]string {
	if !b.rdb.Cluster() {
		return [][]string{b.groupStreams()}
	}
	k := b.rdb.Keys()
	out := make([][]string, k.Partitions())
	for p := range out {
		out[p] = b.partitionStreams(p)
	}
	return out
}

// partitionStreams lists the streams of groupStreams that belong to
// partition p (one hash slot on a Cluster).
func (b *Bus) partitionStreams(p int) []string {
	k := b.rdb.Keys()
	pk := k.Partition(p)
	out := []string{pk.Main(), pk.DLQ(), pk.Retries(b.cfg.Group)}
	if p == k.SharedPartition() {
		out = append(out, k.Replay())
	}
	return out
}
