package eventbus

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/rdb"
)

// Live tail bounds.
const (
	// tailBlock is how long one read of Tail waits for new entries: the
	// most a cancelled Tail may take to return.
	tailBlock = time.Second
	// tailCount is the most entries one read of Tail returns.
	tailCount = 256
)

// TailFilter selects the events Inspector.Tail delivers.
type TailFilter struct {
	// Types are subscription patterns ("*", "prefix.*" or an exact type);
	// an event matching any of them is delivered. None: every type.
	Types []string
	// After is the position to start after: a position from TailStart
	// or NextTailPosition, or a stream id; "" starts at the end of the
	// streams, so that only entries written from now on are delivered.
	// With one partition a position is a stream id. With several it lists
	// each partition's last id as a comma-separated list of entry cursors
	// (BrowsedEvent.Cursor: "<stream id>" for the shared partition,
	// "<partition>-<stream id>" for the others); a partition it does not
	// list starts after its plain stream id (so a bare stream id applies
	// to every partition, by time), or after its greatest id when it has
	// none.
	After string
}

// Check validates f: a bad pattern or After is an error wrapping
// ErrInvalidFilter (a *FilterError naming "type" or "after").
func (f TailFilter) Check() error {
	for _, p := range f.Types {
		if err := validPattern(p); err != nil {
			return &FilterError{Field: "type", Reason: err.Error()}
		}
	}
	if f.After != "" {
		if _, err := parseTailPosition(f.After); err != nil {
			return &FilterError{Field: "after", Reason: err.Error()}
		}
	}
	return nil
}

// tailRef is one partition's entry of a tail position.
type tailRef struct{ name, id string }

// parseTailPosition splits a tail position into its entries.
func parseTailPosition(pos string) ([]tailRef, error) {
	var out []tailRef
	for part := range strings.SplitSeq(pos, ",") {
		name, id, ok := rdb.ParseRef(part)
		if !ok {
			return nil, errors.New("not a stream id (<ms>-<seq>) or a tail position")
		}
		out = append(out, tailRef{name, id})
	}
	return out, nil
}

// formatTailPosition joins the entries of a tail position.
func formatTailPosition(refs []tailRef) string {
	parts := make([]string, len(refs))
	for i, r := range refs {
		parts[i] = rdb.FormatRef(r.name, r.id)
	}
	return strings.Join(parts, ",")
}

// NextTailPosition is the tail position pos (TailFilter.After) advanced
// past it, an entry a Tail started at pos delivered: a Tail started at the
// result delivers what follows it in every partition. With one partition
// it is it.StreamID.
func NextTailPosition(pos string, it BrowsedEvent) string {
	refs, err := parseTailPosition(pos)
	if err != nil || len(refs) == 1 && refs[0].name == it.Partition {
		return it.Cursor()
	}
	for i, r := range refs {
		if r.name == it.Partition {
			refs[i].id = it.StreamID
			return formatTailPosition(refs)
		}
	}
	return formatTailPosition(append(refs, tailRef{it.Partition, it.StreamID}))
}

// tailStarts returns, for each partition, the id a Tail at pos starts
// after.
func tailStarts(k rdb.Keys, pos string) []string {
	refs, _ := parseTailPosition(pos)
	def, plain := "0-0", false
	for _, r := range refs {
		switch {
		case r.name == "":
			def, plain = r.id, true
		case !plain && rdb.CompareIDs(r.id, def) > 0:
			def = r.id
		}
	}
	out := make([]string, k.Partitions())
	for p := range out {
		out[p] = def
		name := k.PartitionName(p)
		for _, r := range refs {
			if r.name == name {
				out[p] = r.id
			}
		}
	}
	return out
}

// Match reports whether an entry that Tail delivered to an AllTenants
// tail without type patterns belongs to a tail of scope filtered by f.
// It is the rule of Inspector.Events: the entry's tenant is in scope and,
// with patterns, its type matches one; an entry that could not be decoded
// at all (Event nil) belongs only to AllTenants without patterns. It lets
// one reader fan out to many filtered clients.
func (f TailFilter) Match(scope Scope, it BrowsedEvent) bool {
	if it.Event == nil {
		return scope.All() && len(f.Types) == 0
	}
	if !scope.Includes(it.Event.TenantID) {
		return false
	}
	if len(f.Types) == 0 {
		return true
	}
	for _, p := range f.Types {
		if matchPattern(p, it.Event.Type) {
			return true
		}
	}
	return false
}

