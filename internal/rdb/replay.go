package rdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replay jobs in Redis. A job is a hash (Keys.ReplayJob) with the fields
// below, indexed in Keys.ReplayJobs (and Keys.ReplayTenantJobs for a job
// limited to one tenant) for listing, and in Keys.ReplayActive while it
// has not ended. A runner owns a job while it holds its lease
// (Keys.ReplayLease: SET NX PX with a random token, renewed by the
// runner). Every write of a runner checks its token in the same script,
// and a page of copies also checks that the job's cursor is still the
// one the page was read from, so that a runner that lost its lease (or
// a reply) writes nothing twice: copies and cursor move together.
//
// Partitions: a job started by a bus holding one partition keeps the
// fields below only (ReplayFieldCursor is its main stream's cursor). A
// job started by a bus holding several reads the main stream of each
// partition that had entries in its window, one after the other, each in
// stream order: ReplayFieldStreams lists them (a JSON array of stream
// names, so that a runner with another partition layout reads the same
// streams), and ReplayCursorField(i) holds the cursor of the i-th; a
// stream whose cursor is the window's last id (ReplayFieldEnd) is done.
// The streams are read outside the scripts (in a Redis Cluster they lie
// in other slots than the job); each page's script checks and moves the
// one cursor its page was read from, in the job's slot.

// Fields of a replay job hash (Keys.ReplayJob).
const (
	ReplayFieldRequest   = "request"   // the request as JSON (tenant forced, handlers resolved)
	ReplayFieldStatus    = "status"    // pending, running, completed, failed, cancelled
	ReplayFieldGroup     = "group"     // the consumer group whose handlers run the copies
	ReplayFieldTenant    = "tenant"    // the tenant the job is limited to; "" for every tenant
	ReplayFieldScanned   = "scanned"   // main stream entries read
	ReplayFieldMatched   = "matched"   // entries that matched the filters
	ReplayFieldWritten   = "written"   // copies written to the replay stream
	ReplayFieldErrors    = "errors"    // matching entries skipped (not valid events)
	ReplayFieldCursor    = "cursor"    // the last main stream id read; "" before the first page
	ReplayFieldStart     = "start"     // the first main stream id of the window (inclusive)
	ReplayFieldEnd       = "end"       // the last main stream id of the window (inclusive)
	ReplayFieldEstimated = "estimated" // the estimate made at start
	ReplayFieldBy        = "by"        // the subject that started the job
	ReplayFieldByTenant  = "byTenant"  // its tenant ("*" for a platform actor)
	ReplayFieldCreated   = "created"   // ms
	ReplayFieldStarted   = "started"   // ms, set when a runner first takes the job
	ReplayFieldFinished  = "finished"  // ms, set when the job ends
	ReplayFieldError     = "error"     // why a failed job failed
	ReplayFieldCancel    = "cancel"    // "1" once a cancel was requested
	ReplayFieldStreams   = "streams"   // partitioned jobs: the main streams read, JSON array
)

// ReplayCursorField is the field of a partitioned job holding the cursor
// of its i-th stream (see ReplayFieldStreams): the last id read, "" before
// its first page, the window's last id once it is done.
func ReplayCursorField(i int) string { return ReplayFieldCursor + ":" + strconv.Itoa(i) }

// Replay job states, as stored.
const (
	ReplayStatePending   = "pending"
	ReplayStateRunning   = "running"
	ReplayStateCompleted = "completed"
	ReplayStateFailed    = "failed"
	ReplayStateCancelled = "cancelled"
)

// Errors of the runner's fenced writes.
var (
	// ErrLeaseLost: the runner's token no longer holds the job's lease
	// (it expired, and maybe another runner took the job); nothing was
	// written.
	ErrLeaseLost = errors.New("replay lease lost")
	// ErrCursorMoved: the job's cursor is not the one the page was read
	// from (an earlier send of the same page went through, or another
	// runner wrote it); nothing was written.
	ErrCursorMoved = errors.New("replay cursor moved")
	// ErrCancelRequested: the job's cancel flag is set; nothing was
	// written.
	ErrCancelRequested = errors.New("replay cancel requested")
)

