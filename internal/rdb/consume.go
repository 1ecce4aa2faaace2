package rdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReadGroup reads new entries (">") of streams for consumer in group,
// blocking up to block. It returns nil, nil when nothing arrived.
func (r *RDB) ReadGroup(ctx context.Context, group, consumer string, streams []string, count int, block time.Duration) ([]redis.XStream, error) {
	args := make([]string, 0, 2*len(streams))
	args = append(args, streams...)
	for range streams {
		args = append(args, ">")
	}
	res, err := r.c.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: group, Consumer: consumer, Streams: args, Count: int64(count), Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("xreadgroup: %w", err)
	}
	return res, nil
}

// Ack acknowledges entries (stream -> ids) and deletes the status keys in
// one round trip: a single XACK when that is all, else MULTI/EXEC.
func (r *RDB) Ack(ctx context.Context, group string, ids map[string][]string, statusKeys []string) error {
	if len(ids) == 1 && len(statusKeys) == 0 {
		for stream, list := range ids {
			if err := r.c.XAck(ctx, stream, group, list...).Err(); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
		}
		return nil
	}
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for stream, list := range ids {
			p.XAck(ctx, stream, group, list...)
		}
		if len(statusKeys) > 0 {
			p.Del(ctx, statusKeys...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// SettleOp is one handler outcome recorded by Settle.
type SettleOp struct {
	Kind    string // OpDone, OpRetry or OpDLQ
	Handler string
	Record  []byte // the handler's status record (JSON)
	// retry: due time, member and data; dlq: payload and meta.
	Due     time.Time
	Member  string
	Data    []byte
	Payload string
	Meta    []byte
	// Flag: for OpRetry, this failure opens a retry; for OpDone and OpDLQ,
	// it resolves one.
	Flag bool
}

// ErrNotOwner is returned when an entry is no longer pending at this
// consumer (another consumer claimed it): its outcome is not recorded here.
var ErrNotOwner = errors.New("entry no longer owned by this consumer")

// ErrNotPending is returned when an entry is pending at no consumer: it
// was acknowledged already, by an earlier send of the same step whose
// reply was lost, or by another consumer that claimed and finished it.
// Either way its outcome is recorded, and nothing was changed.
var ErrNotPending = errors.New("entry no longer pending")

// ownerErr turns an ownership-checked script's negative answer into
// ErrNotOwner (-1) or ErrNotPending (-2).
func ownerErr(n int) error {
	if n == -2 {
		return ErrNotPending
	}
	return ErrNotOwner
}

// SettleArgs describes one delivery's outcome.
type SettleArgs struct {
	// Partition is the partition of the entry's stream: the status hash
	// and the retry keys are that partition's.
	Partition              int
	Stream, Group, EntryID string
	Consumer               string // the consumer that must still own the entry
	EventID                string
	EventStreamID          string // the event's id in the main stream
	Type, Tenant           string
	OpenTTL, ResolvedTTL   time.Duration
	DLQMinID               string
	Ops                    []SettleOp
}

// Settle records handler outcomes, schedules retries, writes dead letters
// and acknowledges the entry, atomically.
func (r *RDB) Settle(ctx context.Context, a SettleArgs) error {
	k := r.keys.Partition(a.Partition)
	keys := []string{a.Stream, k.Status(a.Group, a.EventID), k.RetrySchedule(a.Group), k.RetryData(a.Group),
		k.DLQ(), k.DLQIndex(), k.DLQCounters()}
	args := make([]any, 0, 8+7*len(a.Ops))
	args = append(args, a.Group, a.EntryID, a.OpenTTL.Milliseconds(), a.ResolvedTTL.Milliseconds(), a.DLQMinID,
		a.EventStreamID, a.Type, a.Tenant, a.Consumer)
	for _, op := range a.Ops {
		flag := "0"
		if op.Flag {
			flag = "1"
		}
		switch op.Kind {
		case OpRetry:
			args = append(args, op.Kind, op.Handler, op.Record, DueMillis(op.Due), op.Member, op.Data, flag)
		case OpDLQ:
			args = append(args, op.Kind, op.Handler, op.Record, op.Payload, op.Meta, "", flag)
		default:
			args = append(args, op.Kind, op.Handler, op.Record, "", "", "", flag)
		}
	}
	n, err := settle.Run(ctx, r.c, keys, args...).Int()
	if err != nil {
		return fmt.Errorf("settle %s: %w", a.EntryID, err)
	}
	if n < 0 {
		return fmt.Errorf("settle %s: %w", a.EntryID, ownerErr(n))
	}
	return nil
}

// DueMillis is t in Unix milliseconds rounded up, so that a retry stored
// with this score is never forwarded before t (the forwarder compares it
// with the current time in whole milliseconds, rounded down).
func DueMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

// DeadLetterEntry moves an entry that cannot be decoded to the DLQ of
// partition p (its stream's) and acknowledges it, in one atomic step, only while consumer still owns it:
// ErrNotOwner or ErrNotPending (nothing changed) otherwise, so a send
// repeated after a lost reply writes one dead letter.
func (r *RDB) DeadLetterEntry(ctx context.Context, p int, stream, group, consumer, id, payload string, meta []byte, dlqMinID string) error {
	k := r.keys.Partition(p)
	n, err := deadLetterEntry.Run(ctx, r.c, []string{stream, k.DLQ(), k.DLQIndex(), k.DLQCounters()},
		group, id, dlqMinID, payload, meta, "", "", "", consumer).Int()
	if err != nil {
		return fmt.Errorf("dead-letter %s: %w", id, err)
	}
	if n < 0 {
		return fmt.Errorf("dead-letter %s: %w", id, ownerErr(n))
	}
	return nil
}

// ForwardDueRetries moves up to limit retries of partition p due at now to
// the group's retries stream of the partition and returns how many moved.
func (r *RDB) ForwardDueRetries(ctx context.Context, group string, p int, now time.Time, limit int, minID string) (int, error) {
	k := r.keys.Partition(p)
	n, err := forwardRetries.Run(ctx, r.c, []string{k.RetrySchedule(group), k.RetryData(group), k.Retries(group)},
		now.UnixMilli(), limit, minID).Int()
	if err != nil {
		return 0, fmt.Errorf("forward retries: %w", err)
	}
	return n, nil
}

// Claimed is the outcome of one XAUTOCLAIM call.
type Claimed struct {
	Messages []redis.XMessage
	Next     string   // cursor; "0-0" when the scan is complete
	Deleted  []string // pending ids whose entries no longer exist (Redis 7 removes them from the PEL)
}

// AutoClaim claims entries of stream idle for at least minIdle for
// consumer, starting at cursor start.
func (r *RDB) AutoClaim(ctx context.Context, stream, group, consumer string, minIdle time.Duration, start string, count int) (Claimed, error) {
	v, err := r.c.Do(ctx, "XAUTOCLAIM", stream, group, consumer, minIdle.Milliseconds(), start, "COUNT", count).Slice()
	if err != nil {
		return Claimed{}, fmt.Errorf("xautoclaim %s: %w", stream, err)
	}
	if len(v) < 2 {
		return Claimed{}, fmt.Errorf("xautoclaim %s: unexpected reply %v", stream, v)
	}
	var c Claimed
	c.Next, _ = v[0].(string)
	msgs, _ := v[1].([]any)
	for _, m := range msgs {
		pair, ok := m.([]any)
		if !ok || len(pair) != 2 {
			continue
		}
		id, _ := pair[0].(string)
		fields, _ := pair[1].([]any)
		if fields == nil { // Redis 6.2: a deleted entry is returned with a nil body
			c.Deleted = append(c.Deleted, id)
			continue
		}
		values := make(map[string]any, len(fields)/2)
		for i := 0; i+1 < len(fields); i += 2 {
			if k, ok := fields[i].(string); ok {
				values[k] = fields[i+1]
			}
		}
		c.Messages = append(c.Messages, redis.XMessage{ID: id, Values: values})
	}
	if len(v) >= 3 {
		del, _ := v[2].([]any)
		for _, d := range del {
			if s, ok := d.(string); ok {
				c.Deleted = append(c.Deleted, s)
			}
		}
	}
	return c, nil
}

// AckDeleted acknowledges pending ids whose entries are gone (Redis 6.2
// leaves them in the PEL).
func (r *RDB) AckDeleted(ctx context.Context, stream, group string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	return r.c.XAck(ctx, stream, group, ids...).Err()
}

// Consumers lists the consumers of group on stream.
func (r *RDB) Consumers(ctx context.Context, stream, group string) ([]redis.XInfoConsumer, error) {
	cs, err := r.c.XInfoConsumers(ctx, stream, group).Result()
	if err != nil {
		return nil, fmt.Errorf("xinfo consumers %s: %w", stream, err)
	}
	return cs, nil
}

// DeleteIdleConsumer removes consumer from group on every stream of sets,
// only if it holds no pending entry on any of them and its heartbeat in
// the group's registry is missing or older than deadAfter (by the Redis
// clock). It reports whether it did. sets are the group's streams by hash
// slot (one set on a single node): with one set the whole check and
// removal is one atomic step; with several (partitions on a Cluster), the
// heartbeat is checked first, then each set is checked and cleared in its
// own atomic step, stopping at the first set where the consumer holds an
// entry (a consumer removed from a set where it holds none is re-created
// by its next read), and its registry entry goes last.
func (r *RDB) DeleteIdleConsumer(ctx context.Context, sets [][]string, group, consumer string, deadAfter time.Duration) (bool, error) {
	if len(sets) == 1 {
		keys := append([]string{r.keys.Consumers(group)}, sets[0]...)
		n, err := deleteIdleConsumer.Run(ctx, r.c, keys, group, consumer, deadAfter.Milliseconds()).Int()
		if err != nil {
			return false, fmt.Errorf("delete consumer %s: %w", consumer, err)
		}
		return n == 1, nil
	}
	dead, err := consumerDead.Run(ctx, r.c, []string{r.keys.Consumers(group)}, consumer, deadAfter.Milliseconds()).Int()
	if err != nil || dead != 1 {
		if err != nil {
			err = fmt.Errorf("delete consumer %s: %w", consumer, err)
		}
		return false, err
	}
	for _, set := range sets {
		n, err := deleteIdleConsumerIn.Run(ctx, r.c, set, group, consumer).Int()
		if err != nil {
			return false, fmt.Errorf("delete consumer %s: %w", consumer, err)
		}
		if n != 1 {
			return false, nil
		}
	}
	if err := r.c.HDel(ctx, r.keys.Consumers(group), consumer).Err(); err != nil {
		return false, fmt.Errorf("delete consumer %s: %w", consumer, err)
	}
	return true, nil
}

// StatusHash reads the status hash of an event in every partition, in one
// pipeline, and returns the first one found with its partition (-1 and an
// empty hash when none is).
func (r *RDB) StatusHash(ctx context.Context, group, eventID string) (int, map[string]string, error) {
	if r.keys.Partitions() == 1 {
		h, err := r.StatusHashIn(ctx, 0, group, eventID)
		if len(h) == 0 {
			return -1, h, err
		}
		return 0, h, err
	}
	cmds := make([]*redis.MapStringStringCmd, r.keys.Partitions())
	_, err := r.c.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for p := range cmds {
			cmds[p] = pipe.HGetAll(ctx, r.keys.Partition(p).Status(group, eventID))
		}
		return nil
	})
	if err != nil {
		return -1, nil, fmt.Errorf("status %s: %w", eventID, err)
	}
	for p, c := range cmds {
		if len(c.Val()) > 0 {
			return p, c.Val(), nil
		}
	}
	return -1, map[string]string{}, nil
}

// StatusHashIn reads the status hash of an event of partition p (empty
// when none).
func (r *RDB) StatusHashIn(ctx context.Context, p int, group, eventID string) (map[string]string, error) {
	m, err := r.c.HGetAll(ctx, r.keys.Partition(p).Status(group, eventID)).Result()
	if err != nil {
		return nil, fmt.Errorf("status %s: %w", eventID, err)
	}
	return m, nil
}

// StatusHashes reads several events' status hashes in one round trip.
func (r *RDB) StatusHashes(ctx context.Context, group string, eventIDs []string) ([]map[string]string, error) {
	cmds := make([]*redis.MapStringStringCmd, len(eventIDs))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range eventIDs {
			cmds[i] = p.HGetAll(ctx, r.keys.Status(group, id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	out := make([]map[string]string, len(cmds))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// MarkHandler records a handler's success for an event in flight (the
// event has more handlers to run), so that a redelivery after a crash
// skips it, and resets the entry's idle time, telling the group the entry
// is in progress. ErrNotOwner when another consumer claimed the entry. p
// is the partition of the entry's stream.
func (r *RDB) MarkHandler(ctx context.Context, group string, p int, statusID, handler string, record []byte, ttl time.Duration, stream, consumer, entryID string) error {
	n, err := markHandler.Run(ctx, r.c, []string{stream, r.keys.Partition(p).Status(group, statusID)},
		group, entryID, StatusHandlerField(handler), record, ttl.Milliseconds(), "", "", "", consumer).Int()
	if err != nil {
		return fmt.Errorf("mark handler %s: %w", handler, err)
	}
	if n < 0 {
		return fmt.Errorf("mark handler %s: %w", handler, ownerErr(n))
	}
	return nil
}

// TouchOwned resets the idle time of the entries of stream that consumer
// still owns, so they are not claimed while being handled.
func (r *RDB) TouchOwned(ctx context.Context, stream, group, consumer string, ids []string) error {
	args := make([]any, 0, 2+len(ids))
	args = append(args, group, consumer)
	for _, id := range ids {
		args = append(args, id)
	}
	if err := touchOwned.Run(ctx, r.c, []string{stream}, args...).Err(); err != nil {
		return fmt.Errorf("touch %s: %w", stream, err)
	}
	return nil
}

// IsPending reports whether entry id of stream is in group's pending list.
func (r *RDB) IsPending(ctx context.Context, stream, group, id string) (bool, error) {
	p, err := r.c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: group, Start: id, End: id, Count: 1}).Result()
	if err != nil {
		return false, fmt.Errorf("xpending %s: %w", stream, err)
	}
	return len(p) > 0, nil
}

// LastDelivered returns group's last delivered id on stream.
func (r *RDB) LastDelivered(ctx context.Context, stream, group string) (string, error) {
	gs, err := r.c.XInfoGroups(ctx, stream).Result()
	if err != nil {
		return "", fmt.Errorf("xinfo groups %s: %w", stream, err)
	}
	for _, g := range gs {
		if g.Name == group {
			return g.LastDeliveredID, nil
		}
	}
	return "", fmt.Errorf("group %s not found on %s", group, stream)
}

// Range returns up to count entries of stream from start (inclusive) to
// end.
func (r *RDB) Range(ctx context.Context, stream, start, end string, count int64) ([]redis.XMessage, error) {
	m, err := r.c.XRangeN(ctx, stream, start, end, count).Result()
	if err != nil {
		return nil, fmt.Errorf("xrange %s: %w", stream, err)
	}
	return m, nil
}

// IdempotentStreamID returns the stream id remembered in partition p for
// a tenant's caller-supplied event id, or "" when none is.
func (r *RDB) IdempotentStreamID(ctx context.Context, p int, tenantID, eventID string) (string, error) {
	v, err := r.c.Get(ctx, r.keys.Partition(p).Idempotency(tenantID, eventID)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("idempotency %s: %w", eventID, err)
	}
	return v, nil
}

// Heartbeat records in the group's registry that consumer is alive (by
// the Redis clock) and registers handlers (a JSON array of names). The
// registry expires after keep unless refreshed, and entries older than
// keep are dropped.
func (r *RDB) Heartbeat(ctx context.Context, group, consumer string, handlers []byte, keep time.Duration) error {
	if err := heartbeat.Run(ctx, r.c, []string{r.keys.Consumers(group)}, consumer, handlers, keep.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("heartbeat %s: %w", consumer, err)
	}
	return nil
}

// RemoveHeartbeat deletes consumer's entry in the group's registry (a
// graceful stop).
func (r *RDB) RemoveHeartbeat(ctx context.Context, group, consumer string) error {
	if err := r.c.HDel(ctx, r.keys.Consumers(group), consumer).Err(); err != nil {
		return fmt.Errorf("heartbeat %s: %w", consumer, err)
	}
	return nil
}

// ConsumerBeat is one consumer's entry in the group's registry.
type ConsumerBeat struct {
	Name     string
	LastSeen time.Time // by the Redis clock
	Age      time.Duration
	Handlers []string
}

// LiveConsumers lists the consumers of group whose heartbeat is younger
// than deadAfter (by the Redis clock).
func (r *RDB) LiveConsumers(ctx context.Context, group string, deadAfter time.Duration) ([]ConsumerBeat, error) {
	var now *redis.TimeCmd
	var all *redis.MapStringStringCmd
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		now = p.Time(ctx)
		all = p.HGetAll(ctx, r.keys.Consumers(group))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("consumers of %s: %w", group, err)
	}
	var out []ConsumerBeat
	for name, v := range all.Val() {
		var beat struct {
			LastSeen int64    `json:"lastSeen"`
			Handlers []string `json:"handlers"`
		}
		if json.Unmarshal([]byte(v), &beat) != nil {
			continue
		}
		seen := time.UnixMilli(beat.LastSeen)
		age := now.Val().Sub(seen)
		if age >= deadAfter {
			continue
		}
		out = append(out, ConsumerBeat{Name: name, LastSeen: seen, Age: age, Handlers: beat.Handlers})
	}
	return out, nil
}

// PendingEntry is one entry of a group's pending list.
type PendingEntry struct {
	Consumer   string // "" when the entry is not pending
	Deliveries int64  // times delivered (XAUTOCLAIM and XCLAIM without JUSTID count)
}

// Pending reads, in one round trip, the owner and delivery count of each
// of ids in group's pending list of stream.
func (r *RDB) Pending(ctx context.Context, stream, group string, ids []string) (map[string]PendingEntry, error) {
	cmds := make([]*redis.XPendingExtCmd, len(ids))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: group, Start: id, End: id, Count: 1})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("xpending %s: %w", stream, err)
	}
	out := make(map[string]PendingEntry, len(ids))
	for i, id := range ids {
		var e PendingEntry
		if p := cmds[i].Val(); len(p) == 1 && p[0].ID == id {
			e = PendingEntry{Consumer: p[0].Consumer, Deliveries: p[0].RetryCount}
		}
		out[id] = e
	}
	return out, nil
}
