package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/hyvve/eventbus/internal/rdb"
)

// Replay job states.
const (
	ReplayPending   = "pending"
	ReplayRunning   = "running"
	ReplayCompleted = "completed"
	ReplayFailed    = "failed"
	ReplayCancelled = "cancelled"
)

// ErrReplayFinished is returned by CancelReplay for a job that has ended
// already (completed, failed or cancelled). The HTTP API answers 409.
var ErrReplayFinished = errors.New("eventbus: replay job has finished")

// ErrInvalidReplay is wrapped by the errors of StartReplay for a request
// it refuses; the error is a *ReplayError naming the field and saying why.
var ErrInvalidReplay = errors.New("eventbus: invalid replay request")

// ReplayError is a refused replay request: Field is the request's field
// in the HTTP API's spelling ("from", "to", "types", "tenantId",
// "handlers", "rate"), Reason says why and, for a window outside the main
// stream, what is still there. errors.Is(err, ErrInvalidReplay) holds.
type ReplayError struct {
	Field  string
	Reason string
}

func (e *ReplayError) Error() string {
	return "eventbus: invalid replay request: " + e.Field + ": " + e.Reason
}

// Is makes errors.Is(err, ErrInvalidReplay) true.
func (e *ReplayError) Is(target error) bool { return target == ErrInvalidReplay }

// ReplayRequest describes a replay: the events of the main stream written
// between From and To (both inclusive) that match Types and TenantID are
// copied to the replay stream, where only Handlers of the bus's group run
// them. With several partitions (Config.Partitions) "the main stream" is
// every partition's main stream the bus holds (current, previous and the
// shared one): the job copies one partition's window after the other,
// each in stream order (copies of different partitions are not
// interleaved by time).
type ReplayRequest struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Types are type patterns; none: every type.
	Types []string `json:"types,omitempty"`
	// TenantID limits the replay to one tenant; "" means every tenant in
	// the caller's scope (a tenant scope forces its tenant).
	TenantID string `json:"tenantId,omitempty"`
	// Handlers are the handler names of the group that run the copies;
	// none: every handler the group's live consumers have registered when
	// the job starts.
	Handlers []string `json:"handlers,omitempty"`
	// Rate limits the copies written per second; 0: as fast as the
	// runner goes.
	Rate int `json:"rate,omitempty"`
	// DryRun scans and counts the matching events and writes nothing.
	DryRun bool `json:"dryRun,omitempty"`
}

// ReplayJob is a replay job and its progress.
type ReplayJob struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// Group is the consumer group whose handlers run the copies.
	Group string `json:"group"`
	// Request is the request as the job runs it: TenantID forced by a
	// tenant scope, and Handlers resolved (the group's live handlers when
	// none were named).
	Request ReplayRequest `json:"request"`
	// Progress is 0 to 100: how far the runner is through the window, by
	// the time of the last entry read (with several partitions, the mean
	// over the partitions it reads); 100 once completed.
	Progress int `json:"progress"`
	// EstimatedEvents is the number of events the job was expected to
	// match, counted when it started: exact when the window held at most
	// 10,000 events (they were all read and filtered); for a larger
	// window, extrapolated from its first 10,000 events (the fraction of
	// them that matched, times the number of events in the window
	// estimated from their rate), so it drifts when the event rate or mix
	// changes across the window. With several partitions the 10,000 are
	// shared among the partitions (what one does not use goes to the
	// others) and each partition's part is extrapolated from its own
	// sample. Matched is the exact count as the job runs.
	EstimatedEvents int64 `json:"estimatedEvents"`
	// Scanned counts main stream entries read, Matched those that matched
	// the filters, Written the copies written to the replay stream, Errors
	// the matching entries skipped because they could not be copied (not
	// valid events, or a copy over Config.MaxEventSize). Without DryRun,
	// Matched = Written + Errors.
	Scanned int64 `json:"scanned"`
	Matched int64 `json:"matched"`
	Written int64 `json:"written"`
	Errors  int64 `json:"errors"`
	// Cursor is the last main stream id the job has read (with several
	// partitions: in the partition it is reading).
	Cursor string `json:"cursor,omitempty"`
	// Cursors, for a job over several partitions only, maps each main
	// stream the job reads (the partitions that had events in the window
	// when it started) to its cursor: "" before its first page, the
	// window's last id once it is done.
	Cursors map[string]string `json:"cursors,omitempty"`
	// CancelRequested is set once a cancel was asked for a job still
	// running: its runner stops it within a second.
	CancelRequested bool `json:"cancelRequested,omitempty"`
	// Error says why a failed job failed.
	Error string `json:"error,omitempty"`
	// RequestedBy is the subject of the actor that started the job, and
	// RequestedByTenant its tenant ("*" for a platform actor).
	RequestedBy       string     `json:"requestedBy"`
	RequestedByTenant string     `json:"requestedByTenant"`
	CreatedAt         time.Time  `json:"createdAt"`
	StartedAt         *time.Time `json:"startedAt"`
	FinishedAt        *time.Time `json:"finishedAt"`
}

