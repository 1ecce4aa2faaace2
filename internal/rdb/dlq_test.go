package rdb

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// dlqMembersScript returns the index members Lua builds.
// ARGV[1] tenant  ARGV[2] event id  ARGV[3] stream id
var dlqMembersScript = redis.NewScript(luaSchema + luaDLQ + `
return dlqMembers(ARGV[1], ARGV[2], ARGV[3])
`)

func TestPadID(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"0-0", "00000000000000000000-00000000000000000000"},
		{"1-2", "00000000000000000001-00000000000000000002"},
		{"1700000000000-15", "00000001700000000000-00000000000000000015"},
		{MaxID, "18446744073709551615-18446744073709551615"},
		{"5", "00000000000000000005-00000000000000000000"},
	} {
		if got := PadID(tc.id); got != tc.want {
			t.Errorf("PadID(%q) = %q, want %q", tc.id, got, tc.want)
		}
		if got, ok := unpadMember("t:0::" + PadID(tc.id)); !ok || (strings.Contains(tc.id, "-") && got != tc.id) {
			t.Errorf("unpadMember(PadID(%q)) = %q %v", tc.id, got, ok)
		}
	}
	// Padded ids sort like stream ids.
	ids := []string{"10-0", "9-5", "9-10", "100-0", "0-1", "1700000000000-0", "999-18446744073709551615"}
	padded := make([]string, len(ids))
	for i, id := range ids {
		padded[i] = PadID(id)
	}
	sort.Strings(padded)
	slices.SortFunc(ids, CompareIDs)
	for i := range ids {
		if padded[i] != PadID(ids[i]) {
			t.Fatalf("padded order %v differs from id order %v", padded, ids)
		}
	}
}

// The Go member builders and the Lua ones agree, for tenants and event
// ids holding the separators.
func TestDLQMembersGoAndLuaAgree(t *testing.T) {
	ctx, c, _ := scriptFixture(t)
	for _, tc := range []struct{ tenant, event, id string }{
		{"t1", "e1", "1-0"},
		{"", "", "1700000000000-3"},
		{"", "e", "5-5"},
		{"a:b", "x;y", "12-0"},
		{"tenänt", "évent:1:", "18446744073709551615-18446744073709551615"},
		{strings.Repeat("t", 300), "01HZX", "0-1"},
	} {
		got, err := dlqMembersScript.Run(ctx, c, nil, tc.tenant, tc.event, tc.id).StringSlice()
		if err != nil {
			t.Fatal(err)
		}
		want := []string{DLQTenantMember(tc.tenant, tc.id)}
		if tc.event != "" {
			want = append(want, DLQEventMember(tc.event, tc.id))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%+v: Lua %q, Go %q", tc, got, want)
		}
	}
}

// No member of one tenant falls in another tenant's range, whatever the
// characters; the member ends with the padded id.
func FuzzDLQMembers(f *testing.F) {
	f.Add("t1", "t10", uint64(1), uint64(0))
	f.Add("a", "a:", uint64(1700000000000), uint64(7))
	f.Add("", ":", uint64(0), uint64(0))
	f.Add("a;", "a", uint64(5), uint64(18446744073709551615))
	f.Fuzz(func(t *testing.T, a, b string, ms, seq uint64) {
		id := fmt.Sprintf("%d-%d", ms, seq)
		m := DLQTenantMember(a, id)
		if got, ok := unpadMember(m); !ok || got != id {
			t.Fatalf("unpadMember(%q) = %q %v, want %q", m, got, ok, id)
		}
		if a == b {
			return
		}
		p := dlqTenantPrefix(b)
		lo, hi := p, strings.TrimSuffix(p, ":")+";"
		if m >= lo && m < hi {
			t.Fatalf("member %q of tenant %q falls in tenant %q's range [%q, %q)", m, a, b, lo, hi)
		}
		if e := DLQEventMember(a, id); strings.HasPrefix(e, "t:") {
			t.Fatalf("event member %q looks like a tenant member", e)
		}
	})
}

