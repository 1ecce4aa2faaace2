package eventbus

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/rdb"
)

// Dead-letter management bounds.
const (
	// DLQSelectMax is the most ids (DLQSelection.IDs or EventIDs) one
	// bulk action takes; select more with a filter.
	DLQSelectMax = 1000
	// dlqActChunk is the most entries redriven or deleted per pipeline.
	dlqActChunk = 100
	// dlqFilterMaxText bounds DLQFilter.Handler, TenantID and Query.
	dlqFilterMaxText = 256
)

// Audit actions of the dead-letter methods.
const (
	auditDLQRedrive = "dlq.redrive"
	auditDLQDelete  = "dlq.delete"
	auditDLQPurge   = "dlq.purge"
)

// DLQ entry ids across partitions. Each partition has its own DLQ
// (dead letters of its entries, with its index and counters). The id of a
// DLQ entry as callers see it (DeadLetter.ID, DLQItem.ID, DLQSelection.IDs,
// cursors) is its stream id when the entry is in the shared partition
// (with one partition, every entry: today's plain ids) and
// "<partition name>-<stream id>" otherwise, e.g. "p3-1712345678901-0":
// URL-safe, unique across partitions, and stable across configuration
// changes (the name is the partition's key base without the prefix, "p3",
// or "p3.12" with a salted cluster tag; a previous layout's partitions
// keep theirs). Listings merge the partitions newest first by stream id,
// then partition name; a cursor is the id of the last entry read.

// dlqRead is a DLQ entry read back with what acting on it needs.
type dlqRead struct {
	entry   DLQEntry
	part    int    // the partition whose DLQ holds it
	sid     string // its stream id there
	payload string // the event field as stored
	meta    string // the dlq field as stored (compared by the scripts)
	ok      bool   // the metadata decoded
}

// ref is the entry's partition and stream id.
func (r dlqRead) ref() rdb.DLQRef { return rdb.DLQRef{Partition: r.part, ID: r.sid} }

// readDLQ decodes a DLQ stream entry of partition part.
func (b *Bus) readDLQ(part int, m redis.XMessage) dlqRead {
	r := dlqRead{part: part, sid: m.ID}
	r.payload, _ = m.Values[rdb.FieldEvent].(string)
	r.meta, _ = m.Values[rdb.FieldDLQ].(string)
	e := &r.entry
	if err := json.Unmarshal([]byte(r.meta), &e.DeadLetter); err != nil {
		e.DeadLetter = DeadLetter{Reason: fmt.Sprintf("undecodable dead-letter metadata: %v", err)}
	} else {
		r.ok = true
	}
	e.ID = rdb.FormatRef(b.rdb.Keys().PartitionName(part), m.ID)
	if e.MovedAt.IsZero() {
		e.MovedAt, _ = rdb.IDTime(m.ID)
	}
	if e.Errors == nil {
		e.Errors = []AttemptError{}
	}
	if json.Valid([]byte(r.payload)) {
		e.Event = json.RawMessage(r.payload)
	} else {
		e.Raw = r.payload
	}
	return r
}

// item is the entry's listing form.
func (r dlqRead) item() DLQItem {
	dl := r.entry.DeadLetter
	it := DLQItem{
		ID: dl.ID, EventID: dl.EventID, Type: dl.Type, TenantID: dl.TenantID, Handler: dl.Handler, Handlers: dl.Handlers,
		Group: dl.Group, Attempts: dl.Attempts, MovedAt: dl.MovedAt, Reason: dl.Reason, Redrives: dl.Redrives,
	}
	if n := len(dl.Errors); n > 0 {
		it.LastError = dl.Errors[n-1].Message
	}
	return it
}

// dlqQuery is a checked DLQFilter.
type dlqQuery struct {
	f      DLQFilter
	tenant string // read this tenant's entries through the index; "" the whole DLQ
	q      string // lower-cased Query
	rg     rdb.DLQIDRange
}

