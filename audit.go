package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/hyvve/eventbus/internal/rdb"
)

// AuditEntry is one record of the audit log: an admin write (dead-letter
// redrive, delete or purge; replay), who did it, on what, and how much it
// touched. The log is a stream with its own retention
// (Retention.Audit), read with Inspector.Audit.
type AuditEntry struct {
	// ID is the entry's stream id; set when read, ignored when written.
	ID string `json:"id"`
	// At is when the action was taken.
	At time.Time `json:"at"`
	// Subject is the actor (the token's subject).
	Subject string `json:"subject"`
	// TenantID is the actor's tenant, "*" for a platform token.
	TenantID string `json:"tenantId"`
	// Role is the actor's role.
	Role string `json:"role"`
	// Action names what was done: "dlq.redrive", "dlq.delete",
	// "dlq.purge", "replay.start", "replay.cancel"...
	Action string `json:"action"`
	// Scope is the tenant acted on, "*" for all tenants.
	Scope string `json:"scope"`
	// Filter is the filter (or id list) the action applied to, as JSON;
	// optional.
	Filter json.RawMessage `json:"filter,omitempty"`
	// Count is how many entries the action touched.
	Count int64 `json:"count"`
	// Detail is free text; optional.
	Detail string `json:"detail,omitempty"`
}

// Audit log bounds.
const (
	// auditMaxField bounds Subject, TenantID, Role, Action and Scope.
	auditMaxField = 256
	// auditMaxText bounds Detail and Filter.
	auditMaxText = 8 << 10
	// AuditReadMax is the most audit entries one Inspector.Audit call
	// reads, whatever its scope keeps.
	AuditReadMax = 1000
)

// errInvalidAudit is wrapped by appendAudit for an entry it refuses.
var errInvalidAudit = errors.New("eventbus: invalid audit entry")

// check validates an entry to be written.
func (e AuditEntry) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", errInvalidAudit, fmt.Sprintf(format, a...))
	}
	for _, f := range []struct{ name, v string }{
		{"action", e.Action}, {"subject", e.Subject}, {"tenantId", e.TenantID}, {"role", e.Role}, {"scope", e.Scope},
	} {
		switch {
		case f.name == "action" && f.v == "":
			return bad("action is empty")
		case len(f.v) > auditMaxField:
			return bad("%s is longer than %d bytes", f.name, auditMaxField)
		case !utf8.ValidString(f.v):
			return bad("%s is not UTF-8", f.name)
		}
	}
	switch {
	case e.Scope == "":
		return bad("scope is empty (\"*\" for all tenants)")
	case len(e.Detail) > auditMaxText || !utf8.ValidString(e.Detail):
		return bad("detail is longer than %d bytes or not UTF-8", auditMaxText)
	case len(e.Filter) > auditMaxText:
		return bad("filter is longer than %d bytes", auditMaxText)
	case len(e.Filter) > 0 && !json.Valid(e.Filter):
		return bad("filter is not JSON")
	case e.Count < 0:
		return bad("count %d is negative", e.Count)
	}
	return nil
}

// appendAudit writes e to the audit log (its ID is ignored; a zero At is
// now), trimming entries older than Retention.Audit in the same XADD. An
// invalid entry is refused before anything is written. An error from
// Redis means the entry was not written or, for a lost reply, that its
// outcome is unknown (the write is never re-sent).
func (b *Bus) appendAudit(ctx context.Context, e AuditEntry) error {
	if err := e.check(); err != nil {
		return err
	}
	e.ID = ""
	now := time.Now()
	if e.At.IsZero() {
		e.At = now
	}
	e.At = e.At.UTC()
	rec, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("%w: %v", errInvalidAudit, err)
	}
	if _, err := b.rdb.AppendAudit(ctx, rdb.MinIDFor(now, b.cfg.Retention.Audit), rec); err != nil {
		return wrapOp("append audit entry", err)
	}
	return nil
}

// AuditPage is one page of Inspector.Audit.
type AuditPage struct {
	Items []AuditEntry `json:"items"`
	// NextCursor continues the listing (the cursor of Audit); "" when the
	// log was read to its oldest entry.
	NextCursor string `json:"nextCursor"`
}

// Audit lists the audit log in scope, newest first. A tenant scope
// returns the entries whose Scope is that tenant only (an action on all
// tenants is shown to AllTenants only). cursor is the NextCursor of the
// previous page ("" starts at the newest entry); limit is the most items
// of the page (0: DefaultBrowseLimit, at most MaxBrowseLimit). A page
// reads at most AuditReadMax entries, so a page of a tenant with few
// entries may hold fewer items than limit and a cursor to go on. An
// entry that cannot be decoded is shown to AllTenants only, with its
// ID and its raw text in Detail. A bad cursor or limit is a *FilterError
// naming it; an invalid scope ErrInvalidScope.
func (in *Inspector) Audit(ctx context.Context, scope Scope, cursor string, limit int) (AuditPage, error) {
	if err := scope.Validate(); err != nil {
		return AuditPage{}, err
	}
	switch {
	case cursor != "" && !rdb.ValidID(cursor):
		return AuditPage{}, &FilterError{Field: "cursor", Reason: fmt.Sprintf("%q is not a cursor returned by a previous page", cursor)}
	case limit < 0 || limit > MaxBrowseLimit:
		return AuditPage{}, &FilterError{Field: "limit", Reason: fmt.Sprintf("%d is not between 1 and %d", limit, MaxBrowseLimit)}
	case limit == 0:
		limit = DefaultBrowseLimit
	}
	page := AuditPage{Items: []AuditEntry{}}
	if cursor == "0-0" {
		return page, nil // nothing precedes it
	}
	end := "+"
	if cursor != "" {
		end = rdb.Before(cursor)
	}
	b := in.b
	key := b.rdb.Keys().Audit()
	read := 0
	for read < AuditReadMax {
		n := min(browseChunk, AuditReadMax-read)
		msgs, err := b.rdb.RevRange(ctx, key, end, "-", int64(n))
		if err != nil {
			return AuditPage{}, wrapOp("read audit log", err)
		}
		for _, m := range msgs {
			read++
			e, ok := auditEntry(m.ID, m.Values[rdb.FieldAudit])
			if !scope.All() && (!ok || e.Scope == "*" || !scope.Includes(e.Scope)) {
				continue
			}
			page.Items = append(page.Items, e)
			if len(page.Items) == limit {
				page.NextCursor = m.ID
				return page, nil
			}
		}
		if len(msgs) < n {
			page.NextCursor = ""
			return page, nil // read to the oldest entry
		}
		page.NextCursor = msgs[len(msgs)-1].ID
		end = rdb.Before(page.NextCursor)
	}
	return page, nil
}

// auditEntry decodes an audit stream entry; ok is false when it is not a
// valid record (then Detail holds its raw text).
func auditEntry(id string, v any) (AuditEntry, bool) {
	raw, _ := v.(string)
	var e AuditEntry
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		e = AuditEntry{Action: "invalid", Detail: fmt.Sprintf("undecodable audit entry %q: %v", raw, err)}
		if t, ok := rdb.IDTime(id); ok {
			e.At = t
		}
		e.ID = id
		return e, false
	}
	e.ID = id
	return e, true
}