// TailStart is the position of the ends of the main streams: a Tail
// with After set to it delivers every entry written after this call.
// With one partition it is the id of the last entry of the main stream
// ("0-0" when it is empty); with several, each partition's last id (see
// TailFilter.After), read in one pipeline.
func (in *Inspector) TailStart(ctx context.Context) (string, error) {
	k := in.b.rdb.Keys()
	if k.Partitions() == 1 {
		id, err := in.b.rdb.LastID(ctx, k.Main())
		if err != nil {
			return "", wrapOp("tail", err)
		}
		return id, nil
	}
	streams := make([]string, k.Partitions())
	for p := range streams {
		streams[p] = k.MainPartition(p)
	}
	ids, err := in.b.rdb.LastIDs(ctx, streams)
	if err != nil {
		return "", wrapOp("tail", err)
	}
	refs := make([]tailRef, len(ids))
	for p, id := range ids {
		refs[p] = tailRef{k.PartitionName(p), id}
	}
	return formatTailPosition(refs), nil
}

// Tail calls fn with every new entry of the main streams in scope that
// matches f until ctx is cancelled (it then returns nil) or fn returns an
// error (returned as is). It follows every partition's main stream (and
// the shared one): in stream order within a partition, partitions
// interleaved as their entries arrive (BrowsedEvent.Partition names the
// partition). It reads with XREAD BLOCK and no consumer group, so it
// never acknowledges, claims or delays anything: tailing is invisible to
// consumers. On a single node one XREAD reads every partition; on a Redis
// Cluster one reader per partition does (each partition is one hash slot),
// feeding fn from the calling goroutine. Entries are decoded and filtered
// as by Events (invalid entries included, with their decode error).
// Without f.After it starts at the end of the streams. A Redis error ends
// it with that error (wrapping ErrUnavailable when Redis is unreachable):
// resume with f.After set to the position after the last entry fn saw
// (NextTailPosition; with one partition its StreamID). A cancelled Tail
// returns within about a second. A bad filter is an error wrapping
// ErrInvalidFilter; an invalid scope ErrInvalidScope.
func (in *Inspector) Tail(ctx context.Context, scope Scope, f TailFilter, fn func(BrowsedEvent) error) error {
	if err := scope.Validate(); err != nil {
		return err
	}
	if err := f.Check(); err != nil {
		return err
	}
	pos := f.After
	if pos == "" {
		var err error
		if pos, err = in.TailStart(ctx); err != nil {
			return ignoreCancel(ctx, err)
		}
	}
	k := in.b.rdb.Keys()
	starts := tailStarts(k, pos)
	deliver := func(p int, msgs []redis.XMessage) error {
		for _, m := range msgs {
			if it, ok := in.browsed(m, scope, f.Types); ok {
				it.Partition = k.PartitionName(p)
				if err := fn(it); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if !in.b.rdb.Cluster() || k.Partitions() == 1 {
		return in.tailAll(ctx, starts, deliver)
	}
	return in.tailEach(ctx, starts, deliver)
}

// tailAll follows every partition's main stream with one XREAD (a single
// node, or one partition).
func (in *Inspector) tailAll(ctx context.Context, starts []string, deliver func(int, []redis.XMessage) error) error {
	k := in.b.rdb.Keys()
	streams := make([]string, len(starts))
	part := make(map[string]int, len(starts))
	for p := range starts {
		streams[p] = k.MainPartition(p)
		part[streams[p]] = p
	}
	for ctx.Err() == nil {
		res, err := in.b.rdb.ReadAfterMany(ctx, streams, starts, tailCount, tailBlock)
		if err != nil {
			return ignoreCancel(ctx, wrapOp("tail", err))
		}
		for _, st := range res {
			p, ok := part[st.Stream]
			if !ok || len(st.Messages) == 0 {
				continue
			}
			starts[p] = st.Messages[len(st.Messages)-1].ID
			if err := deliver(p, st.Messages); err != nil {
				return err
			}
		}
	}
	return nil
}

// tailBatch is what one partition's reader read: entries, or the error
// that stopped it.
type tailBatch struct {
	part int
	msgs []redis.XMessage
	err  error
}

// tailEach follows each partition's main stream with a reader of its own
// (a Redis Cluster: one XREAD per hash slot). The readers hand their
// batches to this goroutine, which delivers them; they are stopped and
// waited for before it returns.
func (in *Inspector) tailEach(ctx context.Context, starts []string, deliver func(int, []redis.XMessage) error) error {
	k := in.b.rdb.Keys()
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	batches := make(chan tailBatch)
	for p, start := range starts {
		stream := k.MainPartition(p)
		wg.Go(func() {
			pos := start
			for rctx.Err() == nil {
				msgs, err := in.b.rdb.ReadAfter(rctx, stream, pos, tailCount, tailBlock)
				if err == nil && len(msgs) == 0 {
					continue
				}
				if err == nil {
					pos = msgs[len(msgs)-1].ID
				}
				select {
				case batches <- tailBatch{part: p, msgs: msgs, err: err}:
				case <-rctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		})
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case bt := <-batches:
			if bt.err != nil {
				return ignoreCancel(ctx, wrapOp("tail", bt.err))
			}
			if err := deliver(bt.part, bt.msgs); err != nil {
				return err
			}
		}
	}
}

// ignoreCancel is nil once ctx is cancelled (the error is then the
// cancellation's doing), err otherwise.
func ignoreCancel(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return err
}