// dlqQuery checks f against scope and returns what reading it needs. A
// bad field is a *FilterError naming it.
func (f DLQFilter) query(scope Scope) (dlqQuery, error) {
	bad := func(field, format string, a ...any) error {
		return &FilterError{Field: field, Reason: fmt.Sprintf(format, a...)}
	}
	for _, p := range f.Types {
		if err := validPattern(p); err != nil {
			return dlqQuery{}, bad("type", "%v", err)
		}
	}
	for _, t := range []struct{ field, v string }{{"handler", f.Handler}, {"tenantId", f.TenantID}, {"q", f.Query}} {
		if len(t.v) > dlqFilterMaxText || !utf8.ValidString(t.v) {
			return dlqQuery{}, bad(t.field, "longer than %d bytes or not UTF-8", dlqFilterMaxText)
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return dlqQuery{}, bad("to", "%s is before from %s", f.To.Format(time.RFC3339Nano), f.From.Format(time.RFC3339Nano))
	}
	q := dlqQuery{f: f, tenant: scope.TenantID(), q: strings.ToLower(f.Query)}
	if f.TenantID != "" {
		if !scope.Includes(f.TenantID) {
			return dlqQuery{}, bad("tenantId", "tenant %q is outside the caller's scope", f.TenantID)
		}
		q.tenant = f.TenantID
	}
	if !f.From.IsZero() {
		q.rg.From = rdb.FirstIDAt(f.From)
	}
	if !f.To.IsZero() {
		q.rg.To = rdb.LastIDAt(f.To)
	}
	return q, nil
}

// matches reports whether a read entry is in scope and matches q.
func (q dlqQuery) matches(scope Scope, r dlqRead) bool {
	dl := &r.entry.DeadLetter
	if !scope.Includes(dl.TenantID) || (q.tenant != "" && dl.TenantID != q.tenant) {
		return false
	}
	if len(q.f.Types) > 0 && !slices.ContainsFunc(q.f.Types, func(p string) bool { return dl.Type != "" && matchPattern(p, dl.Type) }) {
		return false
	}
	if q.f.Handler != "" && dl.Handler != q.f.Handler && !slices.Contains(dl.Handlers, q.f.Handler) {
		return false
	}
	if q.q != "" && !strings.Contains(strings.ToLower(dl.Reason), q.q) &&
		!slices.ContainsFunc(dl.Errors, func(e AttemptError) bool { return strings.Contains(strings.ToLower(e.Message), q.q) }) {
		return false
	}
	return true
}

// dlqSource is one partition's DLQ in a merged scan: entries read ahead
// (newest first) and where to read on.
type dlqSource struct {
	part int
	name string
	rg   rdb.DLQIDRange
	buf  []dlqSlot
	done bool // nothing below buf is left
}

// dlqSlot is one entry of a scan; m is nil for an index member whose
// entry was removed meanwhile.
type dlqSlot struct {
	id string
	m  *redis.XMessage
}

// scan reads DLQ entries newest first, below cursor ("" from the newest),
// at most readMax of them, and calls fn with each that matches q until fn
// returns false. The partitions' DLQs are merged by stream id, then
// partition name, both descending; cursor and the returned cursor are
// entry ids (see above) in that order. It returns the cursor to continue
// from: the id of the entry fn refused, or of the last entry read; ""
// when the DLQ (or the tenant's part of it) was read to its end. A
// tenant's entries are found through each partition's DLQ index: no other
// tenant's entry is read. The first read asks each partition for first
// entries (at least 1), the next ones for browseChunk, each batch in one
// pipeline.
func (in *Inspector) scan(ctx context.Context, scope Scope, q dlqQuery, cursor string, readMax, first int, fn func(dlqRead) bool) (string, error) {
	b := in.b
	k := b.rdb.Keys()
	cName, cID, _ := rdb.ParseRef(cursor)
	tenant := q.tenant
	if tenant == "" && !scope.All() {
		tenant = scope.TenantID()
	}
	srcs := make([]*dlqSource, k.Partitions())
	for p := range srcs {
		s := &dlqSource{part: p, name: k.PartitionName(p), rg: q.rg}
		if cursor != "" {
			if s.name < cName { // the cursor's id itself is still ahead
				if s.rg.To == "" || rdb.CompareIDs(cID, s.rg.To) < 0 {
					s.rg.To = cID
				}
			} else {
				s.rg.Before = cID
			}
		}
		srcs[p] = s
	}
	fill := func(n int) error {
		var need []*dlqSource
		for _, s := range srcs {
			if len(s.buf) == 0 && !s.done {
				need = append(need, s)
			}
		}
		if len(need) == 0 {
			return nil
		}
		reads := make([]rdb.DLQRangeRead, len(need))
		for i, s := range need {
			reads[i] = rdb.DLQRangeRead{Partition: s.part, Tenant: tenant, Range: s.rg, Count: n}
		}
		if tenant != "" || !scope.All() {
			lists, err := b.rdb.DLQTenantIDs(ctx, reads)
			if err != nil {
				return wrapOp("read dead letters", err)
			}
			var refs []rdb.DLQRef
			for i, s := range need {
				for _, id := range lists[i] {
					refs = append(refs, rdb.DLQRef{Partition: s.part, ID: id})
				}
			}
			msgs, err := b.rdb.DLQEntries(ctx, refs)
			if err != nil {
				return wrapOp("read dead letters", err)
			}
			found := make(map[rdb.DLQRef]*redis.XMessage, len(msgs))
			for i := range msgs {
				found[rdb.DLQRef{Partition: msgs[i].Partition, ID: msgs[i].ID}] = &msgs[i].XMessage
			}
			for i, s := range need {
				for _, id := range lists[i] {
					s.buf = append(s.buf, dlqSlot{id: id, m: found[rdb.DLQRef{Partition: s.part, ID: id}]})
				}
			}
		} else {
			res, err := b.rdb.DLQRevRanges(ctx, reads)
			if err != nil {
				return wrapOp("read dead letters", err)
			}
			for i, s := range need {
				for j := range res[i] {
					s.buf = append(s.buf, dlqSlot{id: res[i][j].ID, m: &res[i][j]})
				}
			}
		}
		for _, s := range need {
			if len(s.buf) < n {
				s.done = true
			}
			if len(s.buf) > 0 {
				s.rg.Before = s.buf[len(s.buf)-1].id
			}
		}
		return nil
	}
	n := max(1, min(first, browseChunk))
	last := ""
	for read := 0; read < readMax; read++ {
		if err := fill(n); err != nil {
			return "", err
		}
		n = min(browseChunk, readMax-read)
		var top *dlqSource
		for _, s := range srcs {
			if len(s.buf) > 0 && (top == nil || rdb.CompareRefs(s.name, s.buf[0].id, top.name, top.buf[0].id) > 0) {
				top = s
			}
		}
		if top == nil {
			return "", nil // every partition was read to its end
		}
		sl := top.buf[0]
		top.buf = top.buf[1:]
		last = rdb.FormatRef(top.name, sl.id)
		if sl.m == nil {
			continue
		}
		if r := b.readDLQ(top.part, *sl.m); q.matches(scope, r) && !fn(r) {
			return last, nil
		}
	}
	for _, s := range srcs {
		if len(s.buf) > 0 || !s.done {
			return last, nil
		}
	}
	return "", nil
}

// DeadLetters lists the dead letters in scope that match opts.Filter,
// newest first, one page at a time. A tenant scope (or Filter.TenantID)
// reads that tenant's entries only, through the DLQ index; a page reads
// at most DLQReadMax entries, so it may hold fewer items than the limit
// and a cursor to go on (NextCursor is "" only when the listing was read
// to its end; dead letters written after the first page are not in the
// listing). A bad filter is a *FilterError naming the field ("type",
// "handler", "tenantId", "from", "to", "q", "cursor", "limit"); a
// Filter.TenantID outside the scope is a *FilterError naming "tenantId";
// an invalid scope ErrInvalidScope.
func (in *Inspector) DeadLetters(ctx context.Context, scope Scope, opts DLQListOptions) (DLQPage, error) {
	if err := scope.Validate(); err != nil {
		return DLQPage{}, err
	}
	q, err := opts.Filter.query(scope)
	if err != nil {
		return DLQPage{}, err
	}
	limit := opts.Limit
	switch {
	case opts.Cursor != "" && !validRef(opts.Cursor):
		return DLQPage{}, &FilterError{Field: "cursor", Reason: fmt.Sprintf("%q is not a cursor returned by a previous page", opts.Cursor)}
	case limit < 0 || limit > MaxBrowseLimit:
		return DLQPage{}, &FilterError{Field: "limit", Reason: fmt.Sprintf("%d is not between 1 and %d", limit, MaxBrowseLimit)}
	case limit == 0:
		limit = DefaultBrowseLimit
	}
	page := DLQPage{Items: []DLQItem{}}
	if opts.Cursor == "0-0" {
		return page, nil // nothing precedes it
	}
	page.NextCursor, err = in.scan(ctx, scope, q, opts.Cursor, DLQReadMax, limit, func(r dlqRead) bool {
		page.Items = append(page.Items, r.item())
		return len(page.Items) < limit
	})
	if err != nil {
		return DLQPage{}, err
	}
	return page, nil
}

// validRef reports whether s is a DLQ entry id or cursor (a stream id,
// optionally preceded by a partition name).
func validRef(s string) bool {
	_, _, ok := rdb.ParseRef(s)
	return ok
}

// dlqRef resolves a DLQ entry id to its partition and stream id; false
// when it is not one or names a partition the bus does not hold.
func (b *Bus) dlqRef(id string) (rdb.DLQRef, bool) {
	name, sid, ok := rdb.ParseRef(id)
	if !ok {
		return rdb.DLQRef{}, false
	}
	p, ok := b.rdb.Keys().PartitionNamed(name)
	return rdb.DLQRef{Partition: p, ID: sid}, ok
}

// eventDeadLetters reads every dead letter in scope of each event, oldest
// first per event, in two round trips (every partition's index, then the
// entries).
func (in *Inspector) eventDeadLetters(ctx context.Context, scope Scope, eventIDs []string) ([]dlqRead, error) {
	b := in.b
	lists, err := b.rdb.DLQEventIDs(ctx, eventIDs)
	if err != nil {
		return nil, wrapOp("read dead letters", err)
	}
	var refs []rdb.DLQRef
	for _, l := range lists {
		refs = append(refs, l...)
	}
	msgs, err := b.rdb.DLQEntries(ctx, refs)
	if err != nil {
		return nil, wrapOp("read dead letters", err)
	}
	out := make([]dlqRead, 0, len(msgs))
	for _, m := range msgs {
		r := b.readDLQ(m.Partition, m.XMessage)
		if r.ok && scope.Includes(r.entry.TenantID) && slices.Contains(eventIDs, r.entry.EventID) {
			out = append(out, r)
		}
	}
	return out, nil
}

// DeadLettersOf returns every dead letter in scope of the event eventID
// (one per failed handler), oldest first, in a constant number of Redis
// calls (the DLQ index). ErrNotFound when there is none in scope. With
// AllTenants, the dead letters of every tenant's event with that id are
// returned (ids given by publishers are unique per tenant only).
func (in *Inspector) DeadLettersOf(ctx context.Context, scope Scope, eventID string) (EventDeadLetters, error) {
	if err := scope.Validate(); err != nil {
		return EventDeadLetters{}, err
	}
	if eventID == "" {
		return EventDeadLetters{}, ErrNotFound
	}
	rs, err := in.eventDeadLetters(ctx, scope, []string{eventID})
	if err != nil {
		return EventDeadLetters{}, err
	}
	if len(rs) == 0 {
		return EventDeadLetters{}, ErrNotFound
	}
	out := EventDeadLetters{EventID: eventID, Entries: make([]DLQEntry, len(rs))}
	for i, r := range rs {
		out.Entries[i] = r.entry
	}
	return out, nil
}

// DeadLetter returns the DLQ entry id in scope (an id as DeadLetter.ID
// gives it: a stream id, or "<partition>-<stream id>" with several
// partitions). ErrNotFound when it does not exist or is another tenant's
// (an entry that is not a valid event, which has no tenant, is found with
// AllTenants only).
func (in *Inspector) DeadLetter(ctx context.Context, scope Scope, id string) (DLQEntry, error) {
	if err := scope.Validate(); err != nil {
		return DLQEntry{}, err
	}
	ref, ok := in.b.dlqRef(id)
	if !ok {
		return DLQEntry{}, ErrNotFound
	}
	msgs, err := in.b.rdb.DLQEntries(ctx, []rdb.DLQRef{ref})
	if err != nil {
		return DLQEntry{}, wrapOp("read dead letter", err)
	}
	if len(msgs) == 0 {
		return DLQEntry{}, ErrNotFound
	}
	r := in.b.readDLQ(msgs[0].Partition, msgs[0].XMessage)
	if !scope.Includes(r.entry.TenantID) {
		return DLQEntry{}, ErrNotFound
	}
	return r.entry, nil
}

// Redrive sends every dead letter in scope of the event eventID back to
// its failed handler (only that handler; every handler named in
// DeadLetter.Handlers for an entry dead-lettered as a whole), with the
// same event id and a fresh retry budget (its retry policy starts over):
// it runs again as soon as a consumer of its group reads the retry.
// Removing each DLQ entry and scheduling its retry are one atomic step,
// done only if the entry is still what was read. It returns how many were
// redriven; ErrNotFound when the event has no dead letter in scope (or
// they were removed meanwhile); ErrRedriveLimit when none was redriven
// because each reached Config.MaxRedrives; ErrNotRedrivable when none is
// a valid event. When some were redriven, it is written to the audit log;
// an audit failure is returned with the count (the redrive happened).
func (in *Inspector) Redrive(ctx context.Context, scope Scope, actor Actor, eventID string) (int64, error) {
	if err := scope.Validate(); err != nil {
		return 0, err
	}
	if eventID == "" {
		return 0, ErrNotFound
	}
	rs, err := in.eventDeadLetters(ctx, scope, []string{eventID})
	if err != nil {
		return 0, err
	}
	if len(rs) == 0 {
		return 0, ErrNotFound
	}
	var res BulkResult
	err = in.redrive(ctx, rs, &res)
	if res.Redriven == 0 {
		switch {
		case err != nil:
			return 0, err
		case res.OverLimit > 0:
			return 0, fmt.Errorf("%w: event %s was redriven %d times (Config.MaxRedrives)", ErrRedriveLimit, eventID, in.b.cfg.MaxRedrives)
		case res.NotRedrivable > 0:
			return 0, ErrNotRedrivable
		}
		return 0, ErrNotFound
	}
	sel, _ := json.Marshal(DLQSelection{EventIDs: []string{eventID}})
	if aerr := in.audit(ctx, scope, actor, auditDLQRedrive, sel, res.Redriven); aerr != nil && err == nil {
		err = aerr
	}
	return res.Redriven, err
}

// byPartition returns rs grouped by partition (stably), so that bulk
// actions pipeline each partition's entries together.
func byPartition(rs []dlqRead) []dlqRead {
	out := slices.Clone(rs)
	slices.SortStableFunc(out, func(a, b dlqRead) int { return a.part - b.part })
	return out
}

// redrive redrives rs (chunk by chunk, grouped by partition, each entry
// atomically on its partition), adding the outcomes to res. Entries past
// the redrive limit or not redrivable are counted and left in the DLQ.
func (in *Inspector) redrive(ctx context.Context, rs []dlqRead, res *BulkResult) error {
	b := in.b
	rs = byPartition(rs)
	now := time.Now().UTC()
	items := make([]rdb.Redrive, 0, min(len(rs), dlqActChunk))
	flush := func() error {
		if len(items) == 0 {
			return nil
		}
		out, err := b.rdb.RedriveDLQ(ctx, items, now)
		redriven := 0
		for _, o := range out {
			if o == rdb.DLQDone {
				res.Redriven++
				redriven++
			} else {
				res.Gone++
			}
		}
		b.met.redriven(redriven)
		items = items[:0]
		if err != nil {
			return wrapOp("redrive dead letters", err)
		}
		return nil
	}
	for _, r := range rs {
		dl := &r.entry.DeadLetter
		switch {
		case !r.ok || dl.Handler == "" || dl.EventID == "" || r.payload == "":
			res.NotRedrivable++
			continue
		case dl.Redrives >= b.cfg.MaxRedrives:
			res.OverLimit++
			continue
		}
		items = append(items, b.redriveOf(r, now))
		if len(items) == dlqActChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// redriveOf builds the redrive of one dead letter: a retry due now for
// each of its handlers, attempt 1 (a fresh retry budget), the error
// history kept, its redrive count one higher. The retry goes to the
// retry keys and status hash of the entry's partition (the partition
// whose entry it was).
func (b *Bus) redriveOf(r dlqRead, now time.Time) rdb.Redrive {
	dl := &r.entry.DeadLetter
	handlers := dl.Handlers
	if len(handlers) == 0 {
		handlers = []string{dl.Handler}
	}
	statusID := dl.StatusID
	if statusID == "" {
		statusID = rdb.ScopedID(dl.TenantID, dl.EventID)
	}
	group := dl.Group
	if group == "" {
		group = b.cfg.Group
	}
	var last string
	if n := len(dl.Errors); n > 0 {
		last = dl.Errors[n-1].Message
	}
	rec, _ := json.Marshal(handlerRecord{State: handlerRetrying, Attempts: dl.Attempts, LastError: last, NextAttemptAt: &now, UpdatedAt: now})
	out := rdb.Redrive{
		ID: r.sid, MetaSum: rdb.MetaSum(r.meta), Group: group, StatusID: statusID, Partition: r.part,
		StreamID: dl.OriginalStreamID, Type: dl.Type, Tenant: dl.TenantID, OpenTTL: b.cfg.Retention.Main,
	}
	for _, h := range handlers {
		data, _ := json.Marshal(retryData{
			Event: r.payload, Handler: h, Attempt: 1, Stream: dl.Stream, OriginalStreamID: dl.OriginalStreamID,
			EventID: dl.EventID, Type: dl.Type, TenantID: dl.TenantID, Errors: dl.Errors, StatusID: statusID,
			Redrives: dl.Redrives + 1,
		})
		out.Handlers = append(out.Handlers, rdb.RedriveHandler{
			Handler: h, Data: data, Record: rec, Member: rdb.RetryMember(h, dl.OriginalStreamID, dl.EventID),
		})
	}
	return out
}

// remove deletes rs (chunk by chunk, grouped by partition, each entry
// atomically with its index members on its partition), adding the
// outcomes to res.
func (in *Inspector) remove(ctx context.Context, rs []dlqRead, res *BulkResult) error {
	rs = byPartition(rs)
	for start := 0; start < len(rs); start += dlqActChunk {
		chunk := rs[start:min(start+dlqActChunk, len(rs))]
		ids, sums := make([]rdb.DLQRef, len(chunk)), make([]string, len(chunk))
		for i, r := range chunk {
			ids[i], sums[i] = r.ref(), rdb.MetaSum(r.meta)
		}
		out, err := in.b.rdb.DeleteDLQ(ctx, ids, sums)
		for _, o := range out {
			if o == rdb.DLQDone {
				res.Deleted++
			} else {
				res.Gone++
			}
		}
		if err != nil {
			return wrapOp("delete dead letters", err)
		}
	}
	return nil
}

// RedriveMany redrives the dead letters of sel in scope (see Redrive).
// Without confirm it changes nothing and returns the count that would be
// acted on (DryRun). Each entry is redriven atomically (removed from the
// DLQ and scheduled in one step), so a crash half-way leaves every entry
// either still in the DLQ or redriven. Entries past the redrive limit or
// not redrivable stay in the DLQ and are counted (OverLimit,
// NotRedrivable). A selection by filter acts on the dead letters written
// before the call, newest first. A bad selection is a *FilterError
// ("selection", "ids", "eventIds" or a filter field). The action is
// written to the audit log (with confirm); an audit failure is returned
// with the result (the redrive happened).
func (in *Inspector) RedriveMany(ctx context.Context, scope Scope, actor Actor, sel DLQSelection, confirm bool) (BulkResult, error) {
	return in.bulk(ctx, scope, actor, sel, confirm, auditDLQRedrive, in.redrive)
}

// DeleteDeadLetters removes every dead letter in scope of the event
// eventID and returns how many; ErrNotFound when there is none. Each is
// removed with its index members in one atomic step. The action is
// written to the audit log; an audit failure is returned with the count
// (the entries are gone).
func (in *Inspector) DeleteDeadLetters(ctx context.Context, scope Scope, actor Actor, eventID string) (int64, error) {
	if err := scope.Validate(); err != nil {
		return 0, err
	}
	if eventID == "" {
		return 0, ErrNotFound
	}
	rs, err := in.eventDeadLetters(ctx, scope, []string{eventID})
	if err != nil {
		return 0, err
	}
	var res BulkResult
	err = in.remove(ctx, rs, &res)
	if res.Deleted == 0 {
		if err != nil {
			return 0, err
		}
		return 0, ErrNotFound
	}
	sel, _ := json.Marshal(DLQSelection{EventIDs: []string{eventID}})
	if aerr := in.audit(ctx, scope, actor, auditDLQDelete, sel, res.Deleted); aerr != nil && err == nil {
		err = aerr
	}
	return res.Deleted, err
}

// Purge removes the dead letters of sel in scope. Without confirm it
// changes nothing and returns the count that would be removed (DryRun).
// Each entry is removed with its index members in one atomic step. A
// selection by filter acts on the dead letters written before the call.
// A bad selection is a *FilterError ("selection", "ids", "eventIds" or a
// filter field). The action is written to the audit log (with confirm);
// an audit failure is returned with the result (the entries are gone).
func (in *Inspector) Purge(ctx context.Context, scope Scope, actor Actor, sel DLQSelection, confirm bool) (BulkResult, error) {
	return in.bulk(ctx, scope, actor, sel, confirm, auditDLQPurge, in.remove)
}

// bulk resolves sel in scope and, with confirm, applies act to the
// selected entries chunk by chunk, then writes the audit record.
func (in *Inspector) bulk(ctx context.Context, scope Scope, actor Actor, sel DLQSelection, confirm bool, action string,
	act func(context.Context, []dlqRead, *BulkResult) error) (BulkResult, error) {
	if err := scope.Validate(); err != nil {
		return BulkResult{}, err
	}
	res := BulkResult{DryRun: !confirm}
	err := in.selectDLQ(ctx, scope, sel, func(rs []dlqRead) error {
		res.Matched += int64(len(rs))
		if !confirm {
			return nil
		}
		return act(ctx, rs, &res)
	})
	if !confirm {
		return res, err
	}
	if _, serr := sel.check(); serr != nil {
		return res, serr // nothing was read or changed
	}
	count := res.Redriven
	if action == auditDLQPurge {
		count = res.Deleted
	}
	acted := scope // the tenant acted on: a platform caller's filter may name one
	if scope.All() && sel.Filter != nil && sel.Filter.TenantID != "" {
		acted = TenantScope(sel.Filter.TenantID)
	}
	if aerr := in.audit(ctx, acted, actor, action, auditSelection(sel), count); aerr != nil {
		if err != nil {
			return res, fmt.Errorf("%w (and the audit record failed: %v)", err, aerr)
		}
		return res, aerr
	}
	return res, err
}

// check validates the shape of a selection and says which kind it is.
func (sel DLQSelection) check() (string, error) {
	n := 0
	kind := ""
	if len(sel.IDs) > 0 {
		n, kind = n+1, "ids"
	}
	if len(sel.EventIDs) > 0 {
		n, kind = n+1, "eventIds"
	}
	if sel.Filter != nil {
		n, kind = n+1, "filter"
	}
	if n != 1 {
		return "", &FilterError{Field: "selection", Reason: "give exactly one of ids, eventIds and filter"}
	}
	switch {
	case len(sel.IDs) > DLQSelectMax:
		return "", &FilterError{Field: "ids", Reason: fmt.Sprintf("%d ids: at most %d (select more with a filter)", len(sel.IDs), DLQSelectMax)}
	case len(sel.EventIDs) > DLQSelectMax:
		return "", &FilterError{Field: "eventIds", Reason: fmt.Sprintf("%d event ids: at most %d (select more with a filter)", len(sel.EventIDs), DLQSelectMax)}
	}
	for _, id := range sel.IDs {
		if !validRef(id) {
			return "", &FilterError{Field: "ids", Reason: fmt.Sprintf("%q is not a DLQ entry id", id)}
		}
	}
	for _, id := range sel.EventIDs {
		if id == "" || len(id) > dlqFilterMaxText {
			return "", &FilterError{Field: "eventIds", Reason: "an event id is empty or too long"}
		}
	}
	return kind, nil
}

// selectDLQ reads the dead letters of sel in scope and hands them to fn
// in chunks (at most DLQReadMax entries each).
func (in *Inspector) selectDLQ(ctx context.Context, scope Scope, sel DLQSelection, fn func([]dlqRead) error) error {
	kind, err := sel.check()
	if err != nil {
		return err
	}
	switch kind {
	case "ids":
		refs := make([]rdb.DLQRef, 0, len(sel.IDs))
		for _, id := range sel.IDs {
			if ref, ok := in.b.dlqRef(id); ok { // another partition name: not found
				refs = append(refs, ref)
			}
		}
		msgs, err := in.b.rdb.DLQEntries(ctx, refs)
		if err != nil {
			return wrapOp("read dead letters", err)
		}
		var rs []dlqRead
		for _, m := range msgs {
			if r := in.b.readDLQ(m.Partition, m.XMessage); scope.Includes(r.entry.TenantID) {
				rs = append(rs, r)
			}
		}
		return fn(rs)
	case "eventIds":
		rs, err := in.eventDeadLetters(ctx, scope, sel.EventIDs)
		if err != nil {
			return err
		}
		return fn(rs)
	}
	q, err := sel.Filter.query(scope)
	if err != nil {
		return err
	}
	// Newest first: dead letters written after the first read (a
	// redriven event failing again) are above every cursor and not
	// selected.
	cursor := ""
	for {
		var rs []dlqRead
		next, err := in.scan(ctx, scope, q, cursor, DLQReadMax, browseChunk, func(r dlqRead) bool {
			rs = append(rs, r)
			return true
		})
		if err != nil {
			return err
		}
		if len(rs) > 0 {
			if err := fn(rs); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		cursor = next
	}
}

// audit writes the audit record of an admin write that touched count
// dead letters. Its error says that the action was done but not audited.
func (in *Inspector) audit(ctx context.Context, scope Scope, actor Actor, action string, filter json.RawMessage, count int64) error {
	sc := "*"
	if !scope.All() {
		sc = scope.TenantID()
	}
	err := in.b.appendAudit(ctx, AuditEntry{
		Subject: actor.Subject, TenantID: actor.TenantID, Role: actor.Role,
		Action: action, Scope: sc, Filter: filter, Count: count,
	})
	if err != nil {
		return fmt.Errorf("eventbus: %s of %d dead letter(s) done but not written to the audit log: %w", action, count, err)
	}
	return nil
}

// auditSelection is sel as the audit record's filter: in full when it
// fits the record, else the kind and number of ids only.
func auditSelection(sel DLQSelection) json.RawMessage {
	b, err := json.Marshal(sel)
	if err == nil && len(b) <= auditMaxText {
		return b
	}
	b, _ = json.Marshal(map[string]int{"idCount": len(sel.IDs), "eventIdCount": len(sel.EventIDs)})
	return b
}
