package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/auth"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestParseBulkRequest: a bulk body selects by ids, eventIds or a filter
// (exactly one), with confirm; anything else answers 400 naming the field.
func TestParseBulkRequest(t *testing.T) {
	from := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	many := make([]string, MaxBulkIDs+1)
	for i := range many {
		many[i] = fmt.Sprintf("1-%d", i)
	}
	manyJSON, _ := json.Marshal(many)
	for _, tt := range []struct {
		name, body string
		want       bulkRequest
		field      string // "" with errText set: an error naming no field
		errText    string // the error contains it; "" for success
	}{
		{name: "ids", body: `{"ids":["1-1","2-0"],"confirm":true}`,
			want: bulkRequest{sel: eventbus.DLQSelection{IDs: []string{"1-1", "2-0"}}, confirm: true}},
		{name: "event ids, no confirm", body: `{"eventIds":["e1"]}`,
			want: bulkRequest{sel: eventbus.DLQSelection{EventIDs: []string{"e1"}}}},
		{name: "confirm false", body: `{"eventIds":["e1"],"confirm":false}`,
			want: bulkRequest{sel: eventbus.DLQSelection{EventIDs: []string{"e1"}}}},
		{name: "filter", body: `{"filter":{"type":"crm.*, billing.invoice.sent","handler":"mailer","tenantId":"t1","from":"2026-11-30T00:00:00Z","q":"timeout"},"confirm":true}`,
			want: bulkRequest{sel: eventbus.DLQSelection{Filter: &eventbus.DLQFilter{Types: []string{"crm.*", "billing.invoice.sent"}, Handler: "mailer", TenantID: "t1", From: from, Query: "timeout"}}, confirm: true}},
		{name: "filter type array", body: `{"filter":{"type":["a.*","b.c"]}}`,
			want: bulkRequest{sel: eventbus.DLQSelection{Filter: &eventbus.DLQFilter{Types: []string{"a.*", "b.c"}}}}},
		{name: "empty filter selects everything", body: `{"filter":{}}`,
			want: bulkRequest{sel: eventbus.DLQSelection{Filter: &eventbus.DLQFilter{}}}},
		{name: "nothing selected", body: `{"confirm":true}`, errText: "want one of"},
		{name: "ids and filter", body: `{"ids":["1-1"],"filter":{}}`, errText: "exactly one"},
		{name: "ids and event ids", body: `{"ids":["1-1"],"eventIds":["e"]}`, errText: "exactly one"},
		{name: "empty ids", body: `{"ids":[]}`, field: "ids", errText: "empty"},
		{name: "blank id", body: `{"eventIds":["e"," "]}`, field: "eventIds", errText: "eventIds[1]"},
		{name: "too many ids", body: `{"ids":` + string(manyJSON) + `}`, field: "ids", errText: "over the limit of 1000"},
		{name: "unknown field", body: `{"ids":["1-1"],"confrim":true}`, field: "confrim", errText: "unknown field"},
		{name: "unknown filter field", body: `{"filter":{"tenant":"t1"}}`, field: "tenant", errText: "unknown field"},
		{name: "confirm not a boolean", body: `{"ids":["1-1"],"confirm":"yes"}`, field: "confirm", errText: "bulk request"},
		{name: "ids not a list", body: `{"ids":"1-1"}`, field: "ids", errText: "bulk request"},
		{name: "bad from", body: `{"filter":{"from":"yesterday"}}`, field: "filter.from", errText: "RFC 3339"},
		{name: "bad to", body: `{"filter":{"to":"2026-13-01"}}`, field: "filter.to", errText: "RFC 3339"},
		{name: "bad type", body: `{"filter":{"type":5}}`, field: "filter.type", errText: "bulk request"},
		{name: "not JSON", body: `ids=1`, errText: "not a valid bulk request"},
		{name: "two values", body: `{"ids":["1-1"]} {}`, errText: "more than one"},
		{name: "empty body", body: ``, errText: "not a valid bulk request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, field, err := parseBulkRequest([]byte(tt.body))
			if tt.errText == "" {
				if err != nil {
					t.Fatalf("err %v", err)
				}
				if !bulkEqual(got, tt.want) {
					t.Errorf("got %+v (filter %+v), want %+v (filter %+v)", got, got.sel.Filter, tt.want, tt.want.sel.Filter)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errText) || field != tt.field {
				t.Errorf("err %v field %q, want an error containing %q naming %q", err, field, tt.errText, tt.field)
			}
		})
	}
}

