package rdb

import "github.com/redis/go-redis/v9"

// publishIdempotent appends events to a stream, skipping those whose
// idempotency key already exists (it returns the stream id remembered
// there). All in one atomic step, so racing publishers of one id write one
// entry.
//
// KEYS[1]    the stream
// KEYS[2..]  an idempotency key for each event flagged '1', in order
// ARGV[1]    MINID threshold for inline trimming (~)
// ARGV[2]    idempotency window in milliseconds
// ARGV[3..]  per event: flag ('1' checked, '0' not), payload
//
// Returns, per event, {stream id, 1 if duplicate else 0}.
var publishIdempotent = redis.NewScript(`
local out = {}
local k = 2
local n = (#ARGV - 2) / 2
for i = 1, n do
  local checked = ARGV[1 + 2 * i] == '1'
  local existing = false
  if checked then
    existing = redis.call('GET', KEYS[k])
  end
  if existing then
    out[i] = {existing, 1}
  else
    local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[1], '*', 'event', ARGV[2 + 2 * i])
    if checked then
      redis.call('SET', KEYS[k], id, 'PX', ARGV[2])
    end
    out[i] = {id, 0}
  end
  if checked then
    k = k + 1
  end
end
return out
`)