// ReplayPage is one page of Inspector.Replays.
type ReplayPage struct {
	Items []ReplayJob `json:"items"`
	// NextCursor continues the listing; "" at its end.
	NextCursor string `json:"nextCursor"`
}

// Replay bounds.
const (
	// ReplayMaxPatterns is the most type patterns, and the most handlers,
	// one request names.
	ReplayMaxPatterns = 100
	// replayExactMax is the most window entries StartReplay reads to
	// estimate the job; up to it the estimate is exact.
	replayExactMax = 10000
	// replayEstimateChunk is the COUNT of each XRANGE of the estimate.
	replayEstimateChunk = 1000
	// replayListRounds bounds the index reads of one Replays page (expired
	// jobs met are removed from the index, so later pages find fewer).
	replayListRounds = 10
)

// Audit actions of the replay methods.
const (
	auditReplayStart  = "replay.start"
	auditReplayCancel = "replay.cancel"
)

// StartReplay validates req in scope and records a pending job that a
// replay runner (Bus.Run, in any process) picks up. A tenant scope forces
// req.TenantID to its tenant (another tenant: ErrNotFound). A refused
// request is a *ReplayError: From or To missing, From after To, a bad
// type pattern, a negative rate, a handler that no live consumer of the
// group has registered (or no live consumer at all), a window outside
// the main stream (the reason says what the stream still holds), or no
// event in the window (or, when the window holds at most 10,000 events,
// none that matches). The window ends at To or at the start, whichever is
// earlier: events written after the start are not copied. The job's
// estimate is ReplayJob.EstimatedEvents (see there how exact it is). The
// job and its audit record (replay.start, with the request and the
// estimate) are written in one atomic step.
func (in *Inspector) StartReplay(ctx context.Context, scope Scope, actor Actor, req ReplayRequest) (ReplayJob, error) {
	if err := scope.Validate(); err != nil {
		return ReplayJob{}, err
	}
	b := in.b
	now := time.Now().UTC()
	req, err := in.checkReplay(scope, req)
	if err != nil {
		return ReplayJob{}, err
	}
	if req.Handlers, err = in.replayHandlers(ctx, req.Handlers); err != nil {
		return ReplayJob{}, err
	}
	win, err := in.replayWindow(ctx, scope, req, now)
	if err != nil {
		return ReplayJob{}, err
	}
	reqJSON, err := json.Marshal(req)
	if err != nil {
		return ReplayJob{}, wrapOp("start replay", err)
	}
	id := newULID(now)
	job := ReplayJob{
		ID: id, Status: ReplayPending, Group: b.cfg.Group, Request: req, EstimatedEvents: win.estimate,
		RequestedBy: actor.Subject, RequestedByTenant: actor.TenantID, CreatedAt: now.Truncate(time.Millisecond),
	}
	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	fields := map[string]string{
		rdb.ReplayFieldRequest: string(reqJSON), rdb.ReplayFieldStatus: rdb.ReplayStatePending,
		rdb.ReplayFieldGroup: b.cfg.Group, rdb.ReplayFieldTenant: req.TenantID,
		rdb.ReplayFieldScanned: "0", rdb.ReplayFieldMatched: "0", rdb.ReplayFieldWritten: "0", rdb.ReplayFieldErrors: "0",
		rdb.ReplayFieldCursor: "", rdb.ReplayFieldStart: win.start, rdb.ReplayFieldEnd: win.end,
		rdb.ReplayFieldEstimated: strconv.FormatInt(win.estimate, 10),
		rdb.ReplayFieldBy:        actor.Subject, rdb.ReplayFieldByTenant: actor.TenantID, rdb.ReplayFieldCreated: ms(now),
	}
	if win.streams != nil { // several partitions: a cursor per stream
		streams, err := json.Marshal(win.streams)
		if err != nil {
			return ReplayJob{}, wrapOp("start replay", err)
		}
		fields[rdb.ReplayFieldStreams] = string(streams)
		job.Cursors = make(map[string]string, len(win.streams))
		for i, st := range win.streams {
			fields[rdb.ReplayCursorField(i)] = ""
			job.Cursors[st] = ""
		}
	}
	rec, err := auditRecord(AuditEntry{
		At: now, Subject: actor.Subject, TenantID: actor.TenantID, Role: actor.Role, Action: auditReplayStart,
		Scope: replayAuditScope(req.TenantID), Filter: auditReplayRequest(req, reqJSON), Count: win.estimate, Detail: "job " + id,
	})
	if err != nil {
		return ReplayJob{}, wrapOp("start replay", err)
	}
	created, err := b.rdb.CreateReplayJob(ctx, rdb.NewReplayJob{
		ID: id, Tenant: req.TenantID, Created: now, Fields: fields,
		AuditMinID: rdb.MinIDFor(now, b.cfg.Retention.Audit), Audit: rec,
	})
	if err != nil {
		return ReplayJob{}, wrapOp("start replay", err)
	}
	if !created { // a fresh ULID already taken: never expected
		return ReplayJob{}, fmt.Errorf("eventbus: start replay: job id %s exists already", id)
	}
	b.wakeReplayRunner()
	return job, nil
}

