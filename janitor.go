package eventbus

import (
	"context"
	"log/slog"
	"time"

	"github.com/hyvve/eventbus/internal/rdb"
)

// TrimResult counts the entries one retention pass removed per stream
// (Main and Retries: over every partition).
type TrimResult struct {
	Main, DLQ, Replay, Retries, Audit int64
}

// Trim enforces retention once on every stream: entries older than the
// stream's retention are removed. Main and replay are trimmed with
// MINID ~ (whole macro nodes: cheap, may keep a few entries slightly past
// retention until the next pass); the DLQ and the audit log are trimmed
// exactly. The DLQ is trimmed in chunks that remove each entry's DLQ index
// members in the same step and count the entries in the DLQ counters
// (reported as trimmedByRetention), until no entry older than its
// retention is left. The janitor started by Run calls it every
// JanitorInterval.
func (b *Bus) Trim(ctx context.Context) (TrimResult, error) {
	now := time.Now()
	k := b.rdb.Keys()
	var res TrimResult
	var err error
	for p := range k.Partitions() {
		n, err := b.rdb.TrimMinID(ctx, k.MainPartition(p), rdb.MinIDFor(now, b.cfg.Retention.Main), true)
		res.Main += n
		if err != nil {
			return res, wrapOp("trim", err)
		}
	}
	dlqMin := rdb.MinIDFor(now, b.cfg.Retention.DLQ)
	for p := range k.Partitions() {
		for {
			n, err := b.rdb.TrimDLQ(ctx, p, dlqMin)
			res.DLQ += n
			if err != nil {
				return res, wrapOp("trim", err)
			}
			if n < rdb.DLQTrimChunk {
				break
			}
		}
	}
	if res.Replay, err = b.rdb.TrimMinID(ctx, k.Replay(), rdb.MinIDFor(now, b.cfg.Retention.Replay), true); err != nil {
		return res, wrapOp("trim", err)
	}
	// Retries forwarded long ago and still unhandled are as precious as
	// main entries: they keep the main stream's retention.
	for p := range k.Partitions() {
		n, err := b.rdb.TrimMinID(ctx, k.Partition(p).Retries(b.cfg.Group), rdb.MinIDFor(now, b.cfg.Retention.Main), true)
		res.Retries += n
		if err != nil {
			return res, wrapOp("trim", err)
		}
	}
	if res.Audit, err = b.rdb.TrimMinID(ctx, k.Audit(), rdb.MinIDFor(now, b.cfg.Retention.Audit), false); err != nil {
		return res, wrapOp("trim", err)
	}
	return res, nil
}

// janitor enforces retention periodically, so that idle streams (which get
// no trimming writes) are trimmed too.
type janitor struct {
	b *Bus
}

func newJanitor(b *Bus) *janitor { return &janitor{b: b} }

// run trims every JanitorInterval until ctx is cancelled.
func (j *janitor) run(ctx context.Context) {
	t := time.NewTicker(j.b.cfg.JanitorInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, err := j.b.Trim(ctx)
		if err != nil {
			if ctx.Err() == nil {
				j.b.log.LogAttrs(ctx, slog.LevelWarn, "retention trim failed", slog.String("error", err.Error()))
			}
			continue
		}
		if res.Main+res.DLQ+res.Replay+res.Retries+res.Audit > 0 {
			j.b.log.LogAttrs(ctx, slog.LevelInfo, "retention trimmed",
				slog.Int64("main", res.Main), slog.Int64("dlq", res.DLQ), slog.Int64("replay", res.Replay),
				slog.Int64("audit", res.Audit))
		}
	}
}
