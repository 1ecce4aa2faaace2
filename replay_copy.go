package eventbus

import (
	"bytes"
	"encoding/json"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus/internal/rdb"
)

// replayFilter selects the main stream entries a replay copies.
type replayFilter struct {
	types   []string // patterns; none: every type
	tenant  string   // "" : every tenant
	maxSize int
}

// match decodes entry m and reports whether it matches the filter; ev is
// the event when it is a valid one (valid false: the entry matches but
// cannot be copied). An entry that is not a valid event matches when what
// can be read of it (its tenant, its type) matches: with a tenant filter,
// one whose tenant cannot be read never matches, nor, with a type filter,
// one whose type cannot be read.
func (f replayFilter) match(m redis.XMessage) (matched bool, ev *Event) {
	raw, ok := m.Values[rdb.FieldEvent].(string)
	if !ok {
		return f.tenant == "" && len(f.types) == 0, nil
	}
	e, err := decodeEvent(raw, f.maxSize)
	if !f.tenantOK(e.TenantID) || !f.typeOK(e.Type) {
		return false, nil
	}
	if err != nil {
		return true, nil
	}
	return true, &e
}

func (f replayFilter) tenantOK(t string) bool { return f.tenant == "" || t == f.tenant }

func (f replayFilter) typeOK(t string) bool {
	return len(f.types) == 0 || t != "" && slices.ContainsFunc(f.types, func(p string) bool { return matchPattern(p, t) })
}

// replayCopy encodes the copy of ev (read at stream id id) for job: the
// same envelope with replay info and data.__replay = true. ok is false
// when the copy is over maxSize.
func replayCopy(ev Event, id string, info ReplayInfo, maxSize int) ([]byte, bool) {
	info.OriginalStreamID = id
	ev.Replay = &info
	ev.Data = withReplayFlag(ev.Data)
	if ev.Timestamp.IsZero() { // the entry had none: the time it was written
		ev.Timestamp, _ = rdb.IDTime(id)
	}
	payload := appendEnvelope(make([]byte, 0, 256+len(ev.Data)), &ev)
	return payload, len(payload) <= maxSize
}

// replayFlag is the data key that marks a replayed copy (the platform's
// handlers look for it).
const replayFlag = "__replay"

// withReplayFlag returns the JSON object d (valid: it was decoded) with
// "__replay": true: inserted first when d has no such key and no escapes
// (which could spell one), else set through a map.
func withReplayFlag(d json.RawMessage) json.RawMessage {
	t := bytes.TrimSpace(d)
	if len(t) == 0 {
		return json.RawMessage(`{"` + replayFlag + `":true}`)
	}
	if !bytes.Contains(t, []byte(replayFlag)) && !bytes.Contains(t, []byte{'\\'}) {
		rest := bytes.TrimLeft(t[1:], " \t\r\n")
		if len(rest) > 0 && rest[0] == '}' {
			return json.RawMessage(`{"` + replayFlag + `":true}`)
		}
		out := make([]byte, 0, len(t)+len(replayFlag)+8)
		out = append(out, `{"`+replayFlag+`":true,`...)
		return append(out, t[1:]...)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(t, &m); err != nil {
		return d // not reached: d was decoded as an object
	}
	m[replayFlag] = json.RawMessage("true")
	out, err := json.Marshal(m)
	if err != nil {
		return d
	}
	return out
}
