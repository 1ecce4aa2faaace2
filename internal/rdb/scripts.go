package rdb

import "github.com/redis/go-redis/v9"

// ownerCheck is the Lua prologue of every step that settles or touches an
// entry in flight: it changes nothing unless the entry is still pending at
// ARGV[9] (this consumer). It returns -1 when another consumer holds the
// entry (it claimed it meanwhile and owns the outcome), and -2 when the
// entry is pending nowhere: acknowledged already, by an earlier run of the
// same step whose reply was lost, or by another consumer that claimed and
// finished it. Steps that check ownership can therefore be sent again
// safely after a lost reply.
// KEYS[1] the entry's stream, ARGV[1] group, ARGV[2] entry id.
const ownerCheck = `
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 then return -2 end
if p[1][2] ~= ARGV[9] then return -1 end
`

// deadLetterEntry moves an entry that is not a valid event to the DLQ and
// acknowledges it, only while this consumer owns it (ownerCheck), so that
// a send repeated after a lost reply writes one dead letter.
//
// The dead letter is indexed (Keys.DLQIndex) in the same step, and up to
// 100 DLQ entries older than ARGV[3] are removed with their index members
// (the janitor removes any more).
//
// KEYS[1] the entry's stream  KEYS[2] the DLQ stream  KEYS[3] the DLQ
// index  KEYS[4] the DLQ counters
// ARGV[1] group  ARGV[2] entry id  ARGV[3] DLQ retention horizon (ids
// below it are removed)  ARGV[4] payload  ARGV[5] meta JSON  ARGV[6..8]
// unused  ARGV[9] consumer
var deadLetterEntry = redis.NewScript(luaSchema + luaDLQ + ownerCheck + `
dlqAdd(KEYS[2], KEYS[3], KEYS[4], ARGV[3], ARGV[4], ARGV[5])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return 1
`)

// settle records the outcome of one delivery in one atomic step: the
// entry is acknowledged first (so nothing below can repeat if a later
// command failed), then handler outcomes go to the status hash, retries
// are scheduled and dead letters written (each indexed in the DLQ index,
// and up to 100 DLQ entries older than the DLQ's retention removed with
// their index members first). It returns -1 and does nothing when another
// consumer owns the entry, -2 when it is pending nowhere.
//
// KEYS[1] the entry's stream     KEYS[2] the status hash
// KEYS[3] the retry schedule     KEYS[4] the retry data hash
// KEYS[5] the DLQ stream         KEYS[6] the DLQ index
// KEYS[7] the DLQ counters
// ARGV[1] group  ARGV[2] entry id  ARGV[3] status TTL ms while retries are
// open  ARGV[4] status TTL ms once resolved  ARGV[5] DLQ retention horizon
// (DLQ ids below it are removed)
// ARGV[6] meta: event stream id  ARGV[7] meta: type  ARGV[8] meta: tenant
// ARGV[9] consumer
// then per operation 7 slots: kind, handler, handler JSON, a, b, c, flag
//
//	kind OP_DONE:  flag '1' when it resolves an open retry
//	kind OP_RETRY: a due ms, b member, c data; flag '1' when it opens one
//	kind OP_DLQ:   a payload, b meta JSON; flag '1' when it resolves one
//
// Field names and op kinds come from the schema (luaSchema).
var settle = redis.NewScript(luaSchema + luaDLQ + ownerCheck + `
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
local status = KEYS[2]
redis.call('HSET', status, S_STREAM, ARGV[6], S_TYPE, ARGV[7], S_TENANT, ARGV[8])
for i = 10, #ARGV, 7 do
  local kind, handler, hjson = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local a, b, c, flag = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  redis.call('HSET', status, S_HANDLER .. handler, hjson)
  if kind == OP_RETRY then
    redis.call('ZADD', KEYS[3], a, b)
    redis.call('HSET', KEYS[4], b, c)
    if flag == '1' then redis.call('HINCRBY', status, S_OPEN, 1) end
  else
    if kind == OP_DLQ then
      dlqAdd(KEYS[5], KEYS[6], KEYS[7], ARGV[5], a, b)
    end
    if flag == '1' then redis.call('HINCRBY', status, S_OPEN, -1) end
  end
end
local open = tonumber(redis.call('HGET', status, S_OPEN) or '0')
if open > 0 then
  redis.call('PEXPIRE', status, ARGV[3])
else
  redis.call('PEXPIRE', status, ARGV[4])
end
return open
`)

// markHandler records a handler's success for an entry still in flight
// and resets the entry's idle time, only while this consumer owns it;
// -1 otherwise.
//
// KEYS[1] the entry's stream  KEYS[2] the status hash
// ARGV[1] group  ARGV[2] entry id  ARGV[3] field  ARGV[4] record
// ARGV[5] status TTL ms  ARGV[6..8] unused  ARGV[9] consumer
var markHandler = redis.NewScript(ownerCheck + `
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[9], 0, ARGV[2], 'JUSTID')
return 1
`)

