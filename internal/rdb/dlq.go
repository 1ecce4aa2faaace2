package rdb

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The DLQ index (Keys.DLQIndex) and the scripts that change the DLQ.
//
// The index is one sorted set whose scores are all 0: its members are read
// by lexicographic range (ZRANGE BYLEX). Every DLQ entry has one member
// under its tenant (DLQTenantMember; tenant "" for an entry that is not a
// valid event) and, when it has an event id, one under its event id
// (DLQEventMember). Both end with the entry's stream id padded by PadID,
// so that the members of one tenant (or one event) sort in stream-id
// order. The members are derived, in Lua, from the entry's metadata (the
// FieldDLQ JSON: tenantId, eventId), so that every script that removes an
// entry finds its members from the entry itself. Every script that writes
// or removes DLQ entries updates the index in the same atomic step.

// Fields of the DLQ counters hash (Keys.DLQCounters).
const (
	// DLQCounterTrimmed counts entries removed by the DLQ's retention.
	DLQCounterTrimmed = "trimmed"
	// DLQCounterRedriven counts entries redriven to their handler.
	DLQCounterRedriven = "redriven"
	// DLQCounterDeleted counts entries deleted or purged by an operator.
	DLQCounterDeleted = "deleted"
)

// dlqTrimChunk is the most old entries one DLQ write removes (the
// janitor removes the rest, in chunks of DLQTrimChunk).
const dlqTrimChunk = 100

// DLQTrimChunk is the most entries one TrimDLQ call removes.
const DLQTrimChunk = 500

// PadID pads both parts of a stream id "<ms>-<seq>" to 20 digits, so that
// padded ids sort lexicographically in stream-id order. An id without a
// "-" is taken as "<id>-0".
func PadID(id string) string {
	ms, seq, ok := strings.Cut(id, "-")
	if !ok {
		seq = "0"
	}
	return pad20(ms) + "-" + pad20(seq)
}

func pad20(s string) string {
	if len(s) >= 20 {
		return s
	}
	return strings.Repeat("0", 20-len(s)) + s
}

// dlqTenantPrefix is the start of every index member of tenant.
func dlqTenantPrefix(tenant string) string {
	return "t:" + strconv.Itoa(len(tenant)) + ":" + tenant + ":"
}

// dlqEventPrefix is the start of every index member of eventID.
func dlqEventPrefix(eventID string) string {
	return "e:" + strconv.Itoa(len(eventID)) + ":" + eventID + ":"
}

// DLQTenantMember is the index member of DLQ entry id under its tenant:
// "t:<len>:<tenant>:<PadID(id)>". The length prefix makes one tenant's
// members a range no other tenant's member falls into.
func DLQTenantMember(tenant, id string) string { return dlqTenantPrefix(tenant) + PadID(id) }

// DLQEventMember is the index member of DLQ entry id under its event id:
// "e:<len>:<event id>:<PadID(id)>".
func DLQEventMember(eventID, id string) string { return dlqEventPrefix(eventID) + PadID(id) }

// unpadMember returns the stream id at the end of an index member.
func unpadMember(m string) (string, bool) {
	const n = 41 // 20 digits, "-", 20 digits
	if len(m) < n {
		return "", false
	}
	ms, seq, ok := strings.Cut(m[len(m)-n:], "-")
	if !ok {
		return "", false
	}
	ms, seq = strings.TrimLeft(ms, "0"), strings.TrimLeft(seq, "0")
	if ms == "" {
		ms = "0"
	}
	if seq == "" {
		seq = "0"
	}
	return ms + "-" + seq, true
}

