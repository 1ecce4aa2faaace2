package eventbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/hyvve/eventbus/internal/rdb"
)

// Published tells where a published event went.
type Published struct {
	// ID is the event id (generated when the event had none).
	ID string `json:"id"`
	// StreamID is the id of the entry in the main stream.
	StreamID string `json:"streamId"`
	// Duplicate is true when the event id was already published within the
	// idempotency window: nothing was written and StreamID is the first
	// entry's.
	Duplicate bool `json:"-"`
}

// Publish validates ev, fills in its defaults (id, timestamp, correlation
// id, source, version) and appends it to the main stream, trimming the
// stream by time in the same command.
//
// An event with a caller-supplied id is idempotent: if that id was
// published within Config.IdempotencyWindow, nothing is written and the
// first stream id is returned with Duplicate set. The check and the write
// are one atomic step. Events whose id the bus generates skip the check.
//
// Concurrent calls are coalesced into pipelines: while one round trip is
// in flight, the calls that arrive meanwhile queue up and go together in
// the next one. A lone caller is sent at once, never delayed by a linger.
//
// Publish takes at most Config.PublishTimeout (ctx may end it sooner),
// time queued behind other publishes included. The write is never re-sent
// automatically (a re-sent write could apply twice).
//
// Errors tell whether the event was written (see docs/errors.md):
//   - not written: a *ValidationError (errors.Is ErrInvalidEvent, and
//     ErrEventTooLarge for size); ErrUnavailable (Redis unreachable, or
//     refusing this client: wrong password, bad database number; or the
//     event could not be sent within the timeout); ctx's error when ctx
//     ended before the event was sent.
//   - unknown: an *OutcomeUnknownError (errors.Is ErrOutcomeUnknown) when
//     the write was sent and no reply came in time. It carries the event
//     id, generated or not: publishing the event again with that id is
//     deduplicated.
//
// Publish starts a producer span (README, "Tracing") and writes its trace
// context into the event's TraceContext.
func (b *Bus) Publish(ctx context.Context, ev Event) (_ Published, err error) {
	span, err := startPublishSpan(ctx, &ev, nil)
	var p Published
	defer func() { b.endPublishSpan(span, &ev, nil, p, err) }()
	if err != nil {
		return Published{}, err
	}
	payload, generated, err := prepare(&ev, time.Now(), b.cfg.MaxEventSize)
	if err != nil {
		return Published{}, err
	}
	part := 0
	if b.rdb.Keys().WritePartitions() > 1 {
		if part, err = b.partitionOf(ev); err != nil {
			return Published{}, err
		}
	}
	item := pubItem{Append: rdb.Append{Payload: payload, TenantID: ev.TenantID, Part: part}, typ: ev.Type}
	if !generated {
		item.EventID = ev.ID
		item.VerifyFrom = verifyFrom(ev.ID)
	}
	if err := ctx.Err(); err != nil {
		return Published{}, wrapOp("publish", err)
	}
	req := newCall[pubItem, rdb.Appended](item)
	req.deadline = time.Now().Add(b.cfg.PublishTimeout)
	err = b.pub.do(ctx, req)
	b.met.publishCalled(item.typ, req.deadline.Add(-b.cfg.PublishTimeout), err)
	var sid string
	if err == nil { // else the leader may still be writing req.out
		err, sid = req.out.Err, req.out.StreamID
	}
	if nr := notReplicated(err, ev.TenantID, []string{ev.ID}, []string{sid}); nr != nil {
		return Published{}, wrapOp("publish", nr)
	}
	if err != nil {
		return Published{}, wrapOp("publish", b.publishFailure(ctx, ev.TenantID, []string{ev.ID}, err))
	}
	p = Published{ID: ev.ID, StreamID: req.out.StreamID, Duplicate: req.out.Duplicate}
	b.logPublished(ctx, &ev, p)
	return p, nil
}

// PublishBatch publishes events atomically: every event is validated
// first (a *ValidationError carries the index of the first bad one and
// nothing is written); then all are written or none, contiguous in the
// main stream, and the results come back in order.
//
// With Config.Partitions > 1 a batch is atomic per partition: the events
// of one partition are written all or none, contiguous in its stream;
// a batch whose events go to several partitions (several tenants, with
// the default Partitioner) is one such write per partition, in parallel.
// When some of those writes fail and others succeed, the error is a
// *PartialBatchError telling each event's outcome. Events with
// caller-supplied ids are idempotent as in Publish: a repeated id writes
// nothing and returns the first stream id.
//
// The timeout and the errors are Publish's; an *OutcomeUnknownError
// carries the ids of every event of the batch (TenantID is their tenant,
// "" when they have several): publishing the same batch again with those
// ids is deduplicated event by event.
//
// The batch is one producer span (README, "Tracing") whose trace context
// every event carries.
func (b *Bus) PublishBatch(ctx context.Context, events []Event) (_ []Published, err error) {
	if len(events) == 0 {
		return nil, nil
	}
	now := time.Now()
	items := make([]rdb.Append, len(events))
	evs := make([]Event, len(events))
	copy(evs, events)
	span, err := startPublishSpan(ctx, &evs[0], evs)
	defer func() { b.endPublishSpan(span, &evs[0], evs, Published{}, err) }()
	if err != nil {
		return nil, err
	}
	for i := range evs {
		payload, generated, err := prepare(&evs[i], now, b.cfg.MaxEventSize)
		if err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) {
				ve.Index = i
			}
			return nil, err
		}
		part, err := b.partition(&evs[i])
		if err != nil {
			return nil, err
		}
		items[i].Payload, items[i].TenantID, items[i].Part = payload, evs[i].TenantID, part
		if !generated {
			items[i].EventID = evs[i].ID
			items[i].VerifyFrom = verifyFrom(evs[i].ID)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, wrapOp("publish batch", err)
	}
	groups := b.partitionGroups(items)
	if len(groups) == 1 {
		res, err := b.appendAll(ctx, items[0].Part, items, evs)
		if err != nil {
			return nil, wrapOp("publish batch", b.batchFailure(ctx, evs, res, err))
		}
		return b.batchPublished(ctx, evs, res), nil
	}
	return b.publishAcross(ctx, groups, items, evs)
}