// dlqMeta is a DLQ entry's metadata for tests.
func dlqMeta(tenant, event string) []byte {
	b, _ := json.Marshal(map[string]any{"tenantId": tenant, "eventId": event, "handler": "h"})
	return b
}

// checkIndex compares the DLQ index with the members of the DLQ's
// entries (built from their metadata with the Go builders).
func checkIndex(t *testing.T, c redis.UniversalClient, k Keys) {
	t.Helper()
	ctx := context.Background()
	var want []string
	for _, m := range c.XRange(ctx, k.DLQ(), "-", "+").Val() {
		var meta struct{ TenantID, EventID string }
		s, _ := m.Values[FieldDLQ].(string)
		_ = json.Unmarshal([]byte(s), &meta)
		want = append(want, DLQTenantMember(meta.TenantID, m.ID))
		if meta.EventID != "" {
			want = append(want, DLQEventMember(meta.EventID, m.ID))
		}
	}
	got := c.ZRange(ctx, k.DLQIndex(), 0, -1).Val()
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("dlq index %q\nwant (from the DLQ) %q", got, want)
	}
}

func TestTrimDLQKeepsTheIndexRight(t *testing.T) {
	ctx, c, r := scriptFixture(t)
	k := r.Keys()
	now := time.Now()
	old := now.Add(-48 * time.Hour).UnixMilli()
	var items []DLQAdd
	for i := range DLQTrimChunk + 20 {
		items = append(items, DLQAdd{ID: fmt.Sprintf("%d-%d", old, i+1), Payload: "{}", Meta: dlqMeta(fmt.Sprintf("t%d", i%3), fmt.Sprintf("e%d", i))})
	}
	items = append(items, DLQAdd{ID: fmt.Sprintf("%d-%d", old, 9999), Payload: "raw", Meta: []byte("not json")}) // no tenant: tenant "" member
	for i := range 5 {
		items = append(items, DLQAdd{ID: fmt.Sprintf("%d-%d", now.UnixMilli(), i+1), Payload: "{}", Meta: dlqMeta("t1", fmt.Sprintf("new%d", i))})
	}
	if _, err := r.AddDLQ(ctx, items); err != nil {
		t.Fatal(err)
	}
	checkIndex(t, c, k)
	minID := MinIDFor(now, 24*time.Hour)
	n, err := r.TrimDLQ(ctx, 0, minID)
	if err != nil || n != DLQTrimChunk {
		t.Fatalf("first trim: %d %v, want %d", n, err, DLQTrimChunk)
	}
	checkIndex(t, c, k)
	if n, err = r.TrimDLQ(ctx, 0, minID); err != nil || n != 21 {
		t.Fatalf("second trim: %d %v, want 21", n, err)
	}
	if n, err = r.TrimDLQ(ctx, 0, minID); err != nil || n != 0 {
		t.Fatalf("third trim: %d %v, want 0", n, err)
	}
	checkIndex(t, c, k)
	if l := c.XLen(ctx, k.DLQ()).Val(); l != 5 {
		t.Errorf("dlq length %d, want 5", l)
	}
	counts, err := r.DLQCounts(ctx)
	if err != nil || counts[DLQCounterTrimmed] != DLQTrimChunk+21 {
		t.Errorf("counters %v %v, want trimmed %d", counts, err, DLQTrimChunk+21)
	}
	for _, minID := range []string{"0", "0-0", ""} {
		if n, err := r.TrimDLQ(ctx, 0, minID); err != nil || n != 0 {
			t.Errorf("trim below %q: %d %v", minID, n, err)
		}
	}
}