// luaReplay is the prologue of the replay scripts: the job fields and
// states as Lua locals.
var luaReplay = fmt.Sprintf(`
local F_EVENT, F_AUDIT = %q, %q
local R_STATUS, R_CURSOR, R_CANCEL, R_STARTED, R_FINISHED, R_ERROR = %q, %q, %q, %q, %q, %q
local R_SCANNED, R_MATCHED, R_WRITTEN, R_ERRORS = %q, %q, %q, %q
local ST_PENDING, ST_RUNNING, ST_COMPLETED, ST_CANCELLED = %q, %q, %q, %q
local function rEnd(job, active, lease, id, status, now, keep)
  redis.call('HSET', job, R_STATUS, status, R_FINISHED, now)
  redis.call('ZREM', active, id)
  redis.call('DEL', lease)
  redis.call('PEXPIRE', job, keep)
end
`, FieldEvent, FieldAudit,
	ReplayFieldStatus, ReplayFieldCursor, ReplayFieldCancel, ReplayFieldStarted, ReplayFieldFinished, ReplayFieldError,
	ReplayFieldScanned, ReplayFieldMatched, ReplayFieldWritten, ReplayFieldErrors,
	ReplayStatePending, ReplayStateRunning, ReplayStateCompleted, ReplayStateCancelled)

// createReplayJob records a new job and its audit entry in one step; a
// job that exists already (a send repeated after a lost reply) is left
// alone (0).
//
// KEYS[1] job  KEYS[2] jobs index  KEYS[3] tenant jobs index  KEYS[4]
// active set  KEYS[5] audit stream
// ARGV[1] id  ARGV[2] created ms  ARGV[3] '1' to index under the tenant
// ARGV[4] audit MINID  ARGV[5] audit record  ARGV[6..] field, value pairs
var createReplayJob = redis.NewScript(luaReplay + `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
if ARGV[3] == '1' then redis.call('ZADD', KEYS[3], 0, ARGV[1]) end
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('XADD', KEYS[5], 'MINID', ARGV[4], '*', F_AUDIT, ARGV[5])
return 1
`)

// claimReplay takes a job's lease for a runner: only for a job pending
// or running whose lease is free. A job with a cancel request is
// cancelled instead (2); a job that has ended or is gone leaves the
// active set (0); a lease held by another runner: -1. Taken: the job is
// running (started set the first time) and 1 is returned.
//
// KEYS[1] job  KEYS[2] lease  KEYS[3] active set
// ARGV[1] id  ARGV[2] token  ARGV[3] lease TTL ms  ARGV[4] now ms
// ARGV[5] job retention ms
var claimReplay = redis.NewScript(luaReplay + `
local st = redis.call('HGET', KEYS[1], R_STATUS)
if st ~= ST_PENDING and st ~= ST_RUNNING then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 0
end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return -1 end
if redis.call('HGET', KEYS[1], R_CANCEL) == '1' then
  rEnd(KEYS[1], KEYS[3], KEYS[2], ARGV[1], ST_CANCELLED, ARGV[4], ARGV[5])
  return 2
end
redis.call('HSET', KEYS[1], R_STATUS, ST_RUNNING)
redis.call('HSETNX', KEYS[1], R_STARTED, ARGV[4])
return 1
`)

// keepReplayLease renews a runner's lease: 0 when the token no longer
// holds it, 2 when it does and a cancel is requested, else 1.
//
// KEYS[1] lease  KEYS[2] job  ARGV[1] token  ARGV[2] lease TTL ms
var keepReplayLease = redis.NewScript(luaReplay + `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('HGET', KEYS[2], R_CANCEL) == '1' then return 2 end
return 1
`)

