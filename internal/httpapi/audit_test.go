package httpapi

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// TestAuditRoute: GET /admin/audit for admin and viewer tokens of two
// tenants, a platform admin and no token: admin and owner only, a tenant
// sees the actions on its own tenant, newest first, paged by cursor; bad
// parameters answer 400 naming them.
func TestAuditRoute(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	_, srv := newServer(t, c, prefix)
	key := rdb.NewKeys(prefix, false).Audit()
	var all []string // Detail, newest first
	for i, sc := range []string{"tenant-a", "*", "tenant-b", "tenant-a"} {
		d := sc + "/" + string(rune('0'+i))
		rec, _ := json.Marshal(eventbus.AuditEntry{At: time.Now(), Subject: "s", TenantID: "*", Role: "admin",
			Action: "dlq.purge", Scope: sc, Count: 1, Detail: d})
		if err := c.XAdd(ctx, &redis.XAddArgs{Stream: key, Values: []any{rdb.FieldAudit, rec}}).Err(); err != nil {
			t.Fatal(err)
		}
		all = append([]string{d}, all...)
	}
	type page struct {
		Items      []eventbus.AuditEntry `json:"items"`
		NextCursor *string               `json:"nextCursor"`
	}
	list := func(r reply) ([]string, string) {
		var p page
		if err := json.Unmarshal(r.body, &p); err != nil || p.Items == nil || p.NextCursor == nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		var out []string
		for _, it := range p.Items {
			if it.ID == "" {
				t.Errorf("item without id: %s", r.body)
			}
			out = append(out, it.Detail)
		}
		return out, *p.NextCursor
	}
	adminA, ownerA, viewerA := jwtFor(t, "tenant-a", "admin"), jwtFor(t, "tenant-a", "owner"), jwtFor(t, "tenant-a", "viewer")
	adminB := jwtFor(t, "tenant-b", "admin")
	for _, tt := range []struct {
		name, token, query string
		want               int
		items              []string
		field              string
	}{
		{"tenant-a admin", adminA, "", 200, []string{"tenant-a/3", "tenant-a/0"}, ""},
		{"tenant-a owner", ownerA, "", 200, []string{"tenant-a/3", "tenant-a/0"}, ""},
		{"tenant-a viewer", viewerA, "", 403, nil, ""},
		{"tenant-a viewer key", keyViewer, "", 403, nil, ""},
		{"tenant-a publisher key", keyPublisher, "", 403, nil, ""},
		{"tenant-b admin", adminB, "", 200, []string{"tenant-b/2"}, ""},
		{"platform admin", keyPlatform, "", 200, all, ""},
		{"platform jwt (refused by policy)", jwtFor(t, "*", "admin"), "", 401, nil, ""},
		{"bad cursor", keyPlatform, "cursor=abc", 400, nil, "cursor"},
		{"limit 0", keyPlatform, "limit=0", 400, nil, "limit"},
		{"limit 101", keyPlatform, "limit=101", 400, nil, "limit"},
		{"limit x", adminA, "limit=x", 400, nil, "limit"},
		{"no token", "", "", 401, nil, ""},
	} {
		r := getAuthed(t, srv.URL+"/admin/audit?"+tt.query, tt.token)
		if r.status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.want)
			continue
		}
		if tt.want != 200 {
			code, field := r.errorCode(t)
			if field != tt.field || (tt.want == 403 && code != "forbidden") {
				t.Errorf("%s: code %q field %q, want field %q", tt.name, code, field, tt.field)
			}
			continue
		}
		if got, _ := list(r); !slices.Equal(got, tt.items) {
			t.Errorf("%s: items %v, want %v", tt.name, got, tt.items)
		}
	}
	// Paging by cursor returns each entry once, newest first.
	for _, tc := range []struct {
		token string
		want  []string
	}{{keyPlatform, all}, {adminA, []string{"tenant-a/3", "tenant-a/0"}}} {
		var got []string
		cursor := ""
		for i := 0; ; i++ {
			if i > 10 {
				t.Fatal("too many pages")
			}
			r := getAuthed(t, srv.URL+"/admin/audit?limit=1&cursor="+url.QueryEscape(cursor), tc.token)
			if r.status != 200 {
				t.Fatalf("page %d: %d %s", i, r.status, r.body)
			}
			items, next := list(r)
			got = append(got, items...)
			if next == "" {
				break
			}
			cursor = next
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("paged %v, want %v", got, tc.want)
		}
	}
}