// luaDLQ is the Lua prologue of every script that writes or removes DLQ
// entries: the index member builders (the same as DLQTenantMember and
// DLQEventMember) and the index-aware trim.
var luaDLQ = fmt.Sprintf(`
local DLQ_TRIMMED, DLQ_REDRIVEN, DLQ_DELETED = %q, %q, %q
local function dlqPad(id)
  local ms, seq = string.match(id, '^(%%d+)%%-(%%d+)$')
  if not ms then ms, seq = id, '0' end
  return string.rep('0', 20 - #ms) .. ms .. '-' .. string.rep('0', 20 - #seq) .. seq
end
local function dlqMembers(tenant, eventID, id)
  local pad = dlqPad(id)
  local m = {'t:' .. #tenant .. ':' .. tenant .. ':' .. pad}
  if eventID ~= '' then m[2] = 'e:' .. #eventID .. ':' .. eventID .. ':' .. pad end
  return m
end
local function dlqMetaMembers(meta, id)
  local tenant, ev = '', ''
  local ok, v = pcall(cjson.decode, meta or '')
  if ok and type(v) == 'table' then
    if type(v.tenantId) == 'string' then tenant = v.tenantId end
    if type(v.eventId) == 'string' then ev = v.eventId end
  end
  return dlqMembers(tenant, ev, id)
end
local function dlqField(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end
local function dlqIndex(idx, meta, id)
  for _, m in ipairs(dlqMetaMembers(meta, id)) do redis.call('ZADD', idx, 0, m) end
end
local function dlqUnindex(idx, meta, id)
  for _, m in ipairs(dlqMetaMembers(meta, id)) do redis.call('ZREM', idx, m) end
end
local function dlqTrim(dlq, idx, counters, minid, n)
  if minid == '' or minid == '0' or minid == '0-0' then return 0 end
  local old = redis.call('XRANGE', dlq, '-', '(' .. minid, 'COUNT', n)
  for _, e in ipairs(old) do
    dlqUnindex(idx, dlqField(e[2], F_DLQ), e[1])
    redis.call('XDEL', dlq, e[1])
  end
  if #old > 0 then redis.call('HINCRBY', counters, DLQ_TRIMMED, #old) end
  return #old
end
local function dlqAdd(dlq, idx, counters, minid, payload, meta)
  dlqTrim(dlq, idx, counters, minid, %d)
  local id = redis.call('XADD', dlq, '*', F_EVENT, payload, F_DLQ, meta)
  dlqIndex(idx, meta, id)
  return id
end
`, DLQCounterTrimmed, DLQCounterRedriven, DLQCounterDeleted, dlqTrimChunk)

// trimDLQ removes up to ARGV[2] DLQ entries older than ARGV[1] with their
// index members and counts them; it returns how many.
//
// KEYS[1] DLQ  KEYS[2] index  KEYS[3] counters
var trimDLQ = redis.NewScript(luaSchema + luaDLQ + `
return dlqTrim(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]))
`)

// addDLQ writes one DLQ entry with the given id ('*' for a new one) and
// indexes it; it returns the id. No trim.
//
// KEYS[1] DLQ  KEYS[2] index  ARGV[1] id  ARGV[2] payload  ARGV[3] meta
var addDLQ = redis.NewScript(luaSchema + luaDLQ + `
local id = redis.call('XADD', KEYS[1], ARGV[1], F_EVENT, ARGV[2], F_DLQ, ARGV[3])
dlqIndex(KEYS[2], ARGV[3], id)
return id
`)

// DLQAdd is one entry for AddDLQ.
type DLQAdd struct {
	ID      string // the stream id; "" or "*" for a new one
	Payload string // the event field
	Meta    []byte // the dlq field (DeadLetter JSON)
}

// AddDLQ writes DLQ entries, each indexed in the same script run,
// pipelined, and returns their ids. It is for tools, tests and
// benchmarks (explicit ids seed old entries); consumers write dead
// letters through Settle and DeadLetterEntry.
func (r *RDB) AddDLQ(ctx context.Context, items []DLQAdd) ([]string, error) {
	k := r.keys
	if err := addDLQ.Load(ctx, r.c).Err(); err != nil {
		return nil, fmt.Errorf("script load: %w", err)
	}
	cmds := make([]*redis.Cmd, len(items))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, it := range items {
			id := it.ID
			if id == "" {
				id = "*"
			}
			cmds[i] = addDLQ.EvalSha(ctx, p, []string{k.DLQ(), k.DLQIndex()}, id, it.Payload, it.Meta)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("add dead letters: %w", err)
	}
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i], _ = c.Text()
	}
	return out, nil
}

// dlqCheck is the prologue of the scripts that act on one DLQ entry: it
// returns 0 when the entry ARGV[1] is gone and -1 when its metadata's
// SHA-1 is not ARGV[2] (when ARGV[2] is not empty); otherwise meta holds
// the entry's metadata.
// KEYS[1] DLQ
const dlqCheck = `
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #e == 0 then return 0 end
local meta = dlqField(e[1][2], F_DLQ)
if ARGV[2] ~= '' and redis.sha1hex(meta or '') ~= ARGV[2] then return -1 end
`