// publishAcross writes a batch whose events go to several partitions:
// one atomic write per partition, all in parallel. When every write
// fails the error is the first failure's (an unknown outcome first), for
// every event of the batch; when some fail, a *PartialBatchError tells
// each event's outcome.
func (b *Bus) publishAcross(ctx context.Context, groups [][]int, items []rdb.Append, evs []Event) ([]Published, error) {
	out := make([]Published, len(evs))
	errs := make([]error, len(evs))
	failed := make([]error, len(groups)) // each group's write error, as returned by appendAll
	var wg sync.WaitGroup
	for g, idx := range groups {
		wg.Go(func() {
			sub, subEvs := make([]rdb.Append, len(idx)), make([]Event, len(idx))
			for j, i := range idx {
				sub[j], subEvs[j] = items[i], evs[i]
			}
			res, err := b.appendAll(ctx, sub[0].Part, sub, subEvs)
			if err != nil {
				failed[g] = err
				ferr := b.batchFailure(ctx, subEvs, res, err)
				for j, i := range idx {
					errs[i] = ferr
					out[i].ID = evs[i].ID
					if len(res) == len(idx) {
						out[i].StreamID = res[j].StreamID // written, not confirmed
					}
				}
				return
			}
			for j, p := range b.batchPublished(ctx, subEvs, res) {
				out[idx[j]] = p
			}
		})
	}
	wg.Wait()
	var first error
	nFailed := 0
	for _, err := range failed {
		if err == nil {
			continue
		}
		nFailed++
		if first == nil || unknownWrite(err) && !unknownWrite(first) {
			first = err
		}
	}
	var nr *rdb.NotReplicated
	switch {
	case nFailed == 0:
		return out, nil
	case nFailed == len(groups) && !errors.As(first, &nr):
		// Nothing written (or nothing known to be): one error for all.
		return nil, wrapOp("publish batch", b.batchFailure(ctx, evs, nil, first))
	}
	return nil, wrapOp("publish batch", &PartialBatchError{Published: out, Errs: errs})
}

// unknownWrite reports whether err, from appendAll, leaves the outcome of
// the write unknown.
func unknownWrite(err error) bool {
	var ou *rdb.OutcomeUnknown
	return errors.Is(err, errInFlight) || errors.As(err, &ou)
}

// batchFailure turns the failure of one atomic batch write (res are its
// results, stream ids set, when WAIT failed) into the error PublishBatch
// returns for its events.
func (b *Bus) batchFailure(ctx context.Context, evs []Event, res []rdb.Appended, err error) error {
	ids := make([]string, len(evs))
	tenant := evs[0].TenantID
	for i := range evs {
		ids[i] = evs[i].ID
		if evs[i].TenantID != tenant {
			tenant = ""
		}
	}
	if len(res) == len(evs) {
		sids := make([]string, len(res))
		for i := range res {
			sids[i] = res[i].StreamID
		}
		if nr := notReplicated(err, tenant, ids, sids); nr != nil {
			return nr
		}
	}
	return b.publishFailure(ctx, tenant, ids, err)
}

// batchPublished returns the results of a batch written, logging each.
func (b *Bus) batchPublished(ctx context.Context, evs []Event, res []rdb.Appended) []Published {
	out := make([]Published, len(evs))
	for i, r := range res {
		out[i] = Published{ID: evs[i].ID, StreamID: r.StreamID, Duplicate: r.Duplicate}
		b.logPublished(ctx, &evs[i], out[i])
	}
	return out
}

// partition returns the partition ev is written to.
func (b *Bus) partition(ev *Event) (int, error) {
	n := b.rdb.Keys().WritePartitions()
	if n == 1 {
		return 0, nil
	}
	if b.cfg.Partitioner == nil {
		return int(fnv1a(ev.TenantID) % uint32(n)), nil
	}
	p := b.cfg.Partitioner(ev, n)
	if p < 0 || p >= n {
		return 0, fmt.Errorf("%w: Config.Partitioner returned partition %d for %d partitions; nothing written", ErrConfig, p, n)
	}
	return p, nil
}