func bulkEqual(a, b bulkRequest) bool {
	if a.confirm != b.confirm || !slices.Equal(a.sel.IDs, b.sel.IDs) || !slices.Equal(a.sel.EventIDs, b.sel.EventIDs) {
		return false
	}
	if (a.sel.Filter == nil) != (b.sel.Filter == nil) {
		return false
	}
	if a.sel.Filter == nil {
		return true
	}
	fa, fb := *a.sel.Filter, *b.sel.Filter
	return slices.Equal(fa.Types, fb.Types) && fa.Handler == fb.Handler && fa.TenantID == fb.TenantID &&
		fa.From.Equal(fb.From) && fa.To.Equal(fb.To) && fa.Query == fb.Query
}

// TestDLQListOptions: the list's query parameters become a DLQ filter;
// bad ones are refused naming the parameter.
func TestDLQListOptions(t *testing.T) {
	q, _ := url.ParseQuery("type=crm.*,billing.x&type=a.b&handler=mailer&q=boom&from=2026-11-30T00:00:00Z&to=2026-11-30T01:00:00.5Z&cursor=c1&limit=20&tenantId=ignored")
	o, field, err := dlqListOptions(q)
	if err != nil {
		t.Fatalf("%v (%s)", err, field)
	}
	want := eventbus.DLQListOptions{
		Filter: eventbus.DLQFilter{Types: []string{"crm.*", "billing.x", "a.b"}, Handler: "mailer", Query: "boom",
			From: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 30, 1, 0, 0, 5e8, time.UTC)},
		Cursor: "c1", Limit: 20,
	}
	if !slices.Equal(o.Filter.Types, want.Filter.Types) || o.Filter.Handler != want.Filter.Handler || o.Filter.Query != want.Filter.Query ||
		!o.Filter.From.Equal(want.Filter.From) || !o.Filter.To.Equal(want.Filter.To) || o.Cursor != want.Cursor || o.Limit != want.Limit || o.Filter.TenantID != "" {
		t.Errorf("got %+v, want %+v", o, want)
	}
	for _, tt := range []struct{ query, field string }{
		{"from=yesterday", "from"},
		{"to=1", "to"},
		{"limit=0", "limit"},
		{"limit=-3", "limit"},
		{"limit=ten", "limit"},
	} {
		q, _ := url.ParseQuery(tt.query)
		if _, field, err := dlqListOptions(q); err == nil || field != tt.field {
			t.Errorf("%s: err %v field %q, want field %q", tt.query, err, field, tt.field)
		}
	}
}

// TestTenantScope: a tenant token acts in its own tenant (naming another
// answers 404); a platform token in every tenant or the one it names.
func TestTenantScope(t *testing.T) {
	tenantA := auth.Principal{Subject: "u", TenantID: "tenant-a", Role: "admin"}
	platform := auth.Principal{Subject: "p", TenantID: auth.AllTenants, Role: "owner"}
	for _, tt := range []struct {
		name   string
		p      auth.Principal
		tenant string
		ok     bool
		want   string // the scope's String
	}{
		{"tenant, none named", tenantA, "", true, eventbus.TenantScope("tenant-a").String()},
		{"tenant, own named", tenantA, "tenant-a", true, eventbus.TenantScope("tenant-a").String()},
		{"tenant, other named", tenantA, "tenant-b", false, ""},
		{"platform, none named", platform, "", true, eventbus.AllTenants().String()},
		{"platform, one named", platform, "tenant-b", true, eventbus.TenantScope("tenant-b").String()},
	} {
		scope, ok := tenantScope(tt.p, tt.tenant)
		if ok != tt.ok || (ok && scope.String() != tt.want) {
			t.Errorf("%s: %v %v, want %v %v", tt.name, scope, ok, tt.want, tt.ok)
		}
	}
	// A blank tenant named by a platform token is an invalid scope (400).
	if scope, ok := tenantScope(platform, " "); !ok || scope.Validate() == nil {
		t.Errorf("blank tenant: %v %v, want an invalid scope", scope, ok)
	}
	if a := actor(platform); a != (eventbus.Actor{Subject: "p", TenantID: "*", Role: "owner"}) {
		t.Errorf("actor %+v", a)
	}
}