// redriveDLQ sends one DLQ entry back to its handlers in one atomic step:
// the entry and its index members go, and each handler gets a retry due
// at once with its status record "retrying". 1 when done, 0 when the
// entry is gone, -1 when it is not what the caller read (nothing done).
//
// KEYS[1] DLQ  KEYS[2] index  KEYS[3] counters  KEYS[4] retry schedule
// KEYS[5] retry data  KEYS[6] status hash
// ARGV[1] entry id  ARGV[2] SHA-1 of its metadata  ARGV[3] due ms
// ARGV[4] status open TTL ms  ARGV[5] status: stream id  ARGV[6] type
// ARGV[7] tenant, then per handler 4 slots: handler, retry member, retry
// data, status record.
var redriveDLQ = redis.NewScript(luaSchema + luaDLQ + dlqCheck + `
redis.call('XDEL', KEYS[1], ARGV[1])
dlqUnindex(KEYS[2], meta, ARGV[1])
local status = KEYS[6]
redis.call('HSET', status, S_STREAM, ARGV[5], S_TYPE, ARGV[6], S_TENANT, ARGV[7])
for i = 8, #ARGV, 4 do
  local handler, member, data, rec = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local added = redis.call('ZADD', KEYS[4], ARGV[3], member)
  redis.call('HSET', KEYS[5], member, data)
  redis.call('HSET', status, S_HANDLER .. handler, rec)
  if added == 1 then redis.call('HINCRBY', status, S_OPEN, 1) end
end
redis.call('PEXPIRE', status, ARGV[4])
redis.call('HINCRBY', KEYS[3], DLQ_REDRIVEN, 1)
return 1
`)

// deleteDLQ removes one DLQ entry and its index members and counts it. 1
// when done, 0 when the entry is gone, -1 when it is not what the caller
// read.
//
// KEYS[1] DLQ  KEYS[2] index  KEYS[3] counters
// ARGV[1] entry id  ARGV[2] SHA-1 of its metadata ("" to skip the check)
var deleteDLQ = redis.NewScript(luaSchema + luaDLQ + dlqCheck + `
redis.call('XDEL', KEYS[1], ARGV[1])
dlqUnindex(KEYS[2], meta, ARGV[1])
redis.call('HINCRBY', KEYS[3], DLQ_DELETED, 1)
return 1
`)

// MetaSum is the SHA-1 (hex) of a DLQ entry's metadata, as the scripts
// compare it.
func MetaSum(meta string) string {
	s := sha1.Sum([]byte(meta))
	return hex.EncodeToString(s[:])
}

// Outcomes of RedriveDLQ and DeleteDLQ for one entry.
const (
	DLQDone    = 1  // redriven or deleted
	DLQGone    = 0  // the entry no longer exists
	DLQChanged = -1 // the entry is not what the caller read
)

// TrimDLQ removes up to DLQTrimChunk entries of partition p's DLQ with ids
// below minID,
// with their index members, counting them in the DLQ counters
// (DLQCounterTrimmed). It returns how many it removed: fewer than
// DLQTrimChunk means none older is left.
func (r *RDB) TrimDLQ(ctx context.Context, p int, minID string) (int64, error) {
	k := r.keys.Partition(p)
	n, err := trimDLQ.Run(ctx, r.c, []string{k.DLQ(), k.DLQIndex(), k.DLQCounters()}, minID, DLQTrimChunk).Int64()
	if err != nil {
		return 0, fmt.Errorf("trim %s: %w", k.DLQ(), err)
	}
	return n, nil
}

// DLQIDRange bounds a read of the DLQ by stream id. Empty fields leave
// that end open.
type DLQIDRange struct {
	From   string // smallest id, inclusive
	To     string // largest id, inclusive
	Before string // ids below this one only (a cursor), exclusive
}

// upper returns the range's upper bound in lexicographic form for members
// starting with prefix; end is the bound past every member of prefix.
func (rg DLQIDRange) upper(prefix, end string) string {
	switch {
	case rg.Before != "" && (rg.To == "" || CompareIDs(rg.Before, rg.To) <= 0):
		return "(" + prefix + PadID(rg.Before)
	case rg.To != "":
		return "[" + prefix + PadID(rg.To)
	}
	return end
}

func (rg DLQIDRange) lower(prefix string) string {
	if rg.From != "" {
		return "[" + prefix + PadID(rg.From)
	}
	return "[" + prefix
}

