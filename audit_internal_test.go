package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
	"github.com/redis/go-redis/v9"
)

func auditBus(t *testing.T) (*Bus, *redis.Client, string) {
	t.Helper()
	c, prefix := redistest.Shared(t)
	b, err := New(Config{Redis: c, Prefix: prefix, Group: "g", Consumer: "c"})
	if err != nil {
		t.Fatal(err)
	}
	return b, c, prefix
}

// auditAll pages through the audit log in scope with limit and returns
// the Detail of every item, in page order, failing on a repeated id.
func auditAll(t *testing.T, in *Inspector, scope Scope, limit int) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	cursor := ""
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("too many pages")
		}
		page, err := in.Audit(context.Background(), scope, cursor, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) > limit {
			t.Fatalf("page of %d items, limit %d", len(page.Items), limit)
		}
		for _, e := range page.Items {
			if seen[e.ID] {
				t.Fatalf("entry %s listed twice", e.ID)
			}
			seen[e.ID] = true
			out = append(out, e.Detail)
		}
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

// TestAuditPagingAndScope: entries of two tenants and of all tenants
// ("*") are listed newest first, each exactly once across pages; a
// tenant sees the actions on its own tenant only.
func TestAuditPagingAndScope(t *testing.T) {
	ctx := context.Background()
	b, _, _ := auditBus(t)
	scopes := []string{"t1", "t2", "*", "t1", "*", "t2", "t1"}
	var all, t1, t2 []string
	for i, sc := range scopes {
		d := fmt.Sprintf("%d-%s", i, sc)
		e := AuditEntry{Subject: "u", TenantID: "*", Role: "admin", Action: "dlq.purge", Scope: sc,
			Filter: json.RawMessage(`{"type":"a.*"}`), Count: int64(i), Detail: d}
		if err := b.appendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		all = append([]string{d}, all...)
		switch sc {
		case "t1":
			t1 = append([]string{d}, t1...)
		case "t2":
			t2 = append([]string{d}, t2...)
		}
	}
	in := b.Inspector()
	for _, tt := range []struct {
		name  string
		scope Scope
		want  []string
	}{
		{"all", AllTenants(), all}, {"t1", TenantScope("t1"), t1}, {"t2", TenantScope("t2"), t2},
		{"t3", TenantScope("t3"), nil},
	} {
		for _, limit := range []int{1, 2, 3, 100} {
			if got := auditAll(t, in, tt.scope, limit); !slices.Equal(got, tt.want) {
				t.Errorf("%s limit %d: %v, want %v", tt.name, limit, got, tt.want)
			}
		}
	}
	// The record reads back as written, with its id and time.
	page, err := in.Audit(ctx, TenantScope("t1"), "", 1)
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("%+v %v", page, err)
	}
	e := page.Items[0]
	if e.Subject != "u" || e.TenantID != "*" || e.Role != "admin" || e.Action != "dlq.purge" || e.Scope != "t1" ||
		string(e.Filter) != `{"type":"a.*"}` || e.Count != 6 || !rdb.ValidID(e.ID) || time.Since(e.At) > time.Minute {
		t.Errorf("entry %+v", e)
	}
	// Bad arguments.
	for _, tt := range []struct {
		cursor string
		limit  int
		field  string
	}{{"abc", 0, "cursor"}, {"", -1, "limit"}, {"", 101, "limit"}} {
		_, err := in.Audit(ctx, AllTenants(), tt.cursor, tt.limit)
		var fe *FilterError
		if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("cursor %q limit %d: %v, want field %s", tt.cursor, tt.limit, err, tt.field)
		}
	}
	if _, err := in.Audit(ctx, Scope{}, "", 0); !errors.Is(err, ErrInvalidScope) {
		t.Errorf("zero scope: %v", err)
	}
	if p, err := in.Audit(ctx, AllTenants(), "0-0", 0); err != nil || len(p.Items) != 0 || p.NextCursor != "" {
		t.Errorf("cursor 0-0: %+v %v", p, err)
	}
}