// TestWriteDLQError: the library's errors map to the documented answers.
func TestWriteDLQError(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	for _, tt := range []struct {
		name        string
		err         error
		prefix      string
		status      int
		code, field string
		msgHas      string
	}{
		{"not found", fmt.Errorf("x: %w", eventbus.ErrNotFound), "", 404, "not_found", "", "nothing here"},
		{"redrive limit", fmt.Errorf("x: %w", eventbus.ErrRedriveLimit), "", 409, "redrive_limit", "", "EVENTBUS_MAX_REDRIVES"},
		{"not redrivable", eventbus.ErrNotRedrivable, "", 409, "not_redrivable", "", "not a valid event"},
		{"filter error", &eventbus.FilterError{Field: "type", Reason: "bad"}, "", 400, "invalid_request", "type", "type: bad"},
		{"filter error in a body", &eventbus.FilterError{Field: "from", Reason: "bad"}, "filter.", 400, "invalid_request", "filter.from", "filter.from"},
		{"cursor error in a body", &eventbus.FilterError{Field: "cursor", Reason: "bad"}, "filter.", 400, "invalid_request", "cursor", "cursor"},
		{"bare invalid filter", fmt.Errorf("x: %w", eventbus.ErrInvalidFilter), "", 400, "invalid_request", "", "invalid filter"},
		{"invalid scope", fmt.Errorf("x: %w", eventbus.ErrInvalidScope), "", 400, "invalid_request", "tenantId", "tenantId"},
		{"unavailable", fmt.Errorf("x: %w", eventbus.ErrUnavailable), "", 503, "redis_unavailable", "", "unreachable"},
		{"outcome unknown", &eventbus.OutcomeUnknownError{Err: fmt.Errorf("timeout")}, "", 504, "outcome_unknown", "", "may or may not"},
		{"other", fmt.Errorf("boom secret"), "", 500, "internal", "", "request id"},
	} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/admin/events/dlq", nil)
		s.writeDLQError(rec, r, "test", tt.err, "nothing here", tt.prefix)
		var e errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatalf("%s: %s: %v", tt.name, rec.Body, err)
		}
		if rec.Code != tt.status || e.Error.Code != tt.code || e.Error.Field != tt.field || !strings.Contains(e.Error.Message, tt.msgHas) || strings.Contains(e.Error.Message, "secret") {
			t.Errorf("%s: %d %+v, want %d %s field %q message with %q", tt.name, rec.Code, e.Error, tt.status, tt.code, tt.field, tt.msgHas)
		}
	}
}