// DLQTenantIDs returns up to count DLQ entry ids of tenant within rg,
// newest first, from the index (one round trip).
func (r *RDB) DLQTenantIDs(ctx context.Context, tenant string, rg DLQIDRange, count int) ([]string, error) {
	p := dlqTenantPrefix(tenant)
	end := "(" + strings.TrimSuffix(p, ":") + ";" // ';' sorts right after ':'
	ms, err := r.c.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: r.keys.DLQIndex(), Start: rg.upper(p, end), Stop: rg.lower(p), ByLex: true, Rev: true, Count: int64(count),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("dlq index of tenant %q: %w", tenant, err)
	}
	return idsOf(ms), nil
}

// dlqTenantRange is the lexicographic range of every index member of
// tenant and of no other tenant's (the length prefix sees to that; ';'
// sorts right after ':').
func dlqTenantRange(tenant string) (lo, hi string) {
	p := dlqTenantPrefix(tenant)
	return "[" + p, "(" + strings.TrimSuffix(p, ":") + ";"
}

// DLQTenantCount counts the DLQ entries of tenant (ZLEXCOUNT on the index:
// constant work per entry counted, no stream read).
func (r *RDB) DLQTenantCount(ctx context.Context, tenant string) (int64, error) {
	lo, hi := dlqTenantRange(tenant)
	n, err := r.c.ZLexCount(ctx, r.keys.DLQIndex(), lo, hi).Result()
	if err != nil {
		return 0, fmt.Errorf("dlq index of tenant %q: %w", tenant, err)
	}
	return n, nil
}

// dlqEventMax bounds the DLQ entries read for one event id.
const dlqEventMax = 1000