// writeReplayPage writes one page of a job in one step: only while the
// token holds the lease (-1), the job's cursor (the field the page's
// stream uses) is the page's start (-2) and no cancel is requested (-3),
// it appends the copies to the replay stream (the first with MINID ~ for
// the replay retention), moves the cursor, adds to the counters and, for
// the last page, ends the job as completed. It returns the number of
// copies written. The page was read outside the script (its stream may
// lie in another slot): the cursor check is what makes a stale or
// repeated page harmless.
//
// KEYS[1] job  KEYS[2] lease  KEYS[3] replay stream  KEYS[4] active set
// ARGV[1] id  ARGV[2] token  ARGV[3] expected cursor  ARGV[4] new cursor
// ARGV[5] scanned  ARGV[6] matched  ARGV[7] errors  ARGV[8] replay MINID
// ARGV[9] '1' for the last page  ARGV[10] now ms  ARGV[11] job retention
// ms  ARGV[12] the cursor's field  ARGV[13..] the copies (event payloads)
var writeReplayPage = redis.NewScript(luaReplay + `
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return -1 end
local cur = redis.call('HGET', KEYS[1], ARGV[12]) or ''
if cur ~= ARGV[3] then return -2 end
if redis.call('HGET', KEYS[1], R_CANCEL) == '1' then return -3 end
local n = 0
for i = 13, #ARGV do
  if n == 0 then
    redis.call('XADD', KEYS[3], 'MINID', '~', ARGV[8], '*', F_EVENT, ARGV[i])
  else
    redis.call('XADD', KEYS[3], '*', F_EVENT, ARGV[i])
  end
  n = n + 1
end
redis.call('HSET', KEYS[1], ARGV[12], ARGV[4])
redis.call('HINCRBY', KEYS[1], R_SCANNED, ARGV[5])
redis.call('HINCRBY', KEYS[1], R_MATCHED, ARGV[6])
redis.call('HINCRBY', KEYS[1], R_WRITTEN, n)
redis.call('HINCRBY', KEYS[1], R_ERRORS, ARGV[7])
if ARGV[9] == '1' then
  rEnd(KEYS[1], KEYS[4], KEYS[2], ARGV[1], ST_COMPLETED, ARGV[10], ARGV[11])
end
return n
`)

// finishReplay ends a job (failed or cancelled) for the runner holding
// its lease; 0 when the token no longer holds it.
//
// KEYS[1] job  KEYS[2] lease  KEYS[3] active set
// ARGV[1] id  ARGV[2] token  ARGV[3] status  ARGV[4] error  ARGV[5] now
// ms  ARGV[6] job retention ms
var finishReplay = redis.NewScript(luaReplay + `
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], R_ERROR, ARGV[4]) end
rEnd(KEYS[1], KEYS[3], KEYS[2], ARGV[1], ARGV[3], ARGV[5], ARGV[6])
return 1
`)

// cancelReplay requests a job's cancel and writes the audit entry, in one
// step. A pending job, or a running one whose lease is free (its runner
// died and no other took it yet), is cancelled at once (2); a running
// job gets the cancel flag its runner checks (1); a cancel already
// requested changes nothing (3, not audited again). 0: no such job; -1:
// the job has ended.
//
// KEYS[1] job  KEYS[2] lease  KEYS[3] active set  KEYS[4] audit stream
// ARGV[1] id  ARGV[2] now ms  ARGV[3] job retention ms  ARGV[4] audit
// MINID  ARGV[5] audit record
var cancelReplay = redis.NewScript(luaReplay + `
local st = redis.call('HGET', KEYS[1], R_STATUS)
if not st then return 0 end
if st ~= ST_PENDING and st ~= ST_RUNNING then return -1 end
if redis.call('HGET', KEYS[1], R_CANCEL) == '1' then return 3 end
redis.call('HSET', KEYS[1], R_CANCEL, '1')
local out = 1
if st == ST_PENDING or redis.call('EXISTS', KEYS[2]) == 0 then
  rEnd(KEYS[1], KEYS[3], KEYS[2], ARGV[1], ST_CANCELLED, ARGV[2], ARGV[3])
  out = 2
end
redis.call('XADD', KEYS[4], 'MINID', ARGV[4], '*', F_AUDIT, ARGV[5])
return out
`)

