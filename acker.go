package eventbus

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hyvve/eventbus/internal/backoff"
)

// maxAckBatch caps one XACK.
const maxAckBatch = 1000

// acker acknowledges fully handled entries in batches. Workers add entries
// and go on at once; the flush loop sends everything added meanwhile in
// one round trip per partition (XACK, or MULTI/EXEC when status hashes go
// too: a partition's streams and status keys share its hash slot in the
// cluster layout), and retries while Redis is away. An entry whose ack is
// lost (crash before the flush) stays pending and is redelivered: at
// least once.
type acker struct {
	c *Consumer

	mu      sync.Mutex
	pending []ackItem
	wake    chan struct{} // capacity 1

	parts []ackGroup // the flush's batch by partition, reused (flush loop only)
}

// ackGroup is one partition's share of a flush.
type ackGroup struct {
	ids  map[string][]string // stream -> ids
	keys []string            // status keys to delete
}

func newAcker(c *Consumer) *acker { return &acker{c: c, wake: make(chan struct{}, 1)} }

// add queues an acknowledgement. It never blocks.
func (a *acker) add(it ackItem) {
	a.mu.Lock()
	a.pending = append(a.pending, it)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// finalFlushTimeout bounds the last flush at shutdown.
const finalFlushTimeout = 5 * time.Second

// run flushes until stop is closed, then flushes what is left for at most
// finalFlushTimeout.
func (a *acker) run(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		time.AfterFunc(finalFlushTimeout, cancel)
	}()
	for {
		select {
		case <-a.wake:
			a.flush(ctx)
		case <-stop:
			a.flush(ctx)
			return
		}
	}
}

// flush sends every queued ack, retrying with backoff while Redis is
// away, until the queue is empty or ctx ends.
func (a *acker) flush(ctx context.Context) {
	bo := backoff.Backoff{Min: 50 * time.Millisecond, Max: 5 * time.Second}
	for {
		a.mu.Lock()
		n := min(len(a.pending), maxAckBatch)
		batch := a.pending[:n:n]
		a.mu.Unlock()
		if n == 0 {
			return
		}
		if err := a.send(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return // shutting down: unacknowledged entries stay pending
			}
			a.c.log.LogAttrs(ctx, slog.LevelWarn, "ack failed, retrying", slog.Int("entries", n), slog.String("error", err.Error()))
			if !bo.Sleep(ctx.Done()) {
				return
			}
			continue
		}
		bo.Reset()
		a.c.acked.Add(int64(n))
		a.mu.Lock()
		a.pending = a.pending[n:]
		a.mu.Unlock()
	}
}

// send acknowledges batch: one Ack (one atomic step) per partition on a
// Redis Cluster, the partitions in parallel; one Ack for all on a single
// node (no slot rule there).
func (a *acker) send(ctx context.Context, batch []ackItem) error {
	cluster := a.c.bus.rdb.Cluster()
	if a.parts == nil {
		n := 1
		if cluster {
			n = a.c.bus.rdb.Keys().Partitions()
		}
		a.parts = make([]ackGroup, n)
	}
	for i := range a.parts {
		a.parts[i] = ackGroup{}
	}
	for _, it := range batch {
		g := &a.parts[0]
		if cluster {
			g = &a.parts[it.part]
		}
		if g.ids == nil {
			g.ids = map[string][]string{}
		}
		g.ids[it.stream] = append(g.ids[it.stream], it.id)
		if it.statusKey != "" {
			g.keys = append(g.keys, it.statusKey)
		}
	}
	var groups []ackGroup
	for _, g := range a.parts {
		if g.ids != nil {
			groups = append(groups, g)
		}
	}
	if len(groups) == 1 {
		return a.c.bus.rdb.Ack(ctx, a.c.bus.cfg.Group, groups[0].ids, groups[0].keys)
	}
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Go(func() { errs[i] = a.c.bus.rdb.Ack(ctx, a.c.bus.cfg.Group, g.ids, g.keys) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

type ackItem struct {
	part       int // the partition of stream
	stream, id string
	statusKey  string // "" when the event has no status hash
}

// ack queues the acknowledgement of a fully handled entry of partition
// part.
func (c *Consumer) ack(part int, stream, id, statusKey string) {
	c.acks.add(ackItem{part: part, stream: stream, id: id, statusKey: statusKey})
}