// A dead letter written by settle is indexed, and old DLQ entries are
// removed with their members in the same step.
func TestSettleIndexesDeadLettersAndTrimsOldOnes(t *testing.T) {
	ctx, c, r := scriptFixture(t)
	k := r.Keys()
	now := time.Now()
	old := now.Add(-48 * time.Hour).UnixMilli()
	var items []DLQAdd
	for i := range 3 {
		items = append(items, DLQAdd{ID: fmt.Sprintf("%d-%d", old, i+1), Payload: "{}", Meta: dlqMeta("t9", fmt.Sprintf("old%d", i))})
	}
	if _, err := r.AddDLQ(ctx, items); err != nil {
		t.Fatal(err)
	}
	id := deliver(t, c, k.Main(), "me")
	err := r.Settle(ctx, SettleArgs{
		Stream: k.Main(), Group: testGroup, Consumer: "me", EntryID: id, EventID: ScopedID("t1", "e1"), EventStreamID: id,
		Type: "a.b", Tenant: "t1", OpenTTL: time.Hour, ResolvedTTL: time.Minute, DLQMinID: MinIDFor(now, 24*time.Hour),
		Ops: []SettleOp{{Kind: OpDLQ, Handler: "b", Record: []byte(`{"state":"dlq"}`), Payload: `{"id":"e1"}`, Meta: dlqMeta("t1", "e1")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkIndex(t, c, k)
	msgs := c.XRange(ctx, k.DLQ(), "-", "+").Val()
	if len(msgs) != 1 {
		t.Fatalf("dlq %v, want the new dead letter only", msgs)
	}
	if n, _ := r.DLQCounts(ctx); n[DLQCounterTrimmed] != 3 {
		t.Errorf("trimmed %d, want 3", n[DLQCounterTrimmed])
	}
	ids, err := r.DLQEventIDs(ctx, []string{"e1", "old0"})
	if err != nil || len(ids) != 2 || !slices.Equal(ids[0], []string{msgs[0].ID}) || len(ids[1]) != 0 {
		t.Errorf("event ids %v %v", ids, err)
	}
	// An invalid entry's dead letter is indexed under tenant "".
	bad := deliver(t, c, k.Main(), "me")
	if err := r.DeadLetterEntry(ctx, 0, k.Main(), testGroup, "me", bad, "raw", []byte(`{"reason":"bad"}`), "0"); err != nil {
		t.Fatal(err)
	}
	checkIndex(t, c, k)
	if ids, err := r.DLQTenantIDs(ctx, "", DLQIDRange{}, 10); err != nil || len(ids) != 1 {
		t.Errorf("tenant \"\" ids %v %v, want the invalid entry's", ids, err)
	}
}

func TestDLQTenantIDsRanges(t *testing.T) {
	ctx, c, r := scriptFixture(t)
	var items []DLQAdd
	// t1 and t10 share a prefix; "t1:" holds the separator.
	for i := range 10 {
		for j, tenant := range []string{"t", "t1", "t10", "t1:"} {
			items = append(items, DLQAdd{ID: fmt.Sprintf("%d-%d", 1000+i, j+1), Payload: "{}", Meta: dlqMeta(tenant, "e")})
		}
	}
	if _, err := r.AddDLQ(ctx, items); err != nil {
		t.Fatal(err)
	}
	checkIndex(t, c, r.Keys())
	for _, tc := range []struct {
		name   string
		tenant string
		rg     DLQIDRange
		count  int
		want   []string
	}{
		{"all newest first", "t1", DLQIDRange{}, 100, []string{"1009-2", "1008-2", "1007-2", "1006-2", "1005-2", "1004-2", "1003-2", "1002-2", "1001-2", "1000-2"}},
		{"count", "t10", DLQIDRange{}, 2, []string{"1009-3", "1008-3"}},
		{"before cursor", "t1:", DLQIDRange{Before: "1005-4"}, 3, []string{"1004-4", "1003-4", "1002-4"}},
		{"from to", "t", DLQIDRange{From: "1002-0", To: "1004-18446744073709551615"}, 100, []string{"1004-1", "1003-1", "1002-1"}},
		{"cursor below to", "t", DLQIDRange{To: "1008-9", Before: "1003-1"}, 100, []string{"1002-1", "1001-1", "1000-1"}},
		{"to below cursor", "t", DLQIDRange{To: "1001-9", Before: "1008-1"}, 100, []string{"1001-1", "1000-1"}},
		{"other tenant", "t2", DLQIDRange{}, 100, []string{}},
	} {
		got, err := r.DLQTenantIDs(ctx, tc.tenant, tc.rg, tc.count)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if n, err := r.DLQTenantCount(ctx, "t1"); err != nil || n != 10 {
		t.Errorf("count of t1: %d %v", n, err)
	}
}

func TestRedriveAndDeleteScripts(t *testing.T) {
	ctx, c, r := scriptFixture(t)
	k := r.Keys()
	meta := dlqMeta("t1", "e1")
	ids, err := r.AddDLQ(ctx, []DLQAdd{{Payload: `{"id":"e1"}`, Meta: meta}, {Payload: `{"id":"e2"}`, Meta: dlqMeta("t1", "e2")}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rd := Redrive{ID: ids[0], MetaSum: MetaSum(string(meta)), Group: testGroup, StatusID: ScopedID("t1", "e1"),
		StreamID: "1-0", Type: "a.b", Tenant: "t1", OpenTTL: time.Hour,
		Handlers: []RedriveHandler{{Handler: "h", Data: []byte(`{"handler":"h"}`), Record: []byte(`{"state":"retrying"}`), Member: RetryMember("h", "1-0", "e1")},
			{Handler: "g", Data: []byte(`{"handler":"g"}`), Record: []byte(`{"state":"retrying"}`), Member: RetryMember("g", "1-0", "e1")}}}
	changed := rd
	changed.MetaSum = MetaSum("other")
	out, err := r.RedriveDLQ(ctx, []Redrive{changed}, now)
	if err != nil || !slices.Equal(out, []int{DLQChanged}) {
		t.Fatalf("redrive of a changed entry: %v %v", out, err)
	}
	if c.XLen(ctx, k.DLQ()).Val() != 2 || c.ZCard(ctx, k.RetrySchedule(testGroup)).Val() != 0 {
		t.Fatal("a refused redrive changed something")
	}
	c.ScriptFlush(ctx) // the pipeline falls back to EVAL
	out, err = r.RedriveDLQ(ctx, []Redrive{rd, rd}, now)
	if err != nil || !slices.Equal(out, []int{DLQDone, DLQGone}) {
		t.Fatalf("redrive twice: %v %v, want done then gone", out, err)
	}
	checkIndex(t, c, k)
	if got := c.ZRange(ctx, k.RetrySchedule(testGroup), 0, -1).Val(); len(got) != 2 {
		t.Errorf("schedule %v, want both handlers", got)
	}
	if sc := c.ZScore(ctx, k.RetrySchedule(testGroup), RetryMember("h", "1-0", "e1")).Val(); int64(sc) != DueMillis(now) {
		t.Errorf("due %v, want now", sc)
	}
	st := c.HGetAll(ctx, k.Status(testGroup, ScopedID("t1", "e1"))).Val()
	if st[StatusOpen] != "2" || st[StatusHandlerField("h")] != `{"state":"retrying"}` || st[StatusTenant] != "t1" || st[StatusStream] != "1-0" {
		t.Errorf("status %v", st)
	}
	if ttl := c.PTTL(ctx, k.Status(testGroup, ScopedID("t1", "e1"))).Val(); ttl <= 0 {
		t.Errorf("status ttl %v", ttl)
	}
	if d := c.HGet(ctx, k.RetryData(testGroup), RetryMember("g", "1-0", "e1")).Val(); d != `{"handler":"g"}` {
		t.Errorf("retry data %q", d)
	}
	out, err = r.DeleteDLQ(ctx, []string{ids[1], ids[1], ids[0]}, []string{"", "", ""})
	if err != nil || !slices.Equal(out, []int{DLQDone, DLQGone, DLQGone}) {
		t.Fatalf("delete: %v %v", out, err)
	}
	checkIndex(t, c, k)
	counts, _ := r.DLQCounts(ctx)
	if counts[DLQCounterRedriven] != 1 || counts[DLQCounterDeleted] != 1 {
		t.Errorf("counters %v", counts)
	}
}