// checkReplay checks the fields of req that need no Redis and applies
// the scope's tenant.
func (in *Inspector) checkReplay(scope Scope, req ReplayRequest) (ReplayRequest, error) {
	bad := func(field, format string, a ...any) error {
		return &ReplayError{Field: field, Reason: fmt.Sprintf(format, a...)}
	}
	switch {
	case req.From.IsZero():
		return req, bad("from", "required")
	case req.To.IsZero():
		return req, bad("to", "required")
	case req.From.After(req.To):
		return req, bad("to", "%s is before from %s", req.To.UTC().Format(time.RFC3339Nano), req.From.UTC().Format(time.RFC3339Nano))
	case req.Rate < 0:
		return req, bad("rate", "%d is negative (0 means no limit)", req.Rate)
	case len(req.Types) > ReplayMaxPatterns:
		return req, bad("types", "%d patterns, more than %d", len(req.Types), ReplayMaxPatterns)
	case len(req.Handlers) > ReplayMaxPatterns:
		return req, bad("handlers", "%d handlers, more than %d", len(req.Handlers), ReplayMaxPatterns)
	}
	for _, p := range req.Types {
		if err := validPattern(p); err != nil {
			return req, bad("types", "%v", err)
		}
	}
	if !scope.All() {
		if req.TenantID != "" && req.TenantID != scope.TenantID() {
			return req, ErrNotFound
		}
		req.TenantID = scope.TenantID()
	} else if err := validName(req.TenantID, MaxNameLength, false); err != nil {
		return req, bad("tenantId", "%v", err)
	}
	req.From, req.To = req.From.UTC(), req.To.UTC()
	req.Types = slices.Compact(slices.Clone(req.Types))
	return req, nil
}