// TestDLQRouteRefusals: the answers the routes decide before asking the
// Inspector (no dead letters needed): 401 without a token, 403 for roles
// other than admin and owner, 404 for a tenantId naming another tenant,
// 400 naming the parameter or body field, 413 for a body over the limit,
// 405 for another method.
func TestDLQRouteRefusals(t *testing.T) {
	c, prefix := redistest.Shared(t)
	_, srv := newServer(t, c, prefix)
	adminA, viewerA := jwtFor(t, "tenant-a", "admin"), jwtFor(t, "tenant-a", "viewer")
	big := `{"ids":["` + strings.Repeat("x", maxAdminBody) + `"]}`
	for _, tt := range []struct {
		name, method, path, token, body string
		want                            int
		code, field                     string
	}{
		{"list, no token", "GET", "/admin/events/dlq", "", "", 401, "unauthenticated", ""},
		{"list, publisher", "GET", "/admin/events/dlq", keyPublisher, "", 403, "forbidden", ""},
		{"stats, viewer", "GET", "/admin/events/stats", viewerA, "", 403, "forbidden", ""},
		{"purge, viewer key", "POST", "/admin/events/dlq/purge", keyViewer, `{"ids":["1-1"],"confirm":true}`, 403, "forbidden", ""},
		{"delete, member", "DELETE", "/admin/events/dlq/e1", jwtFor(t, "tenant-a", "member"), "", 403, "forbidden", ""},
		{"list, other tenant", "GET", "/admin/events/dlq?tenantId=tenant-b", adminA, "", 404, "not_found", ""},
		{"stats, other tenant", "GET", "/admin/events/stats?tenantId=tenant-b", adminA, "", 404, "not_found", ""},
		{"show, other tenant", "GET", "/admin/events/dlq/e1?tenantId=tenant-b", adminA, "", 404, "not_found", ""},
		{"entry, other tenant", "GET", "/admin/events/dlq/entries/1-1?tenantId=tenant-b", adminA, "", 404, "not_found", ""},
		{"retry, other tenant", "POST", "/admin/events/dlq/e1/retry?tenantId=tenant-b", adminA, "", 404, "not_found", ""},
		{"delete, other tenant", "DELETE", "/admin/events/dlq/e1?tenantId=tenant-b", adminA, "", 404, "not_found", ""},
		{"bulk filter, other tenant", "POST", "/admin/events/dlq/retry", adminA, `{"filter":{"tenantId":"tenant-b"}}`, 404, "not_found", ""},
		{"list, bad from", "GET", "/admin/events/dlq?from=yesterday", adminA, "", 400, "invalid_request", "from"},
		{"list, bad to", "GET", "/admin/events/dlq?to=2026", keyPlatform, "", 400, "invalid_request", "to"},
		{"list, bad limit", "GET", "/admin/events/dlq?limit=x", adminA, "", 400, "invalid_request", "limit"},
		{"bulk, nothing selected", "POST", "/admin/events/dlq/purge", adminA, `{"confirm":true}`, 400, "invalid_request", ""},
		{"bulk, two selections", "POST", "/admin/events/dlq/retry", keyPlatform, `{"ids":["1-1"],"eventIds":["e"]}`, 400, "invalid_request", ""},
		{"bulk, unknown field", "POST", "/admin/events/dlq/retry", adminA, `{"ids":["1-1"],"force":true}`, 400, "invalid_request", "force"},
		{"bulk, bad filter time", "POST", "/admin/events/dlq/purge", adminA, `{"filter":{"to":"soon"}}`, 400, "invalid_request", "filter.to"},
		{"bulk, confirm not boolean", "POST", "/admin/events/dlq/purge", adminA, `{"ids":["1-1"],"confirm":1}`, 400, "invalid_request", "confirm"},
		{"bulk, not JSON", "POST", "/admin/events/dlq/purge", adminA, `purge everything`, 400, "invalid_request", ""},
		{"bulk, body too large", "POST", "/admin/events/dlq/purge", adminA, big, 413, "too_large", ""},
		{"PUT on the list", "PUT", "/admin/events/dlq", adminA, "", 405, "method_not_allowed", ""},
	} {
		var body io.Reader
		if tt.body != "" {
			body = strings.NewReader(tt.body)
		}
		r := send(t, tt.method, srv.URL+tt.path, tt.token, body)
		if r.status != tt.want {
			t.Errorf("%s: %d %s, want %d", tt.name, r.status, r.body, tt.want)
			continue
		}
		if code, field := r.errorCode(t); code != tt.code || field != tt.field {
			t.Errorf("%s: code %q field %q, want %q %q", tt.name, code, field, tt.code, tt.field)
		}
	}
}