// TestAuditReadIsBounded: a tenant page reads at most AuditReadMax
// entries, returning a cursor to go on; an entry that is not a record is
// shown to AllTenants only.
func TestAuditReadIsBounded(t *testing.T) {
	ctx := context.Background()
	b, c, prefix := auditBus(t)
	key := rdb.NewKeys(prefix, false).Audit()
	if err := b.appendAudit(ctx, AuditEntry{Action: "dlq.delete", Scope: "t1", Detail: "old"}); err != nil {
		t.Fatal(err)
	}
	pipe := c.Pipeline()
	for range AuditReadMax + 50 {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{rdb.FieldAudit, `{"action":"dlq.purge","scope":"*"}`}})
	}
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{rdb.FieldAudit, "not json"}})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	in := b.Inspector()
	p, err := in.Audit(ctx, TenantScope("t1"), "", 10)
	if err != nil || len(p.Items) != 0 || p.NextCursor == "" {
		t.Fatalf("first page: %d items, cursor %q, %v", len(p.Items), p.NextCursor, err)
	}
	p, err = in.Audit(ctx, TenantScope("t1"), p.NextCursor, 10)
	if err != nil || len(p.Items) != 1 || p.Items[0].Detail != "old" || p.NextCursor != "" {
		t.Fatalf("second page: %+v, %v", p, err)
	}
	p, err = in.Audit(ctx, AllTenants(), "", 1)
	if err != nil || len(p.Items) != 1 || !strings.Contains(p.Items[0].Detail, "not json") {
		t.Fatalf("platform page: %+v, %v", p, err)
	}
}

// TestAuditRefusesInvalidEntries: nothing is written for an entry
// without an action or scope, or with an over-long or invalid field.
func TestAuditRefusesInvalidEntries(t *testing.T) {
	ctx := context.Background()
	b, c, prefix := auditBus(t)
	ok := AuditEntry{Subject: "s", TenantID: "t1", Role: "admin", Action: "dlq.redrive", Scope: "t1"}
	for name, mutate := range map[string]func(*AuditEntry){
		"no action":    func(e *AuditEntry) { e.Action = "" },
		"no scope":     func(e *AuditEntry) { e.Scope = "" },
		"long subject": func(e *AuditEntry) { e.Subject = strings.Repeat("s", auditMaxField+1) },
		"long detail":  func(e *AuditEntry) { e.Detail = strings.Repeat("d", auditMaxText+1) },
		"bad filter":   func(e *AuditEntry) { e.Filter = json.RawMessage("{") },
		"bad utf-8":    func(e *AuditEntry) { e.Role = "\xff" },
		"negative":     func(e *AuditEntry) { e.Count = -1 },
	} {
		e := ok
		mutate(&e)
		if err := b.appendAudit(ctx, e); !errors.Is(err, errInvalidAudit) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n, _ := c.XLen(ctx, rdb.NewKeys(prefix, false).Audit()).Result(); n != 0 {
		t.Fatalf("%d entries written", n)
	}
	if err := b.appendAudit(ctx, ok); err != nil {
		t.Fatal(err)
	}
}

// TestAuditRetention: entries older than Retention.Audit are removed
// exactly by the janitor's Trim and by every write; younger ones stay.
func TestAuditRetention(t *testing.T) {
	ctx := context.Background()
	b, c, prefix := auditBus(t)
	if b.cfg.Retention.Audit != 365*24*time.Hour {
		t.Fatalf("default audit retention %v", b.cfg.Retention.Audit)
	}
	if _, err := New(Config{Redis: c, Prefix: prefix, Retention: Retention{Audit: -time.Hour}}); err == nil ||
		!strings.Contains(err.Error(), "Retention.Audit") {
		t.Errorf("negative audit retention: %v", err)
	}
	key := rdb.NewKeys(prefix, false).Audit()
	now := time.Now()
	addOld := func(ages ...time.Duration) {
		t.Helper()
		for i, age := range ages {
			id := fmt.Sprintf("%d-%d", now.Add(-age).UnixMilli(), i)
			if err := c.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: id, Values: []any{rdb.FieldAudit, `{"action":"x","scope":"*"}`}}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	const day = 24 * time.Hour
	addOld(400*day, 380*day, 366*day, 300*day, day) // ascending ids
	res, err := b.Trim(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Audit != 3 {
		t.Errorf("Trim removed %d audit entries, want 3", res.Audit)
	}
	if n, _ := c.XLen(ctx, key).Result(); n != 2 {
		t.Errorf("%d entries left after Trim, want 2", n)
	}
	// A write trims inline.
	if err := c.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	addOld(500*day, 370*day, 10*day)
	if err := b.appendAudit(ctx, AuditEntry{Action: "replay.start", Scope: "*"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.XLen(ctx, key).Result(); n != 2 {
		t.Errorf("%d entries left after a write, want 2", n)
	}
}