// NewReplayJob is a job to record with CreateReplayJob.
type NewReplayJob struct {
	ID      string
	Tenant  string // indexes the job under this tenant too; "" for none
	Created time.Time
	Fields  map[string]string // the hash's fields
	// AuditMinID and Audit: the audit entry written with the job.
	AuditMinID string
	Audit      []byte
}

// CreateReplayJob records a job (its hash, its index entries and the
// active set) and its audit entry in one atomic step. It reports false
// when a job with that id exists already (nothing was changed).
func (r *RDB) CreateReplayJob(ctx context.Context, j NewReplayJob) (bool, error) {
	k := r.keys
	tenantKey, byTenant := k.ReplayJobs(), "0"
	if j.Tenant != "" {
		tenantKey, byTenant = k.ReplayTenantJobs(j.Tenant), "1"
	}
	args := make([]any, 0, 5+2*len(j.Fields))
	args = append(args, j.ID, j.Created.UnixMilli(), byTenant, j.AuditMinID, j.Audit)
	for f, v := range j.Fields {
		args = append(args, f, v)
	}
	n, err := createReplayJob.Run(ctx, r.c, []string{k.ReplayJob(j.ID), k.ReplayJobs(), tenantKey, k.ReplayActive(), k.Audit()}, args...).Int()
	if err != nil {
		return false, fmt.Errorf("create replay job %s: %w", j.ID, err)
	}
	return n == 1, nil
}

// ReplayJob reads a job's hash; an empty map when there is no such job.
func (r *RDB) ReplayJob(ctx context.Context, id string) (map[string]string, error) {
	h, err := r.c.HGetAll(ctx, r.keys.ReplayJob(id)).Result()
	if err != nil {
		return nil, fmt.Errorf("replay job %s: %w", id, err)
	}
	return h, nil
}

// ReplayJobHashes reads the hashes of jobs ids in one round trip; a job
// that is gone has an empty map.
func (r *RDB) ReplayJobHashes(ctx context.Context, ids []string) ([]map[string]string, error) {
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, r.keys.ReplayJob(id))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay jobs: %w", err)
	}
	out := make([]map[string]string, len(ids))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// ReplayJobIDs lists up to n job ids, newest first, below before ("" from
// the newest): every job's, or with tenant set, the jobs limited to that
// tenant only.
func (r *RDB) ReplayJobIDs(ctx context.Context, tenant, before string, n int) ([]string, error) {
	key := r.keys.ReplayJobs()
	if tenant != "" {
		key = r.keys.ReplayTenantJobs(tenant)
	}
	hi := "+"
	if before != "" {
		hi = "(" + before
	}
	ids, err := r.c.ZRevRangeByLex(ctx, key, &redis.ZRangeBy{Max: hi, Min: "-", Count: int64(n)}).Result()
	if err != nil {
		return nil, fmt.Errorf("replay jobs: %w", err)
	}
	return ids, nil
}

