package eventbus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
)

// dlqSeed is a dead letter to write with seedDLQ.
type dlqSeed struct {
	id string // stream id; "" for a new one
	dl eventbus.DeadLetter
	// payload is the event field; "" makes a valid envelope of dl.
	payload string
}

// seedDLQ writes dead letters (indexed, as the consumers write them)
// through the Redis layer and returns their ids.
func seedDLQ(t testing.TB, c redis.UniversalClient, prefix string, seeds []dlqSeed) []string {
	t.Helper()
	r := rdb.New(c, testKeys(prefix), rdb.Options{})
	items := make([]rdb.DLQAdd, len(seeds))
	for i, s := range seeds {
		if s.dl.Group == "" {
			s.dl.Group = eventbus.DefaultGroup
		}
		if s.dl.Stream == "" {
			s.dl.Stream = testKeys(prefix).Main()
		}
		meta, err := json.Marshal(s.dl)
		if err != nil {
			t.Fatal(err)
		}
		p := s.payload
		if p == "" {
			p = fmt.Sprintf(`{"id":%q,"type":%q,"tenantId":%q,"userId":"u1","timestamp":"2026-01-01T00:00:00Z","data":{}}`, s.dl.EventID, s.dl.Type, s.dl.TenantID)
		}
		items[i] = rdb.DLQAdd{ID: s.id, Payload: p, Meta: meta}
	}
	var out []string
	for start := 0; start < len(items); start += 5000 {
		ids, err := r.AddDLQ(context.Background(), items[start:min(start+5000, len(items))])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ids...)
	}
	return out
}

// deadLetterOf is a dead letter of one handler with one error.
func deadLetterOf(tenant, eventID, typ, handler, msg string) eventbus.DeadLetter {
	now := time.Now().UTC()
	return eventbus.DeadLetter{
		EventID: eventID, Type: typ, TenantID: tenant, Handler: handler, OriginalStreamID: "1-1",
		Attempts: 1, Errors: []eventbus.AttemptError{{Attempt: 1, At: now, Message: msg}}, MovedAt: now, Reason: "permanent failure",
	}
}

// checkDLQIndex fails unless the DLQ index holds exactly the members of
// the DLQ's entries.
func checkDLQIndex(t testing.TB, c redis.UniversalClient, prefix string) {
	t.Helper()
	checkPartitionDLQIndexes(t, c, testKeys(prefix))
}

// listAll pages through DeadLetters and returns every item's id.
func listAll(t testing.TB, in *eventbus.Inspector, scope eventbus.Scope, f eventbus.DLQFilter, limit int, between func()) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for range 100000 {
		p, err := in.DeadLetters(context.Background(), scope, eventbus.DLQListOptions{Filter: f, Cursor: cursor, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range p.Items {
			ids = append(ids, it.ID)
		}
		if p.NextCursor == "" {
			return ids
		}
		cursor = p.NextCursor
		if between != nil {
			between()
		}
	}
	t.Fatal("listing never ended")
	return nil
}
