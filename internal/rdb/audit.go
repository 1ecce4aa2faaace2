package rdb

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// AppendAudit writes one record (JSON) to the audit stream, trimming
// exactly (MINID, not ~) the entries below minID in the same XADD, and
// returns its stream id. It is never re-sent by go-redis: a re-sent XADD
// whose first send went through would log the action twice.
func (r *RDB) AppendAudit(ctx context.Context, minID string, record []byte) (string, error) {
	stream := r.keys.Audit()
	cmd := redis.NewStringCmd(ctx, "xadd", stream, "minid", minID, "*", FieldAudit, record)
	if err := r.c.Process(ctx, noRetryString{cmd}); err != nil {
		return "", fmt.Errorf("xadd %s: %w", stream, err)
	}
	return cmd.Val(), nil
}

// RevRange returns up to count entries of stream from end down to start
// (XREVRANGE: newest first).
func (r *RDB) RevRange(ctx context.Context, stream, end, start string, count int64) ([]redis.XMessage, error) {
	m, err := r.c.XRevRangeN(ctx, stream, end, start, count).Result()
	if err != nil {
		return nil, fmt.Errorf("xrevrange %s: %w", stream, err)
	}
	return m, nil
}

// Before is the exclusive XREVRANGE end just before id (Redis refuses it
// for "0-0", which callers check first).
func Before(id string) string { return "(" + id }