// ForgetReplayJobs removes ids (jobs whose hash expired) from the jobs
// index and, with tenant set, from that tenant's index.
func (r *RDB) ForgetReplayJobs(ctx context.Context, tenant string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, r.keys.ReplayJobs(), toAny(ids)...)
		if tenant != "" {
			p.ZRem(ctx, r.keys.ReplayTenantJobs(tenant), toAny(ids)...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("forget replay jobs: %w", err)
	}
	return nil
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// ActiveReplayJobs returns up to n ids of jobs not yet ended, oldest
// first, with whether each one's lease is free, in one round trip.
func (r *RDB) ActiveReplayJobs(ctx context.Context, n int) (ids []string, free []bool, err error) {
	ids, err = r.c.ZRange(ctx, r.keys.ReplayActive(), 0, int64(n)-1).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("active replay jobs: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil, nil
	}
	cmds := make([]*redis.IntCmd, len(ids))
	_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Exists(ctx, r.keys.ReplayLease(id))
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("replay leases: %w", err)
	}
	free = make([]bool, len(ids))
	for i, c := range cmds {
		free[i] = c.Val() == 0
	}
	return ids, free, nil
}

// Outcomes of ClaimReplay.
const (
	ReplayClaimed   = 1  // the lease is the runner's; the job is running
	ReplayCancelled = 2  // the job had a cancel request: it is cancelled now
	ReplayGone      = 0  // the job ended or is gone (removed from the active set)
	ReplayBusy      = -1 // another runner holds the lease
)

// ClaimReplay takes job id's lease with token for ttl (see claimReplay).
func (r *RDB) ClaimReplay(ctx context.Context, id, token string, ttl time.Duration, now time.Time, keep time.Duration) (int, error) {
	k := r.keys
	n, err := claimReplay.Run(ctx, r.c, []string{k.ReplayJob(id), k.ReplayLease(id), k.ReplayActive()},
		id, token, ttl.Milliseconds(), now.UnixMilli(), keep.Milliseconds()).Int()
	if err != nil {
		return 0, fmt.Errorf("claim replay job %s: %w", id, err)
	}
	return n, nil
}

// KeepReplayLease renews job id's lease held by token. It returns
// ErrLeaseLost when the token no longer holds it, and reports whether a
// cancel is requested.
func (r *RDB) KeepReplayLease(ctx context.Context, id, token string, ttl time.Duration) (cancel bool, err error) {
	k := r.keys
	n, err := keepReplayLease.Run(ctx, r.c, []string{k.ReplayLease(id), k.ReplayJob(id)}, token, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("renew replay lease %s: %w", id, err)
	}
	if n == 0 {
		return false, fmt.Errorf("renew replay lease %s: %w", id, ErrLeaseLost)
	}
	return n == 2, nil
}

// ReplayPage is one page of a job's copies for WriteReplayPage.
type ReplayPage struct {
	ID, Token string
	// Cursor is the job's field holding the cursor the page moves:
	// ReplayCursorField(i) for the i-th stream of a partitioned job, ""
	// for ReplayFieldCursor.
	Cursor string
	// From is the job's cursor the page was read after ("" for the first
	// page); To the new cursor (the last entry read, or the window's last
	// id when a partitioned job's stream is done).
	From, To                 string
	Scanned, Matched, Errors int64
	Copies                   [][]byte
	MinID                    string // the replay stream's retention horizon
	Last                     bool   // ends the job as completed
	Now                      time.Time
	Keep                     time.Duration // the job's retention once ended
}

// WriteReplayPage writes a page atomically (see writeReplayPage) and
// returns the copies written. ErrLeaseLost, ErrCursorMoved or
// ErrCancelRequested (wrapped) when nothing was written for that reason.
// Sending it again after a lost reply is safe: the cursor check refuses a
// page written already (ErrCursorMoved).
func (r *RDB) WriteReplayPage(ctx context.Context, p ReplayPage) (int, error) {
	k := r.keys
	last := "0"
	if p.Last {
		last = "1"
	}
	field := p.Cursor
	if field == "" {
		field = ReplayFieldCursor
	}
	keys := []string{k.ReplayJob(p.ID), k.ReplayLease(p.ID), k.Replay(), k.ReplayActive()}
	args := make([]any, 0, 12+len(p.Copies))
	args = append(args, p.ID, p.Token, p.From, p.To, p.Scanned, p.Matched, p.Errors, p.MinID, last,
		p.Now.UnixMilli(), p.Keep.Milliseconds(), field)
	for _, c := range p.Copies {
		args = append(args, c)
	}
	n, err := writeReplayPage.Run(ctx, r.c, keys, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("write replay page of %s: %w", p.ID, err)
	}
	switch n {
	case -1:
		return 0, fmt.Errorf("write replay page of %s: %w", p.ID, ErrLeaseLost)
	case -2:
		return 0, fmt.Errorf("write replay page of %s: %w", p.ID, ErrCursorMoved)
	case -3:
		return 0, fmt.Errorf("write replay page of %s: %w", p.ID, ErrCancelRequested)
	}
	return n, nil
}

