package rdb

import (
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/redistest"
)

// The Lua scripts on their own: each is run against the shared Redis
// under a private prefix, and the state after is checked.

const testGroup = "g"

// scriptFixture is an RDB on a private prefix, with the group created on
// the main stream and the group's retries stream.
func scriptFixture(t *testing.T) (context.Context, *redis.Client, *RDB) {
	t.Helper()
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	r := New(c, NewKeys(prefix, false), Options{})
	for _, s := range []string{r.Keys().Main(), r.Keys().Retries(testGroup)} {
		if err := c.XGroupCreateMkStream(ctx, s, testGroup, "0").Err(); err != nil {
			t.Fatal(err)
		}
	}
	return ctx, c, r
}

// deliver adds an entry to stream and reads it as consumer.
func deliver(t *testing.T, c *redis.Client, stream, consumer string) string {
	t.Helper()
	ctx := context.Background()
	id, err := c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{FieldEvent, `{"id":"e1"}`}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: testGroup, Consumer: consumer, Streams: []string{stream, ">"}, Count: 1, Block: -1}).Result()
	if err != nil || len(res) != 1 || len(res[0].Messages) != 1 || res[0].Messages[0].ID != id {
		t.Fatalf("read %s as %s: %v %v", id, consumer, res, err)
	}
	return id
}

// pendingAt returns the entry's owner and idle time ("" when not pending).
func pendingAt(t *testing.T, c *redis.Client, stream, id string) (string, time.Duration, int64) {
	t.Helper()
	p, err := c.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: stream, Group: testGroup, Start: id, End: id, Count: 1}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(p) == 0 {
		return "", 0, 0
	}
	return p[0].Consumer, p[0].Idle, p[0].RetryCount
}