// replayHandlers checks the handlers named against the group's live
// consumers and returns them without duplicates; none named: every
// handler the live consumers have, sorted.
func (in *Inspector) replayHandlers(ctx context.Context, named []string) ([]string, error) {
	b := in.b
	beats, err := b.rdb.LiveConsumers(ctx, b.cfg.Group, consumerLiveWindow)
	if err != nil {
		return nil, wrapOp("start replay", err)
	}
	live := map[string]bool{}
	for _, c := range beats {
		for _, h := range c.Handlers {
			live[h] = true
		}
	}
	if len(live) == 0 {
		return nil, &ReplayError{Field: "handlers", Reason: fmt.Sprintf(
			"no consumer of group %q is running (none sent a heartbeat in the last %v): start one so that the copies have handlers", b.cfg.Group, consumerLiveWindow)}
	}
	known := slices.Sorted(maps.Keys(live))
	if len(named) == 0 {
		return known, nil
	}
	out := make([]string, 0, len(named))
	for _, h := range named {
		if !live[h] {
			return nil, &ReplayError{Field: "handlers", Reason: fmt.Sprintf(
				"handler %q is not registered by any live consumer of group %q (live handlers: %s)", h, b.cfg.Group, strings.Join(known, ", "))}
		}
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return out, nil
}

// replayWin is a checked window: its stream ids and the estimate.
type replayWin struct {
	start, end string
	estimate   int64
	// streams: with several partitions, the main streams that hold
	// entries of the window, in the order the job reads them; nil with
	// one partition (the job reads the main stream).
	streams []string
}

// replaySample is what the estimate read of one partition's window.
type replaySample struct {
	stream      string
	first, last string // the stream's ends
	length      int64
	pos         string // where the next read starts
	read        int64
	matched     int64
	firstRead   string
	lastRead    string
	exhausted   bool // the window's entries of this stream were all read
}

// replayWindow checks that the window holds events of the main stream
// (every partition's) and estimates how many match (see
// ReplayJob.EstimatedEvents).
func (in *Inspector) replayWindow(ctx context.Context, scope Scope, req ReplayRequest, now time.Time) (replayWin, error) {
	b := in.b
	keys := b.rdb.Keys()
	parts := keys.Partitions()
	samples := make([]*replaySample, parts)
	var first, last string
	for p := range parts {
		s := &replaySample{stream: keys.Partition(p).Main()}
		var err error
		if s.first, s.last, s.length, err = b.rdb.StreamEnds(ctx, s.stream); err != nil {
			return replayWin{}, wrapOp("start replay", err)
		}
		samples[p] = s
		if s.first == "" {
			continue
		}
		if first == "" || rdb.CompareIDs(s.first, first) < 0 {
			first = s.first
		}
		if last == "" || rdb.CompareIDs(s.last, last) > 0 {
			last = s.last
		}
	}
	what, holds, firstOf, lastOf := "the main stream", "holds", "the main stream's first entry", "the main stream's last entry"
	if parts > 1 {
		what, holds = fmt.Sprintf("the main streams (%d partitions)", parts), "hold"
		firstOf, lastOf = "the first entry of "+what, "the last entry of "+what
	}
	if first == "" {
		empty := "is empty"
		if parts > 1 {
			empty = "are empty"
		}
		return replayWin{}, &ReplayError{Field: "from", Reason: what + " " + empty + ": there is nothing to replay"}
	}
	holdsText := func() string {
		ft, _ := rdb.IDTime(first)
		lt, _ := rdb.IDTime(last)
		return fmt.Sprintf("%s %s %s to %s", what, holds, ft.Format(TimestampLayout), lt.Format(TimestampLayout))
	}
	to := req.To
	if to.After(now) {
		to = now
	}
	win := replayWin{start: rdb.FirstIDAt(req.From), end: rdb.LastIDAt(to)}
	switch {
	case rdb.CompareIDs(win.end, first) < 0:
		return replayWin{}, &ReplayError{Field: "from", Reason: "the window ends before " + firstOf + " (older events are past its retention): " + holdsText()}
	case rdb.CompareIDs(win.start, last) > 0:
		return replayWin{}, &ReplayError{Field: "to", Reason: "the window starts after " + lastOf + ": " + holdsText()}
	}
	var active []*replaySample
	for _, s := range samples {
		s.pos = win.start
		if s.first == "" || rdb.CompareIDs(win.end, s.first) < 0 || rdb.CompareIDs(win.start, s.last) > 0 {
			s.exhausted = true // nothing of the window
			continue
		}
		active = append(active, s)
	}
	if err := in.sampleWindow(ctx, req, win.end, active); err != nil {
		return replayWin{}, err
	}
	var read, matched int64
	exhausted := true
	for _, s := range samples {
		read += s.read
		matched += s.matched
		exhausted = exhausted && s.exhausted
		if parts > 1 && s.read > 0 {
			win.streams = append(win.streams, s.stream)
		}
	}
	switch {
	case read == 0:
		return replayWin{}, &ReplayError{Field: "from", Reason: "no event in the window: " + holdsText()}
	case exhausted && matched == 0:
		who := "events"
		if !scope.All() || req.TenantID != "" {
			who = fmt.Sprintf("events of tenant %q", req.TenantID)
		}
		return replayWin{}, &ReplayError{Field: "types", Reason: "no " + who + " in the window match the filters"}
	case exhausted:
		win.estimate = matched
		return win, nil
	}
	// Extrapolate each partition whose window was not read to its end:
	// the sample's entries per millisecond over the rest of the window (up
	// to the stream's last entry), at most the stream's length, times the
	// sample's share of matches.
	var estimate float64
	for _, s := range samples {
		if s.exhausted || s.read == 0 {
			estimate += float64(s.matched)
			continue
		}
		t0, _ := rdb.IDTime(s.firstRead)
		t1, _ := rdb.IDTime(s.lastRead)
		tEnd, _ := rdb.IDTime(s.last)
		if end, _ := rdb.IDTime(win.end); end.Before(tEnd) {
			tEnd = end
		}
		span := float64(t1.Sub(t0).Milliseconds() + 1)
		rest := float64(max(0, tEnd.Sub(t1).Milliseconds()))
		entries := float64(s.read) + float64(s.read)/span*rest
		entries = min(entries, float64(s.length))
		estimate += float64(s.matched) / float64(s.read) * entries
	}
	win.estimate = int64(math.Round(estimate))
	return win, nil
}

// sampleWindow reads the first entries of the window (up to end) of each
// stream of active, replayExactMax in all, in chunks of at most
// replayEstimateChunk: each round shares what is left among the streams
// not yet read to their end, so that the sample is exact whenever the
// whole window holds at most replayExactMax entries. It counts the
// entries read and those matching req in each sample.
func (in *Inspector) sampleWindow(ctx context.Context, req ReplayRequest, end string, active []*replaySample) error {
	b := in.b
	f := replayFilter{types: req.Types, tenant: req.TenantID, maxSize: b.cfg.MaxEventSize}
	budget := int64(replayExactMax)
	for budget > 0 && len(active) > 0 {
		share := max(1, budget/int64(len(active)))
		next := active[:0:0]
		for _, s := range active {
			n := min(replayEstimateChunk, share, budget)
			if n <= 0 {
				next = append(next, s)
				continue
			}
			msgs, err := b.rdb.Range(ctx, s.stream, s.pos, end, n)
			if err != nil {
				return wrapOp("start replay", err)
			}
			for _, m := range msgs {
				if s.firstRead == "" {
					s.firstRead = m.ID
				}
				if ok, _ := f.match(m); ok {
					s.matched++
				}
			}
			s.read += int64(len(msgs))
			budget -= int64(len(msgs))
			if len(msgs) > 0 {
				s.lastRead = msgs[len(msgs)-1].ID
				s.pos = rdb.After(s.lastRead)
			}
			if int64(len(msgs)) < n {
				s.exhausted = true
				continue
			}
			next = append(next, s)
		}
		active = next
	}
	for _, s := range active { // is there anything after the sample?
		more, err := b.rdb.Range(ctx, s.stream, s.pos, end, 1)
		if err != nil {
			return wrapOp("start replay", err)
		}
		s.exhausted = len(more) == 0
	}
	return nil
}

// Replay returns job id in scope; ErrNotFound when it does not exist or
// belongs to another tenant (a job over every tenant is found with
// AllTenants only).
func (in *Inspector) Replay(ctx context.Context, scope Scope, id string) (ReplayJob, error) {
	if err := scope.Validate(); err != nil {
		return ReplayJob{}, err
	}
	if !validJobID(id) {
		return ReplayJob{}, ErrNotFound
	}
	h, err := in.b.rdb.ReplayJob(ctx, id)
	if err != nil {
		return ReplayJob{}, wrapOp("read replay job", err)
	}
	if len(h) == 0 || !replayInScope(scope, h) {
		return ReplayJob{}, ErrNotFound
	}
	return replayJobOf(id, h), nil
}

// Replays lists the jobs in scope, newest first. cursor is the previous
// page's NextCursor; limit 0 means DefaultBrowseLimit, at most
// MaxBrowseLimit. A tenant scope lists the jobs limited to that tenant
// (its own, and those a platform operator ran for it), through an index
// of its own. A bad cursor or limit is a *FilterError naming it.
func (in *Inspector) Replays(ctx context.Context, scope Scope, cursor string, limit int) (ReplayPage, error) {
	if err := scope.Validate(); err != nil {
		return ReplayPage{}, err
	}
	switch {
	case cursor != "" && !validJobID(cursor):
		return ReplayPage{}, &FilterError{Field: "cursor", Reason: fmt.Sprintf("%q is not a cursor returned by a previous page", cursor)}
	case limit < 0 || limit > MaxBrowseLimit:
		return ReplayPage{}, &FilterError{Field: "limit", Reason: fmt.Sprintf("%d is not between 1 and %d", limit, MaxBrowseLimit)}
	case limit == 0:
		limit = DefaultBrowseLimit
	}
	b := in.b
	page := ReplayPage{Items: []ReplayJob{}}
	before := cursor
	for range replayListRounds {
		n := limit - len(page.Items)
		ids, err := b.rdb.ReplayJobIDs(ctx, scope.TenantID(), before, n)
		if err != nil {
			return ReplayPage{}, wrapOp("list replay jobs", err)
		}
		hs, err := b.rdb.ReplayJobHashes(ctx, ids)
		if err != nil {
			return ReplayPage{}, wrapOp("list replay jobs", err)
		}
		var gone []string
		for i, h := range hs {
			switch {
			case len(h) == 0:
				gone = append(gone, ids[i])
			case replayInScope(scope, h):
				page.Items = append(page.Items, replayJobOf(ids[i], h))
			}
		}
		if err := b.rdb.ForgetReplayJobs(ctx, scope.TenantID(), gone); err != nil {
			return ReplayPage{}, wrapOp("list replay jobs", err)
		}
		if len(ids) < n {
			return page, nil // the index was read to its end
		}
		before = ids[len(ids)-1]
		if len(page.Items) == limit {
			break
		}
	}
	page.NextCursor = before
	return page, nil
}

// CancelReplay stops job id in scope: a pending job is cancelled at once,
// a running one by its runner within a second (the job returned then has
// CancelRequested set and its status turns cancelled when the runner
// stops; a running job whose runner died is cancelled at once). No copy
// is written after the cancel took effect. ErrNotFound for an unknown job
// or another tenant's; ErrReplayFinished for a job that has ended. The
// cancel and its audit record (replay.cancel) are one atomic step; a
// repeated cancel of a job still stopping changes nothing and is not
// audited again.
func (in *Inspector) CancelReplay(ctx context.Context, scope Scope, actor Actor, id string) (ReplayJob, error) {
	if err := scope.Validate(); err != nil {
		return ReplayJob{}, err
	}
	job, err := in.Replay(ctx, scope, id)
	if err != nil {
		return ReplayJob{}, err
	}
	switch job.Status {
	case ReplayCompleted, ReplayFailed, ReplayCancelled:
		return job, ErrReplayFinished
	}
	b := in.b
	now := time.Now().UTC()
	reqJSON, _ := json.Marshal(job.Request)
	rec, err := auditRecord(AuditEntry{
		At: now, Subject: actor.Subject, TenantID: actor.TenantID, Role: actor.Role, Action: auditReplayCancel,
		Scope: replayAuditScope(job.Request.TenantID), Filter: auditReplayRequest(job.Request, reqJSON), Count: 1, Detail: "job " + id,
	})
	if err != nil {
		return ReplayJob{}, wrapOp("cancel replay", err)
	}
	out, err := b.rdb.CancelReplay(ctx, id, now, b.cfg.ReplayJobRetention, rdb.MinIDFor(now, b.cfg.Retention.Audit), rec)
	if err != nil {
		return ReplayJob{}, wrapOp("cancel replay", err)
	}
	switch out {
	case rdb.ReplayCancelNone:
		return ReplayJob{}, ErrNotFound
	case rdb.ReplayCancelEnded:
		job, err := in.Replay(ctx, scope, id)
		if err != nil {
			return ReplayJob{}, err
		}
		return job, ErrReplayFinished
	}
	return in.Replay(ctx, scope, id)
}

// replayInScope reports whether the job hash h is in scope: a job limited
// to a tenant is that tenant's; a job over every tenant is AllTenants'.
func replayInScope(scope Scope, h map[string]string) bool {
	t := h[rdb.ReplayFieldTenant]
	if t == "" {
		return scope.All()
	}
	return scope.Includes(t)
}

// replayAuditScope is the audit record's scope of a job limited to tenant
// ("" for every tenant).
func replayAuditScope(tenant string) string {
	if tenant == "" {
		return "*"
	}
	return tenant
}

// auditReplayRequest is the request as the audit record's filter: in full
// when it fits the record, else without its lists (their sizes only).
func auditReplayRequest(req ReplayRequest, full []byte) json.RawMessage {
	if len(full) <= auditMaxText {
		return full
	}
	b, _ := json.Marshal(map[string]any{
		"from": req.From, "to": req.To, "tenantId": req.TenantID, "rate": req.Rate, "dryRun": req.DryRun,
		"typeCount": len(req.Types), "handlerCount": len(req.Handlers),
	})
	return b
}

// auditRecord checks e and encodes it for the audit stream (the record
// appendAudit writes), for the scripts that write it in the same step as
// the action.
func auditRecord(e AuditEntry) ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	e.ID = ""
	e.At = e.At.UTC()
	return json.Marshal(e)
}