// partitionOf is partition for a copy of ev: the Partitioner's pointer
// escapes, and Publish's own event must not (one allocation per publish).
func (b *Bus) partitionOf(ev Event) (int, error) { return b.partition(&ev) }

// fnv1a is the 32-bit FNV-1a hash of s.
func fnv1a(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// partitionGroups returns the indexes of items per partition, in order of
// first appearance, each in the batch's order.
func (b *Bus) partitionGroups(items []rdb.Append) [][]int {
	var groups [][]int
	var parts []int
	for i, it := range items {
		g := slices.Index(parts, it.Part)
		if g < 0 {
			parts = append(parts, it.Part)
			groups = append(groups, nil)
			g = len(groups) - 1
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// appendAll runs rdb.AppendAll for at most Config.PublishTimeout (ctx may
// end it sooner): past it the caller gets errInFlight (the write may have
// been sent) and the call finishes in the background, its own duration
// bounded by the Redis client's timeouts. The events written (evs[i] is
// items[i]'s) are counted in the stats when the reply comes, waited for
// or not.
func (b *Bus) appendAll(ctx context.Context, part int, items []rdb.Append, evs []Event) ([]rdb.Appended, error) {
	defer b.met.batchCalled(b.met.now())
	wctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	deadline, _ := wctx.Deadline()
	type result struct {
		res []rdb.Appended
		err error
	}
	done := make(chan result, 1) // the call never blocks on it
	go func() {
		sctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		defer cancel()
		res, err := b.rdb.AppendAll(sctx, part, b.mainMinID(time.Now()), b.cfg.IdempotencyWindow.Milliseconds(), b.wait(), items)
		var nr *rdb.NotReplicated
		if err == nil || errors.As(err, &nr) { // written either way
			b.stats.published(len(res), func(i int) (string, string, bool) {
				return evs[i].TenantID, evs[i].Type, !res[i].Duplicate
			})
		}
		b.met.batchResult(evs, res, err)
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		return r.res, r.err
	case <-wctx.Done():
		return nil, errInFlight
	}
}

// publishFailure is the package's publishFailure, logging an unknown
// outcome (at warn: the caller must retry or reconcile).
func (b *Bus) publishFailure(ctx context.Context, tenantID string, ids []string, err error) error {
	err = publishFailure(ctx, b.cfg.PublishTimeout, tenantID, ids, err)
	var ou *OutcomeUnknownError
	if errors.As(err, &ou) {
		b.log.LogAttrs(ctx, slog.LevelWarn, "publish outcome unknown",
			slog.Any("event_ids", ou.EventIDs), slog.String("tenant_id", ou.TenantID), slog.String("error", ou.Err.Error()))
	}
	return err
}

// wait is the WAIT every publish write is followed by (none when
// Config.MinReplicas is 0).
func (b *Bus) wait() rdb.Wait {
	return rdb.Wait{Replicas: b.cfg.MinReplicas, Timeout: b.cfg.ReplicaTimeout}
}

func (b *Bus) mainMinID(now time.Time) string { return rdb.MinIDFor(now, b.cfg.Retention.Main) }

func (b *Bus) logPublished(ctx context.Context, ev *Event, p Published) {
	if !b.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	msg := "event published"
	if p.Duplicate {
		msg = "event already published"
	}
	b.log.LogAttrs(ctx, slog.LevelInfo, msg,
		slog.String("event_id", ev.ID), slog.String("type", ev.Type),
		slog.String("correlation_id", ev.CorrelationID), slog.String("tenant_id", ev.TenantID),
		slog.String("stream_id", p.StreamID))
}

// pubItem is one publish queued in the coalescer: the write, and the
// event's type for the stats.
type pubItem struct {
	rdb.Append
	typ string
}

// sendAppends writes a coalesced batch of independent publishes and
// counts the events written in the stats (before answering the callers,
// so that a flush after Publish returns carries them).
func (b *Bus) sendAppends(ctx context.Context, reqs []*call[pubItem, rdb.Appended]) {
	items := make([]rdb.Append, len(reqs))
	for i, r := range reqs {
		items[i] = r.in.Append
	}
	res := b.rdb.AppendEach(ctx, b.mainMinID(time.Now()), b.cfg.IdempotencyWindow.Milliseconds(), b.wait(), items)
	b.stats.published(len(reqs), func(i int) (string, string, bool) {
		var nr *rdb.NotReplicated
		written := res[i].Err == nil || errors.As(res[i].Err, &nr)
		return reqs[i].in.TenantID, reqs[i].in.typ, written && !res[i].Duplicate
	})
	if b.met != nil {
		b.met.publishResults(len(reqs), func(i int) (string, bool, error) {
			return reqs[i].in.typ, res[i].Duplicate, res[i].Err
		})
	}
	for i, r := range reqs {
		r.out = res[i]
		close(r.done)
	}
}