// FinishReplay ends job id with status (and errText) for the runner
// holding its lease; ErrLeaseLost when token no longer holds it.
func (r *RDB) FinishReplay(ctx context.Context, id, token, status, errText string, now time.Time, keep time.Duration) error {
	k := r.keys
	n, err := finishReplay.Run(ctx, r.c, []string{k.ReplayJob(id), k.ReplayLease(id), k.ReplayActive()},
		id, token, status, errText, now.UnixMilli(), keep.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("finish replay job %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("finish replay job %s: %w", id, ErrLeaseLost)
	}
	return nil
}

// releaseReplayLease frees a lease held by token (a runner stopping
// gracefully: another process may take the job at once); 0 when the
// token no longer holds it.
//
// KEYS[1] lease  ARGV[1] token
var releaseReplayLease = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// ReleaseReplayLease frees job id's lease if token still holds it; the
// job stays running, for the next runner to resume.
func (r *RDB) ReleaseReplayLease(ctx context.Context, id, token string) error {
	if err := releaseReplayLease.Run(ctx, r.c, []string{r.keys.ReplayLease(id)}, token).Err(); err != nil {
		return fmt.Errorf("release replay lease %s: %w", id, err)
	}
	return nil
}

// Outcomes of CancelReplay.
const (
	ReplayCancelNone      = 0  // no such job
	ReplayCancelEnded     = -1 // the job has ended already
	ReplayCancelRequested = 1  // the flag is set; the runner stops the job
	ReplayCancelDone      = 2  // the job is cancelled
	ReplayCancelRepeated  = 3  // a cancel was requested already
)

// CancelReplay requests job id's cancel and writes the audit entry in one
// atomic step (see cancelReplay).
func (r *RDB) CancelReplay(ctx context.Context, id string, now time.Time, keep time.Duration, auditMinID string, audit []byte) (int, error) {
	k := r.keys
	n, err := cancelReplay.Run(ctx, r.c, []string{k.ReplayJob(id), k.ReplayLease(id), k.ReplayActive(), k.Audit()},
		id, now.UnixMilli(), keep.Milliseconds(), auditMinID, audit).Int()
	if err != nil {
		return 0, fmt.Errorf("cancel replay job %s: %w", id, err)
	}
	return n, nil
}

// StreamEnds returns the first and last entry ids and the length of
// stream in one round trip ("" and 0 for an empty or missing stream).
func (r *RDB) StreamEnds(ctx context.Context, stream string) (first, last string, length int64, err error) {
	var f, l *redis.XMessageSliceCmd
	var n *redis.IntCmd
	_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		f = p.XRangeN(ctx, stream, "-", "+", 1)
		l = p.XRevRangeN(ctx, stream, "+", "-", 1)
		n = p.XLen(ctx, stream)
		return nil
	})
	if err != nil {
		return "", "", 0, fmt.Errorf("ends of %s: %w", stream, err)
	}
	if m := f.Val(); len(m) > 0 {
		first = m[0].ID
	}
	if m := l.Val(); len(m) > 0 {
		last = m[0].ID
	}
	return first, last, n.Val(), nil
}

// ParseMillis reads a millisecond field of a job hash; the zero time for
// an empty or malformed one.
func ParseMillis(v string) time.Time {
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || v == "" {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