// validJobID reports whether id can be a job id (a ULID).
func validJobID(id string) bool {
	_, err := ulid.ParseStrict(id)
	return err == nil && len(id) == ulid.EncodedSize
}

// replayJobOf reads a job hash.
func replayJobOf(id string, h map[string]string) ReplayJob {
	n := func(f string) int64 { v, _ := strconv.ParseInt(h[f], 10, 64); return v }
	at := func(f string) *time.Time {
		t := rdb.ParseMillis(h[f])
		if t.IsZero() {
			return nil
		}
		return &t
	}
	j := ReplayJob{
		ID: id, Status: h[rdb.ReplayFieldStatus], Group: h[rdb.ReplayFieldGroup],
		EstimatedEvents: n(rdb.ReplayFieldEstimated),
		Scanned:         n(rdb.ReplayFieldScanned), Matched: n(rdb.ReplayFieldMatched),
		Written: n(rdb.ReplayFieldWritten), Errors: n(rdb.ReplayFieldErrors),
		Cursor: h[rdb.ReplayFieldCursor], Error: h[rdb.ReplayFieldError],
		RequestedBy: h[rdb.ReplayFieldBy], RequestedByTenant: h[rdb.ReplayFieldByTenant],
		CreatedAt: rdb.ParseMillis(h[rdb.ReplayFieldCreated]),
		StartedAt: at(rdb.ReplayFieldStarted), FinishedAt: at(rdb.ReplayFieldFinished),
	}
	if err := json.Unmarshal([]byte(h[rdb.ReplayFieldRequest]), &j.Request); err != nil && j.Error == "" {
		j.Error = "unreadable request: " + err.Error()
	}
	if h[rdb.ReplayFieldCancel] == "1" && (j.Status == ReplayPending || j.Status == ReplayRunning) {
		j.CancelRequested = true
	}
	streams, fields, err := replayStreamsOf(h)
	switch {
	case err != nil:
		if j.Error == "" {
			j.Error = err.Error()
		}
	case fields != nil: // several partitions
		j.Cursors = make(map[string]string, len(streams))
		cursors := make([]string, len(streams))
		j.Cursor = ""
		for i, st := range streams {
			cursors[i] = h[fields[i]]
			j.Cursors[st] = cursors[i]
			if j.Cursor == "" && cursors[i] != h[rdb.ReplayFieldEnd] {
				j.Cursor = cursors[i] // the stream being read
			}
		}
		if j.Cursor == "" { // every stream done
			j.Cursor = cursors[len(cursors)-1]
		}
		j.Progress = replayProgressOf(j.Status, h[rdb.ReplayFieldStart], h[rdb.ReplayFieldEnd], cursors)
		return j
	}
	j.Progress = replayProgress(j.Status, h[rdb.ReplayFieldStart], h[rdb.ReplayFieldEnd], j.Cursor)
	return j
}