// DLQEventIDs returns, for each of eventIDs, the ids of its DLQ entries,
// oldest first (at most 1000 each), from the index in one round trip.
func (r *RDB) DLQEventIDs(ctx context.Context, eventIDs []string) ([][]string, error) {
	cmds := make([]*redis.StringSliceCmd, len(eventIDs))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ev := range eventIDs {
			pre := dlqEventPrefix(ev)
			cmds[i] = p.ZRangeArgs(ctx, redis.ZRangeArgs{
				Key: r.keys.DLQIndex(), Start: "[" + pre, Stop: "(" + strings.TrimSuffix(pre, ":") + ";", ByLex: true, Count: dlqEventMax,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dlq index of events: %w", err)
	}
	out := make([][]string, len(cmds))
	for i, c := range cmds {
		out[i] = idsOf(c.Val())
	}
	return out, nil
}

func idsOf(members []string) []string {
	out := make([]string, 0, len(members))
	for _, m := range members {
		if id, ok := unpadMember(m); ok {
			out = append(out, id)
		}
	}
	return out
}

// DLQEntries reads the DLQ entries ids in one round trip; an entry that
// does not exist is left out.
func (r *RDB) DLQEntries(ctx context.Context, ids []string) ([]redis.XMessage, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	dlq := r.keys.DLQ()
	cmds := make([]*redis.XMessageSliceCmd, len(ids))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.XRangeN(ctx, dlq, id, id, 1)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("xrange %s: %w", dlq, err)
	}
	out := make([]redis.XMessage, 0, len(ids))
	for _, c := range cmds {
		if v := c.Val(); len(v) == 1 {
			out = append(out, v[0])
		}
	}
	return out, nil
}

// DLQRevRange reads up to count DLQ entries within rg, newest first.
func (r *RDB) DLQRevRange(ctx context.Context, rg DLQIDRange, count int) ([]redis.XMessage, error) {
	end, start := "+", "-"
	switch {
	case rg.Before != "" && (rg.To == "" || CompareIDs(rg.Before, rg.To) <= 0):
		if rg.Before == "0-0" {
			return nil, nil
		}
		end = Before(rg.Before)
	case rg.To != "":
		end = rg.To
	}
	if rg.From != "" {
		start = rg.From
	}
	return r.RevRange(ctx, r.keys.DLQ(), end, start, int64(count))
}

// DLQCounts reads the DLQ counters (DLQCounterTrimmed...).
func (r *RDB) DLQCounts(ctx context.Context) (map[string]int64, error) {
	m, err := r.c.HGetAll(ctx, r.keys.DLQCounters()).Result()
	if err != nil {
		return nil, fmt.Errorf("dlq counters: %w", err)
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		n, _ := strconv.ParseInt(v, 10, 64)
		out[k] = n
	}
	return out, nil
}

// RedriveHandler is one handler a redriven entry goes back to.
type RedriveHandler struct {
	Handler string
	Data    []byte // the retry's data (JSON)
	Record  []byte // the handler's status record (JSON)
	Member  string // RetryMember
}

// Redrive is one DLQ entry to send back to its handlers.
type Redrive struct {
	ID       string // the DLQ entry id
	MetaSum  string // MetaSum of the metadata the caller read
	Group    string // the group whose retry keys and status hash get it
	StatusID string // the event's status hash
	// Partition is the partition whose retry keys and status hash get it.
	Partition int
	StreamID  string // the event's stream id (status field)
	Type      string
	Tenant    string
	OpenTTL   time.Duration
	Handlers  []RedriveHandler
}

// RedriveDLQ redrives entries, each in one atomic script run (removed from
// the DLQ and its index, scheduled due now for each handler, counted),
// pipelined. It returns each entry's outcome (DLQDone, DLQGone,
// DLQChanged). On an error it returns the outcomes of the entries before
// the failed one only (a shorter slice): the rest are unknown, each still
// in the DLQ or redriven, never both.
func (r *RDB) RedriveDLQ(ctx context.Context, items []Redrive, now time.Time) ([]int, error) {
	k := r.keys
	return r.runEach(ctx, redriveDLQ, len(items), func(i int) ([]string, []any) {
		it := items[i]
		pk := k.Partition(it.Partition)
		keys := []string{k.DLQ(), k.DLQIndex(), k.DLQCounters(), pk.RetrySchedule(it.Group), pk.RetryData(it.Group), pk.Status(it.Group, it.StatusID)}
		args := make([]any, 0, 7+4*len(it.Handlers))
		args = append(args, it.ID, it.MetaSum, DueMillis(now), it.OpenTTL.Milliseconds(), it.StreamID, it.Type, it.Tenant)
		for _, h := range it.Handlers {
			args = append(args, h.Handler, h.Member, h.Data, h.Record)
		}
		return keys, args
	})
}

// DeleteDLQ removes DLQ entries (id -> MetaSum of what the caller read,
// "" to skip that check), each with its index members in one atomic
// script run, pipelined, and returns each one's outcome like RedriveDLQ.
func (r *RDB) DeleteDLQ(ctx context.Context, ids, sums []string) ([]int, error) {
	k := r.keys
	return r.runEach(ctx, deleteDLQ, len(ids), func(i int) ([]string, []any) {
		return []string{k.DLQ(), k.DLQIndex(), k.DLQCounters()}, []any{ids[i], sums[i]}
	})
}

// runEach runs script once per item in one pipeline (EVALSHA after
// loading it; EVAL for any answered NOSCRIPT) and returns the integer
// replies. The scripts it runs check what they act on, so that a resend
// after a lost reply changes nothing.
func (r *RDB) runEach(ctx context.Context, s *redis.Script, n int, call func(i int) ([]string, []any)) ([]int, error) {
	out := make([]int, n)
	if n == 0 {
		return out, nil
	}
	if err := s.Load(ctx, r.c).Err(); err != nil {
		return out, fmt.Errorf("script load: %w", err)
	}
	cmds := make([]*redis.Cmd, n)
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range n {
			keys, args := call(i)
			cmds[i] = s.EvalSha(ctx, p, keys, args...)
		}
		return nil
	})
	if err != nil && !isNoScript(err) {
		return partial(out, cmds, err)
	}
	var again []int
	for i, c := range cmds {
		if isNoScript(c.Err()) {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		retry := make([]*redis.Cmd, len(again))
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, i := range again {
				keys, args := call(i)
				retry[j] = s.Eval(ctx, p, keys, args...)
			}
			return nil
		})
		for j, i := range again {
			cmds[i] = retry[j]
		}
		if err != nil {
			return partial(out, cmds, err)
		}
	}
	return partial(out, cmds, nil)
}

// partial fills out with the replies of cmds up to the first failed one
// and returns that one's error (or err).
func partial(out []int, cmds []*redis.Cmd, err error) ([]int, error) {
	for i, c := range cmds {
		v, cerr := c.Int()
		if cerr != nil {
			return out[:i], fmt.Errorf("dlq script: %w", cerr)
		}
		out[i] = v
	}
	if err != nil {
		return out, fmt.Errorf("dlq script: %w", err)
	}
	return out, nil
}
