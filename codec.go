package eventbus

import (
	"encoding/json"
	"time"
	"unicode/utf8"
)

// appendEnvelope appends the wire JSON of ev (defaults already applied,
// data already validated as a JSON object) to buf. It is the hot path of
// Publish: encoding/json would re-validate and compact Data and the
// whole envelope.
func appendEnvelope(buf []byte, ev *Event) []byte {
	buf = append(buf, `{"id":`...)
	buf = appendString(buf, ev.ID)
	buf = append(buf, `,"type":`...)
	buf = appendString(buf, ev.Type)
	buf = append(buf, `,"source":`...)
	buf = appendString(buf, ev.Source)
	buf = append(buf, `,"timestamp":"`...)
	buf = appendTimestamp(buf, ev.Timestamp)
	buf = append(buf, `","correlationId":`...)
	buf = appendString(buf, ev.CorrelationID)
	buf = append(buf, `,"tenantId":`...)
	buf = appendString(buf, ev.TenantID)
	buf = append(buf, `,"userId":`...)
	buf = appendString(buf, ev.UserID)
	buf = append(buf, `,"version":`...)
	buf = appendString(buf, ev.Version)
	buf = append(buf, `,"data":`...)
	if len(ev.Data) == 0 {
		buf = append(buf, "{}"...)
	} else {
		buf = append(buf, ev.Data...)
	}
	if tc := ev.TraceContext; tc != nil {
		buf = append(buf, `,"traceContext":{"traceparent":`...)
		buf = appendString(buf, tc.Traceparent)
		if tc.Tracestate != "" {
			buf = append(buf, `,"tracestate":`...)
			buf = appendString(buf, tc.Tracestate)
		}
		buf = append(buf, '}')
	}
	if r := ev.Replay; r != nil {
		buf = append(buf, `,"replay":{"jobId":`...)
		buf = appendString(buf, r.JobID)
		buf = append(buf, `,"originalStreamId":`...)
		buf = appendString(buf, r.OriginalStreamID)
		if r.OriginalStream != "" {
			buf = append(buf, `,"originalStream":`...)
			buf = appendString(buf, r.OriginalStream)
		}
		if r.Group != "" {
			buf = append(buf, `,"group":`...)
			buf = appendString(buf, r.Group)
		}
		if len(r.Handlers) > 0 {
			buf = append(buf, `,"handlers":[`...)
			for i, h := range r.Handlers {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = appendString(buf, h)
			}
			buf = append(buf, ']')
		}
		buf = append(buf, '}')
	}
	return append(buf, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, as encoding/json does: control
// characters, quotes and backslashes escaped, invalid UTF-8 replaced by
// U+FFFD, U+2028 and U+2029 escaped.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// decodeFast parses the common shape of the envelope without reflection:
// one flat object whose known fields (id, type, source, timestamp,
// correlationId, tenantId, userId, version) are strings without escapes,
// whose data is an object, and whose traceContext, if any, is a flat
// object of such strings under traceparent and tracestate. Anything else
// (escapes, nulls, replay, unknown or differently cased keys, invalid
// UTF-8) reports ok false and
// the caller uses encoding/json, so the result is always what
// encoding/json would give.
func decodeFast(s string) (w wireEnvelope, ok bool) {
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return w, false
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return w, skipSpace(s, i+1) == len(s)
	}
	for {
		key, next, ok := plainString(s, i)
		if !ok {
			return w, false
		}
		i = skipSpace(s, next)
		if i >= len(s) || s[i] != ':' {
			return w, false
		}
		i = skipSpace(s, i+1)
		var dst *string
		switch key {
		case "id":
			dst = &w.ID
		case "type":
			dst = &w.Type
		case "source":
			dst = &w.Source
		case "timestamp":
			dst = &w.Timestamp
		case "correlationId":
			dst = &w.CorrelationID
		case "tenantId":
			dst = &w.TenantID
		case "userId":
			dst = &w.UserID
		case "version":
			dst = &w.Version
		case "data":
			end, ok := objectEnd(s, i)
			if !ok || !json.Valid([]byte(s[i:end])) {
				return w, false
			}
			w.Data = json.RawMessage(s[i:end])
			i = end
		case "traceContext":
			tc, end, ok := plainTraceContext(s, i)
			if !ok {
				return w, false
			}
			w.TraceContext, i = tc, end
		default:
			return w, false
		}
		if dst != nil {
			v, next, ok := plainString(s, i)
			if !ok {
				return w, false
			}
			*dst, i = v, next
		}
		i = skipSpace(s, i)
		if i >= len(s) {
			return w, false
		}
		if s[i] == '}' {
			return w, skipSpace(s, i+1) == len(s)
		}
		if s[i] != ',' {
			return w, false
		}
		i = skipSpace(s, i+1)
	}
}

// plainTraceContext reads the traceContext object at s[i]: members
// traceparent and tracestate only, each a string plainString reads (a
// repeated member: the last one wins, as in encoding/json).
func plainTraceContext(s string, i int) (tc wireTraceContext, next int, ok bool) {
	if i >= len(s) || s[i] != '{' {
		return tc, 0, false
	}
	tc.Present = true
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return tc, i + 1, true
	}
	for {
		key, next, ok := plainString(s, i)
		if !ok {
			return tc, 0, false
		}
		i = skipSpace(s, next)
		if i >= len(s) || s[i] != ':' {
			return tc, 0, false
		}
		v, next, ok := plainString(s, skipSpace(s, i+1))
		if !ok {
			return tc, 0, false
		}
		switch key {
		case "traceparent":
			tc.Traceparent = v
		case "tracestate":
			tc.Tracestate = v
		default:
			return tc, 0, false
		}
		i = skipSpace(s, next)
		if i >= len(s) {
			return tc, 0, false
		}
		if s[i] == '}' {
			return tc, i + 1, true
		}
		if s[i] != ',' {
			return tc, 0, false
		}
		i = skipSpace(s, i+1)
	}
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a JSON string at s[i] that needs no unescaping: no
// backslash, no control character, valid UTF-8.
func plainString(s string, i int) (v string, next int, ok bool) {
	if i >= len(s) || s[i] != '"' {
		return "", 0, false
	}
	ascii := true
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '"':
			v = s[i+1 : j]
			if !ascii && !utf8.ValidString(v) {
				return "", 0, false
			}
			return v, j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", 0, false
}

// objectEnd returns the index after the JSON object starting at s[i],
// matching braces outside strings. It does not validate the object.
func objectEnd(s string, i int) (int, bool) {
	if i >= len(s) || s[i] != '{' {
		return 0, false
	}
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1, true
			}
		case '"':
			for j++; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					j++
				}
			}
		}
	}
	return 0, false
}

