package rdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// locateLua is the Lua function shared by locateEntry and publishChecked:
// it searches stream from start to stop (XRANGE bounds) for the entry of
// event id (a ULID) of tenant (empty for any), reading at most cap entries, in
// chunks of 50 so that a script never holds more than 50 bodies at once.
// The match is made inside Redis: an entry's envelope starts with its id
// (the bus encodes `{"id":"<id>"` first), and only a candidate is decoded
// to compare its tenant.
//
// Returns {stream id, type, tenant} when found, {"", 'end'} when the range
// holds no such entry, {"", 'cap', next start} when cap entries were read
// without reaching the end.
const locateLua = `
local function locate(stream, start, stop, id, tenant, cap)
  local needle = '{"id":"' .. id .. '"'
  local n = #needle
  local read = 0
  while read < cap do
    local batch = math.min(50, cap - read)
    local entries = redis.call('XRANGE', stream, start, stop, 'COUNT', batch)
    for _, e in ipairs(entries) do
      local f = e[2]
      for j = 1, #f, 2 do
        if f[j] == F_EVENT and string.sub(f[j + 1], 1, n) == needle then
          local ok, ev = pcall(cjson.decode, f[j + 1])
          if ok and ev.id == id and (tenant == '' or ev.tenantId == tenant) then
            return {e[1], tostring(ev.type or ''), tostring(ev.tenantId or '')}
          end
        end
      end
    end
    read = read + #entries
    if #entries < batch then
      return {'', 'end'}
    end
    start = '(' .. entries[#entries][1]
  end
  return {'', 'cap', start}
end
`

// locateEntry runs locate once.
//
// KEYS[1] the stream  ARGV[1] start  ARGV[2] stop  ARGV[3] event id
// ARGV[4] tenant (empty for any)  ARGV[5] cap
var locateEntry = redis.NewScript(luaSchema + locateLua + `
return locate(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]))
`)

// publishChecked appends events to a stream in one atomic step. Per event,
// a flag says how:
//
//	'0' plain XADD (an id the bus generated just now);
//	'1' skip it if its idempotency key exists (the stream id remembered
//	    there is returned), else XADD and set the key;
//	'2' as '1', and when the key is absent (an id the bus generated, sent
//	    again after an unknown outcome), first look for the entry in the
//	    stream itself from its start id on, reading at most ARGV[3]
//	    entries: found, it is a duplicate (and the key is set); when the
//	    cap is reached first, nothing of the whole call is written and the
//	    event's result is {"", 2}: its outcome is still unknown.
//
// Racing publishers of one id write one entry (flags '1' and '2').
//
// KEYS[1]    the stream
// KEYS[2..]  an idempotency key for each event flagged '1' or '2', in order
// ARGV[1]    MINID threshold (~) for the first write to trim; "" for none
// ARGV[2]    idempotency window in milliseconds
// ARGV[3]    cap of entries read per verified event
// ARGV[4..]  per event 5 slots: flag, payload, event id, tenant, start id;
// the last three are used for flag '2' only.
//
// Returns, per event, {stream id, 1 if duplicate else 0}, or {"", 2} for
// the event whose search hit the cap ({"", 3} for the others of its call).
var publishChecked = redis.NewScript(publishCheckedSrc)

var publishCheckedSrc = luaSchema + locateLua + `
local n = (#ARGV - 3) / 5
local cap = tonumber(ARGV[3])
local found = {}
local unknown = false
local k = 2
for i = 1, n do
  local a = 4 + 5 * (i - 1)
  local flag = ARGV[a]
  if flag == '2' then
    if redis.call('EXISTS', KEYS[k]) == 0 then
      local r = locate(KEYS[1], ARGV[a + 4], '+', ARGV[a + 2], ARGV[a + 3], cap)
      if r[1] ~= '' then
        found[i] = r[1]
      elseif r[2] == 'cap' then
        found[i] = false
        unknown = true
      end
    end
  end
  if flag ~= '0' then
    k = k + 1
  end
end
local out = {}
if unknown then
  for i = 1, n do
    if found[i] == false then out[i] = {"", 2} else out[i] = {'', 3} end
  end
  return out
end
k = 2
for i = 1, n do
  local a = 4 + 5 * (i - 1)
  local flag = ARGV[a]
  local existing = false
  if flag ~= '0' then
    existing = redis.call('GET', KEYS[k])
    if not existing and found[i] then
      existing = found[i]
      redis.call('SET', KEYS[k], existing, 'PX', ARGV[2])
    end
  end
  if existing then
    out[i] = {existing, 1}
  else
    local id
    if ARGV[1] ~= '' then
      id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[1], '*', F_EVENT, ARGV[a + 1])
      ARGV[1] = ''
    else
      id = redis.call('XADD', KEYS[1], '*', F_EVENT, ARGV[a + 1])
    end
    if flag ~= '0' then
      redis.call('SET', KEYS[k], id, 'PX', ARGV[2])
    end
    out[i] = {id, 0}
  end
  if flag ~= '0' then
    k = k + 1
  end
end
return out
`

// Located is where an event's entry is.
type Located struct {
	StreamID string
	Type     string
	TenantID string
}

// ErrLocateCap is returned by Locate when it read its whole budget of
// entries without reaching the end of the range.
var ErrLocateCap = errors.New("locate: entry budget spent")

// Locate searches stream between start and stop (XRANGE bounds) for the
// entry of event eventID (a ULID the bus encodes first in the envelope) of
// tenantID ("" for any tenant). The search runs inside Redis: each script
// call reads at most perCall entries there and sends back only the stream
// id, type and tenant of a match, never a body; at most total entries are
// read in all (then ErrLocateCap). It returns ok false when the range holds
// no such entry.
func (r *RDB) Locate(ctx context.Context, stream, start, stop, eventID, tenantID string, perCall, total int) (Located, bool, error) {
	for read := 0; read < total; read += perCall {
		n := min(perCall, total-read)
		res, err := locateEntry.Run(ctx, r.c, []string{stream}, start, stop, eventID, tenantID, strconv.Itoa(n)).Slice()
		if err != nil {
			return Located{}, false, fmt.Errorf("locate %s: %w", eventID, err)
		}
		l, state, next, err := parseLocated(res)
		if err != nil {
			return Located{}, false, fmt.Errorf("locate %s: %w", eventID, err)
		}
		switch state {
		case "found":
			return l, true, nil
		case "end":
			return Located{}, false, nil
		}
		start = next
	}
	return Located{}, false, ErrLocateCap
}

func parseLocated(res []any) (l Located, state, next string, err error) {
	str := func(i int) string {
		if i < len(res) {
			s, _ := res[i].(string)
			return s
		}
		return ""
	}
	if len(res) < 2 {
		return l, "", "", fmt.Errorf("unexpected reply %v", res)
	}
	if id := str(0); id != "" {
		return Located{StreamID: id, Type: str(1), TenantID: str(2)}, "found", "", nil
	}
	switch str(1) {
	case "end":
		return l, "end", "", nil
	case "cap":
		if next = str(2); next != "" {
			return l, "cap", next, nil
		}
	}
	return l, "", "", fmt.Errorf("unexpected reply %v", res)
}
