package eventbus

import (
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
	buf = ev.Timestamp.UTC().AppendFormat(buf, TimestampLayout)
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
	if r := ev.Replay; r != nil {
		buf = append(buf, `,"replay":{"jobId":`...)
		buf = appendString(buf, r.JobID)
		buf = append(buf, `,"originalStreamId":`...)
		buf = appendString(buf, r.OriginalStreamID)
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