// touchOwned resets the idle time of entries this consumer is still
// handling, skipping any another consumer has claimed, so that a long
// local queue or a run of slow handlers is not taken for a dead consumer.
//
// KEYS[1] the stream  ARGV[1] group  ARGV[2] consumer  ARGV[3..] ids
var touchOwned = redis.NewScript(`
local n = 0
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    n = n + 1
  end
end
return n
`)

// forwardRetries moves due retries to the group's retries stream.
//
// KEYS[1] retry schedule  KEYS[2] retry data  KEYS[3] retries stream
// ARGV[1] now ms  ARGV[2] limit  ARGV[3] MINID (~) for the retries stream
var forwardRetries = redis.NewScript(luaSchema + `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local data = redis.call('HGET', KEYS[2], member)
  if data then
    redis.call('XADD', KEYS[3], 'MINID', '~', ARGV[3], '*', F_RETRY, data)
  end
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
end
return #due
`)

// deleteIdleConsumer removes a consumer from a group only when its
// heartbeat is missing or stale (a live consumer blocked on a quiet stream
// looks idle to XINFO CONSUMERS on Redis 7.0) and it holds no pending
// entries (XGROUP DELCONSUMER would drop them). Its heartbeat goes too.
//
// KEYS[1] the group's consumer registry  KEYS[2..n] the group's streams
// ARGV[1] group  ARGV[2] consumer  ARGV[3] heartbeat age ms that means dead
var deleteIdleConsumer = redis.NewScript(nowMs + `
local consumer, deadAfter = ARGV[2], ARGV[3]
` + beatAliveReturns0 + `
local first = 2
` + deleteIfNothingPending + `
redis.call('HDEL', KEYS[1], ARGV[2])
return 1
`)

// consumerDead reports (1) whether a consumer's heartbeat in its group's
// registry is missing or older than a limit, by the Redis clock.
//
// KEYS[1] the group's consumer registry
// ARGV[1] consumer  ARGV[2] dead after ms
var consumerDead = redis.NewScript(nowMs + `
local consumer, deadAfter = ARGV[1], ARGV[2]
` + beatAliveReturns0 + `
return 1
`)

// deleteIdleConsumerIn removes a consumer from a group on the streams of
// one partition (one hash slot) when it holds no pending entry on any of
// them (1), else changes nothing (0).
//
// KEYS the partition's streams of the group
// ARGV[1] group  ARGV[2] consumer
var deleteIdleConsumerIn = redis.NewScript(`
local first = 1
` + deleteIfNothingPending + `
return 1
`)

// beatAliveReturns0 is a Lua fragment that returns 0 when consumer's
// heartbeat in the registry KEYS[1] is younger than deadAfter ms (needs
// nowMs, consumer and deadAfter).
const beatAliveReturns0 = `
local beat = redis.call('HGET', KEYS[1], consumer)
if beat then
  local ok, v = pcall(cjson.decode, beat)
  if ok and type(v) == 'table' and tonumber(v.lastSeen) and now - tonumber(v.lastSeen) < tonumber(deadAfter) then
    return 0
  end
end
`

// deleteIfNothingPending is a Lua fragment that returns 0 when consumer
// ARGV[2] holds a pending entry of group ARGV[1] on any stream of
// KEYS[first..], and otherwise removes it from the group on each of them.
const deleteIfNothingPending = `
for i = first, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local p = redis.call('XPENDING', KEYS[i], ARGV[1], '-', '+', 1, ARGV[2])
    if #p > 0 then return 0 end
  end
end
for i = first, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.pcall('XGROUP', 'DELCONSUMER', KEYS[i], ARGV[1], ARGV[2])
  end
end
`

// nowMs is a Lua prologue setting now to the Redis clock in milliseconds,
// so that heartbeats of processes on different hosts compare on one clock.
const nowMs = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// heartbeat records that a consumer is alive, with its handler names, and
// drops entries of consumers not seen for the registry's TTL (dead ones
// the group no longer lists, so nothing else would remove them).
//
// KEYS[1] the group's consumer registry
// ARGV[1] consumer  ARGV[2] handler names (JSON array)  ARGV[3] registry TTL ms
var heartbeat = redis.NewScript(nowMs + `
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local ok, v = pcall(cjson.decode, all[i + 1])
  if not ok or type(v) ~= 'table' or not tonumber(v.lastSeen) or now - tonumber(v.lastSeen) > tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
redis.call('HSET', KEYS[1], ARGV[1], '{"lastSeen":' .. string.format('%d', now) .. ',"handlers":' .. ARGV[2] .. '}')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)