// settle acknowledges the entry and, in the same step, records every
// handler's outcome, schedules the retry, opens it in the status and
// writes dead letters; a foreign consumer changes nothing.
func TestSettleScript(t *testing.T) {
	ctx, c, r := scriptFixture(t)
	k := r.Keys()
	main := k.Main()
	id := deliver(t, c, main, "me")
	status := k.Status(testGroup, "s1")
	due := time.Now().Add(time.Hour)
	member := RetryMember("b", id, "e1")
	args := SettleArgs{
		Stream: main, Group: testGroup, EntryID: id, Consumer: "me", EventID: "s1", EventStreamID: id,
		Type: "a.b", Tenant: "t1", OpenTTL: time.Hour, ResolvedTTL: time.Minute, DLQMinID: "0",
		Ops: []SettleOp{
			{Kind: OpDone, Handler: "a", Record: []byte(`{"state":"succeeded"}`)},
			{Kind: OpRetry, Handler: "b", Record: []byte(`{"state":"retrying"}`), Due: due, Member: member, Data: []byte(`{"handler":"b"}`), Flag: true},
		},
	}

	// Not the owner: refused, nothing written, the entry stays pending.
	foreign := args
	foreign.Consumer = "other"
	if err := r.Settle(ctx, foreign); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("settle by a foreign consumer: %v, want ErrNotOwner", err)
	}
	if owner, _, _ := pendingAt(t, c, main, id); owner != "me" {
		t.Fatalf("entry pending at %q after a refused settle, want me", owner)
	}
	if n := c.Exists(ctx, status, k.RetrySchedule(testGroup), k.RetryData(testGroup)).Val(); n != 0 {
		t.Fatalf("%d keys written by a refused settle", n)
	}

	// The owner: ack + status + retry in one step.
	if err := r.Settle(ctx, args); err != nil {
		t.Fatal(err)
	}
	if owner, _, _ := pendingAt(t, c, main, id); owner != "" {
		t.Errorf("entry still pending at %q after settle", owner)
	}
	h := c.HGetAll(ctx, status).Val()
	want := map[string]string{
		StatusStream: id, StatusType: "a.b", StatusTenant: "t1", StatusOpen: "1",
		StatusHandlerField("a"): `{"state":"succeeded"}`, StatusHandlerField("b"): `{"state":"retrying"}`,
	}
	if !maps.Equal(h, want) {
		t.Errorf("status hash %v, want %v", h, want)
	}
	if ttl := c.PTTL(ctx, status).Val(); ttl <= time.Minute || ttl > time.Hour {
		t.Errorf("status TTL %v while a retry is open, want the open TTL (1 h)", ttl)
	}
	if score, err := c.ZScore(ctx, k.RetrySchedule(testGroup), member).Result(); err != nil || int64(score) != DueMillis(due) {
		t.Errorf("retry schedule: %v %v, want %d", score, err, DueMillis(due))
	}
	if d := c.HGet(ctx, k.RetryData(testGroup), member).Val(); d != `{"handler":"b"}` {
		t.Errorf("retry data %q", d)
	}

	// The same settle sent again (its first reply lost): the entry is
	// pending nowhere, so nothing changes and the answer says so.
	if err := r.Settle(ctx, args); !errors.Is(err, ErrNotPending) {
		t.Fatalf("repeated settle: %v, want ErrNotPending", err)
	}
	if n := c.HLen(ctx, k.RetryData(testGroup)).Val(); n != 1 {
		t.Errorf("%d retries scheduled after a repeated settle, want 1", n)
	}

	// The retry's last attempt fails: dead-lettered, the retry resolved.
	rid := deliver(t, c, k.Retries(testGroup), "me")
	err := r.Settle(ctx, SettleArgs{
		Stream: k.Retries(testGroup), Group: testGroup, EntryID: rid, Consumer: "me", EventID: "s1", EventStreamID: id,
		Type: "a.b", Tenant: "t1", OpenTTL: time.Hour, ResolvedTTL: time.Minute, DLQMinID: "0",
		Ops: []SettleOp{{Kind: OpDLQ, Handler: "b", Record: []byte(`{"state":"dlq"}`), Payload: `{"id":"e1"}`, Meta: []byte(`{"handler":"b"}`), Flag: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if owner, _, _ := pendingAt(t, c, k.Retries(testGroup), rid); owner != "" {
		t.Errorf("retry entry still pending at %q", owner)
	}
	dlq := c.XRange(ctx, k.DLQ(), "-", "+").Val()
	if len(dlq) != 1 || dlq[0].Values[FieldEvent] != `{"id":"e1"}` || dlq[0].Values[FieldDLQ] != `{"handler":"b"}` {
		t.Errorf("DLQ %v, want one entry with the payload and meta", dlq)
	}
	if open := c.HGet(ctx, status, StatusOpen).Val(); open != "0" {
		t.Errorf("open = %s after the retry was resolved, want 0", open)
	}
	if got := c.HGet(ctx, status, StatusHandlerField("b")).Val(); got != `{"state":"dlq"}` {
		t.Errorf("handler b's record %s", got)
	}
	if ttl := c.PTTL(ctx, status).Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("status TTL %v once resolved, want the resolved TTL (1 min)", ttl)
	}
}

// markHandler records a success and resets the entry's idle time, for
// the owner only.
func TestMarkHandlerScript(t *testing.T) {
	ctx, c, r := scriptFixture(t)
	k := r.Keys()
	main := k.Main()
	id := deliver(t, c, main, "me")
	status := k.Status(testGroup, "s1")
	if err := r.MarkHandler(ctx, testGroup, 0, "s1", "a", []byte(`{"state":"succeeded"}`), time.Hour, main, "other", id); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("mark by a foreign consumer: %v, want ErrNotOwner", err)
	}
	if c.Exists(ctx, status).Val() != 0 {
		t.Fatal("a refused mark wrote the status")
	}
	time.Sleep(300 * time.Millisecond) // let the entry's idle time grow
	_, idleBefore, deliveries := pendingAt(t, c, main, id)
	if err := r.MarkHandler(ctx, testGroup, 0, "s1", "a", []byte(`{"state":"succeeded"}`), time.Hour, main, "me", id); err != nil {
		t.Fatal(err)
	}
	owner, idleAfter, deliveriesAfter := pendingAt(t, c, main, id)
	if owner != "me" || idleAfter >= idleBefore || deliveriesAfter != deliveries {
		t.Errorf("after mark: owner %q, idle %v (before %v), deliveries %d (before %d); want me, reset, unchanged",
			owner, idleAfter, idleBefore, deliveriesAfter, deliveries)
	}
	if got := c.HGet(ctx, status, StatusHandlerField("a")).Val(); got != `{"state":"succeeded"}` {
		t.Errorf("record %q", got)
	}
	if ttl := c.PTTL(ctx, status).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("status TTL %v, want at most 1 h", ttl)
	}
}