// appendTimestamp appends t in TimestampLayout (RFC 3339, UTC,
// milliseconds) without time.Format's layout parsing. Years outside
// 0-9999 take the general path.
func appendTimestamp(buf []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(buf, TimestampLayout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / 1e6
	d := func(v, n int) { // v as n decimal digits
		start := len(buf)
		buf = append(buf, "0000"[:n]...)
		for i := start + n - 1; i >= start; i-- {
			buf[i] = byte('0' + v%10)
			v /= 10
		}
	}
	d(year, 4)
	buf = append(buf, '-')
	d(int(month), 2)
	buf = append(buf, '-')
	d(day, 2)
	buf = append(buf, 'T')
	d(hour, 2)
	buf = append(buf, ':')
	d(minute, 2)
	buf = append(buf, ':')
	d(sec, 2)
	buf = append(buf, '.')
	d(ms, 3)
	return append(buf, 'Z')
}

// parseTimestamp parses an RFC 3339 timestamp. The common UTC form
// ("2006-01-02T15:04:05Z" with 0 to 9 fraction digits) is read directly;
// anything else goes to time.Parse, so the result is always time.Parse's.
func parseTimestamp(s string) (time.Time, error) {
	if t, ok := parseUTCFast(s); ok {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func parseUTCFast(s string) (time.Time, bool) {
	if len(s) < 20 || s[len(s)-1] != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	num := func(i, n int) (int, bool) {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 2)
	day, ok3 := num(8, 2)
	hour, ok4 := num(11, 2)
	minute, ok5 := num(14, 2)
	sec, ok6 := num(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, false
	}
	nsec := 0
	switch rest := s[19 : len(s)-1]; {
	case rest == "":
	case rest[0] == '.' && len(rest) >= 2 && len(rest) <= 10:
		frac, ok := num(20, len(rest)-1)
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(rest) {
			frac *= 10
		}
		nsec = frac
	default:
		return time.Time{}, false
	}
	// Out-of-range fields: let time.Parse give its error.
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // e.g. February 30
		return time.Time{}, false
	}
	return t, true
}