// replayStreamsOf returns the streams job hash h reads and, for a job
// over several partitions, the field of each one's cursor (nil fields: a
// job of one partition, whose one cursor is rdb.ReplayFieldCursor and
// whose stream is the main stream: streams is nil too).
func replayStreamsOf(h map[string]string) (streams, fields []string, err error) {
	raw, ok := h[rdb.ReplayFieldStreams]
	if !ok {
		return nil, nil, nil
	}
	if err := json.Unmarshal([]byte(raw), &streams); err != nil || len(streams) == 0 {
		return nil, nil, fmt.Errorf("unreadable list of streams %q", raw)
	}
	fields = make([]string, len(streams))
	for i := range streams {
		fields[i] = rdb.ReplayCursorField(i)
	}
	return streams, fields, nil
}

// replayProgressOf is replayProgress of a job over several streams: the
// mean of each stream's progress (a stream done counts 100), 100 only
// once completed.
func replayProgressOf(status, start, end string, cursors []string) int {
	if status == ReplayCompleted {
		return 100
	}
	if len(cursors) == 0 {
		return 0
	}
	sum := 0
	for _, c := range cursors {
		if c == end {
			sum += 100
			continue
		}
		sum += replayProgress(ReplayRunning, start, end, c)
	}
	return min(sum/len(cursors), 99)
}

// replayProgress is how far the cursor is through the window, 0 to 100
// (100 only once completed).
func replayProgress(status, start, end, cursor string) int {
	if status == ReplayCompleted {
		return 100
	}
	if cursor == "" {
		return 0
	}
	s, ok1 := rdb.IDTime(start)
	e, ok2 := rdb.IDTime(end)
	c, ok3 := rdb.IDTime(cursor)
	if !ok1 || !ok2 || !ok3 {
		return 0
	}
	span := e.Sub(s).Milliseconds() + 1
	p := int(c.Sub(s).Milliseconds() * 100 / span)
	return max(0, min(p, 99))
}