// touchOwned resets the idle time of this consumer's entries and leaves
// entries another consumer claimed alone.
func TestTouchOwnedScript(t *testing.T) {
	ctx, c, r := scriptFixture(t)
	main := r.Keys().Main()
	mine := deliver(t, c, main, "me")
	theirs := deliver(t, c, main, "me")
	if err := c.XClaim(ctx, &redis.XClaimArgs{Stream: main, Group: testGroup, Consumer: "other", Messages: []string{theirs}}).Err(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the idle times grow
	_, mineBefore, _ := pendingAt(t, c, main, mine)
	_, theirsBefore, _ := pendingAt(t, c, main, theirs)
	if err := r.TouchOwned(ctx, main, testGroup, "me", []string{mine, theirs}); err != nil {
		t.Fatal(err)
	}
	owner, mineAfter, _ := pendingAt(t, c, main, mine)
	if owner != "me" || mineAfter >= mineBefore {
		t.Errorf("own entry: owner %q, idle %v (before %v); want me, reset", owner, mineAfter, mineBefore)
	}
	owner, theirsAfter, _ := pendingAt(t, c, main, theirs)
	if owner != "other" || theirsAfter < theirsBefore {
		t.Errorf("foreign entry: owner %q, idle %v (before %v); want other, not reset", owner, theirsAfter, theirsBefore)
	}
}

// forwardRetries moves due retries (at most limit) to the retries stream
// and drops them from the schedule and the data hash; retries not yet due
// stay.
func TestForwardRetriesScript(t *testing.T) {
	ctx, c, r := scriptFixture(t)
	k := r.Keys()
	now := time.Now()
	sched, data := k.RetrySchedule(testGroup), k.RetryData(testGroup)
	if err := c.ZAdd(ctx, sched,
		redis.Z{Score: float64(now.Add(-2 * time.Second).UnixMilli()), Member: "m1"},
		redis.Z{Score: float64(now.Add(-time.Second).UnixMilli()), Member: "m2"},
		redis.Z{Score: float64(now.Add(-time.Second).UnixMilli()), Member: "gone"}, // its data is missing
		redis.Z{Score: float64(now.Add(time.Hour).UnixMilli()), Member: "later"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, data, "m1", "d1", "m2", "d2", "later", "d3").Err(); err != nil {
		t.Fatal(err)
	}

	if n, err := r.ForwardDueRetries(ctx, testGroup, 0, now, 1, "0"); err != nil || n != 1 {
		t.Fatalf("forward with limit 1: %d %v", n, err)
	}
	if n, err := r.ForwardDueRetries(ctx, testGroup, 0, now, 10, "0"); err != nil || n != 2 {
		t.Fatalf("forward the rest: %d %v, want 2", n, err)
	}
	var got []string
	for _, m := range c.XRange(ctx, k.Retries(testGroup), "-", "+").Val() {
		got = append(got, m.Values[FieldRetry].(string))
	}
	if !slices.Equal(got, []string{"d1", "d2"}) {
		t.Errorf("retries stream %v, want [d1 d2] in due order", got)
	}
	if m := c.ZRange(ctx, sched, 0, -1).Val(); !slices.Equal(m, []string{"later"}) {
		t.Errorf("schedule %v, want [later]", m)
	}
	if m := c.HKeys(ctx, data).Val(); !slices.Equal(m, []string{"later"}) {
		t.Errorf("retry data %v, want [later]", m)
	}
}

// deleteIdleConsumer removes a dead consumer from every stream of the
// group and from the registry, unless it holds a pending entry on any of
// them or its heartbeat is fresh.
func TestDeleteIdleConsumerScript(t *testing.T) {
	ctx, c, r := scriptFixture(t)
	k := r.Keys()
	streams := []string{k.Main(), k.Retries(testGroup)}
	consumersOf := func(stream string) []string {
		var out []string
		for _, cs := range c.XInfoConsumers(ctx, stream, testGroup).Val() {
			out = append(out, cs.Name)
		}
		slices.Sort(out)
		return out
	}
	for _, s := range streams {
		if err := c.XGroupCreateConsumer(ctx, s, testGroup, "dead").Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.XGroupCreateConsumer(ctx, s, testGroup, "holder").Err(); err != nil {
			t.Fatal(err)
		}
	}
	deliver(t, c, k.Retries(testGroup), "holder") // pending on the second stream only
	if err := c.HSet(ctx, k.Consumers(testGroup), "dead", `{"lastSeen":1000,"handlers":[]}`, "holder", `{"lastSeen":1000,"handlers":[]}`).Err(); err != nil {
		t.Fatal(err)
	}

	if got, err := r.DeleteIdleConsumer(ctx, [][]string{streams}, testGroup, "holder", time.Minute); err != nil || got {
		t.Errorf("holder (pending entry on the retries stream): removed %v %v, want kept", got, err)
	}
	if got, err := r.DeleteIdleConsumer(ctx, [][]string{streams}, testGroup, "dead", time.Minute); err != nil || !got {
		t.Errorf("dead: removed %v %v, want removed", got, err)
	}
	for _, s := range streams {
		if got := consumersOf(s); !slices.Equal(got, []string{"holder"}) {
			t.Errorf("%s consumers %v, want [holder]", s, got)
		}
	}
	if reg := c.HKeys(ctx, k.Consumers(testGroup)).Val(); !slices.Equal(reg, []string{"holder"}) {
		t.Errorf("registry %v, want [holder]", reg)
	}
}

// deadLetterEntry writes the dead letter and acknowledges the entry in one
// step, only for its owner; sent again after a lost reply it writes
// nothing more.
func TestDeadLetterEntryScript(t *testing.T) {
	ctx, c, r := scriptFixture(t)
	main := r.Keys().Main()
	id := deliver(t, c, main, "me")
	if err := r.DeadLetterEntry(ctx, 0, main, testGroup, "other", id, "raw", []byte(`{"reason":"bad"}`), "0"); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("dead-letter by a foreign consumer: %v, want ErrNotOwner", err)
	}
	if n := c.XLen(ctx, r.Keys().DLQ()).Val(); n != 0 {
		t.Fatalf("%d dead letters after a refused step", n)
	}
	for i, want := range []error{nil, ErrNotPending} {
		if err := r.DeadLetterEntry(ctx, 0, main, testGroup, "me", id, "raw", []byte(`{"reason":"bad"}`), "0"); !errors.Is(err, want) {
			t.Fatalf("send %d: %v, want %v", i+1, err, want)
		}
	}
	dlq := c.XRange(ctx, r.Keys().DLQ(), "-", "+").Val()
	if len(dlq) != 1 || dlq[0].Values[FieldEvent] != "raw" || dlq[0].Values[FieldDLQ] != `{"reason":"bad"}` {
		t.Errorf("DLQ %v, want one entry", dlq)
	}
	if owner, _, _ := pendingAt(t, c, main, id); owner != "" {
		t.Errorf("entry still pending at %q", owner)
	}
}
