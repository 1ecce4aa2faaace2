package rdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"
)

// StreamInfo is what Redis reports about one stream and its groups.
type StreamInfo struct {
	Name              string
	Exists            bool
	Length            int64
	FirstEntryID      string
	LastEntryID       string
	LastGeneratedID   string
	MaxDeletedEntryID string // "" when Redis does not report it
	// EntriesAdded counts every entry ever added; 0 when Redis does not
	// report it. EntriesAdded > Length means entries were trimmed or deleted.
	EntriesAdded int64
	Groups       []GroupInfo
}

// GroupInfo is what Redis reports about one consumer group.
type GroupInfo struct {
	Name            string
	Consumers       int64
	Pending         int64
	LastDeliveredID string
	// Lag is nil when Redis cannot say (Redis 7.0 after a restart or
	// failover, or an embedded server that does not track it).
	Lag *int64
	// OldestPendingID is the lowest id in the group's pending list, "" if
	// none.
	OldestPendingID string
	// NextUndeliveredID is the first entry after LastDeliveredID, "" if none.
	NextUndeliveredID string
}

// StreamInfo reads stream and group state with XINFO and one XPENDING and
// XRANGE per group. trustLag false reports every lag as unknown.
func (r *RDB) StreamInfo(ctx context.Context, stream string, trustLag bool) (StreamInfo, error) {
	info := StreamInfo{Name: stream}
	xs, err := r.c.XInfoStream(ctx, stream).Result()
	if err != nil {
		if isNoSuchKey(err) {
			return info, nil
		}
		return info, fmt.Errorf("xinfo stream %s: %w", stream, err)
	}
	info.Exists = true
	info.Length = xs.Length
	info.FirstEntryID = xs.FirstEntry.ID
	info.LastEntryID = xs.LastEntry.ID
	info.EntriesAdded = xs.EntriesAdded
	info.LastGeneratedID = xs.LastGeneratedID
	if xs.MaxDeletedEntryID != "" && xs.MaxDeletedEntryID != "0-0" {
		info.MaxDeletedEntryID = xs.MaxDeletedEntryID
	}
	if xs.Length > 0 && (info.FirstEntryID == "" || info.LastEntryID == "") {
		// Servers that answer XINFO STREAM partially (the embedded dev
		// server): read the ends directly.
		if info.FirstEntryID, err = r.edgeID(ctx, stream, false); err != nil {
			return info, err
		}
		if info.LastEntryID, err = r.edgeID(ctx, stream, true); err != nil {
			return info, err
		}
	}

	groups, err := r.c.XInfoGroups(ctx, stream).Result()
	if err != nil {
		return info, fmt.Errorf("xinfo groups %s: %w", stream, err)
	}
	for _, g := range groups {
		gi := GroupInfo{
			Name:            g.Name,
			Consumers:       g.Consumers,
			Pending:         g.Pending,
			LastDeliveredID: g.LastDeliveredID,
		}
		if trustLag && g.Lag >= 0 {
			lag := g.Lag
			gi.Lag = &lag
		}
		info.Groups = append(info.Groups, gi)
	}
	if len(info.Groups) == 0 {
		return info, nil
	}

	pipe := r.c.Pipeline()
	pend := make([]*redis.XPendingCmd, len(info.Groups))
	next := make([]*redis.XMessageSliceCmd, len(info.Groups))
	for i, g := range info.Groups {
		pend[i] = pipe.XPending(ctx, stream, g.Name)
		next[i] = pipe.XRangeN(ctx, stream, "("+g.LastDeliveredID, "+", 1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return info, fmt.Errorf("pending of %s: %w", stream, err)
	}
	for i := range info.Groups {
		if p, err := pend[i].Result(); err == nil && p.Count > 0 {
			info.Groups[i].OldestPendingID = p.Lower
		}
		msgs, err := next[i].Result()
		if err == nil && len(msgs) > 0 {
			info.Groups[i].NextUndeliveredID = msgs[0].ID
		}
		if err == nil {
			info.Groups[i].Lag = checkLag(info.Groups[i].Lag, len(msgs) > 0, info.Length)
		}
	}
	return info, nil
}

// checkLag cross-checks the lag Redis reported (nil: none) against what
// the stream holds. Redis 7.0 can report a wrong lag after loading an AOF
// (e.g. 21,404 with nothing undelivered): no entry after the group's last
// delivered id means lag 0; a lag above the stream's length is wrong and
// reported as unknown (nil). (The length is read a moment before the lag:
// entries added in between can make a right lag of an almost wholly
// undelivered stream look too high; it is then reported as unknown too.)
func checkLag(lag *int64, undelivered bool, length int64) *int64 {
	if lag == nil {
		return nil
	}
	switch {
	case !undelivered:
		zero := int64(0)
		return &zero
	case *lag > length:
		return nil
	}
	return lag
}

func (r *RDB) edgeID(ctx context.Context, stream string, last bool) (string, error) {
	var msgs []redis.XMessage
	var err error
	if last {
		msgs, err = r.c.XRevRangeN(ctx, stream, "+", "-", 1).Result()
	} else {
		msgs, err = r.c.XRangeN(ctx, stream, "-", "+", 1).Result()
	}
	if err != nil {
		return "", fmt.Errorf("range %s: %w", stream, err)
	}
	if len(msgs) == 0 {
		return "", nil
	}
	return msgs[0].ID, nil
}

// infoParallel bounds the StreamInfo reads StreamInfos runs at once.
const infoParallel = 8

// StreamInfos reads StreamInfo of each of streams, up to eight at once
// (each stream is one key: on a Redis Cluster every read goes to the
// stream's own master). infos[i] and errs[i] are streams[i]'s; one
// stream's error leaves the others' reads intact. Every read has ended
// when it returns.
func (r *RDB) StreamInfos(ctx context.Context, streams []string, trustLag bool) (infos []StreamInfo, errs []error) {
	infos = make([]StreamInfo, len(streams))
	errs = make([]error, len(streams))
	if len(streams) == 1 {
		infos[0], errs[0] = r.StreamInfo(ctx, streams[0], trustLag)
		return infos, errs
	}
	sem := make(chan struct{}, infoParallel)
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			infos[i], errs[i] = r.StreamInfo(ctx, s, trustLag)
		})
	}
	wg.Wait()
	return infos, errs
}

// NodeOf returns the address of the master serving key on a Redis
// Cluster (from the client's cached slot map: no round trip in the usual
// case), "" on a single node or when it is not known.
func (r *RDB) NodeOf(ctx context.Context, key string) string {
	cc, ok := r.c.(*redis.ClusterClient)
	if !ok {
		return ""
	}
	n, err := cc.MasterForKey(ctx, key)
	if err != nil {
		return ""
	}
	return n.Options().Addr
}

// DLQTrimmed sums, over every partition's DLQ counters, the entries the
// DLQ's retention removed (DLQCounterTrimmed): one HGET per partition in
// one pipeline (single-key commands: a Cluster client splits it per
// node).
func (r *RDB) DLQTrimmed(ctx context.Context) (int64, error) {
	n := r.keys.Partitions()
	cmds := make([]*redis.StringCmd, n)
	pipe := r.c.Pipeline()
	for p := range n {
		cmds[p] = pipe.HGet(ctx, r.keys.Partition(p).DLQCounters(), DLQCounterTrimmed)
	}
	_, _ = pipe.Exec(ctx) // every reply is checked below
	var sum int64
	for p, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return 0, fmt.Errorf("dlq counters of partition %d: %w", p, err)
		}
		m, _ := strconv.ParseInt(v, 10, 64)
		sum += m
	}
	return sum, nil
}
