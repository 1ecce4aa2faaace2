package eventbus

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// FuzzAppendString: the hand-written string encoder produces valid JSON
// that decodes to what encoding/json's encoding decodes to.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `quo"te`, `back\slash`, "ctl\x00\x1f\n\r\t", "é ü 日本", "\xff\xfe bad", "\u2028\u2029", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ours := appendString(nil, s)
		if !json.Valid(ours) {
			t.Fatalf("invalid JSON %q for %q", ours, s)
		}
		std, _ := json.Marshal(s)
		var a, b string
		if err := json.Unmarshal(ours, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(std, &b); err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Fatalf("%q decodes to %q, encoding/json's to %q", s, a, b)
		}
	})
}

func TestAppendEnvelopeMatchesMarshalJSON(t *testing.T) {
	ev := Event{
		ID: "id-\"1", Type: "a.b.c", Source: "src\n", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC),
		CorrelationID: "corr", TenantID: "t\u00e9", UserID: "u\x01", Version: "1.0",
		Data:         json.RawMessage(`{"k": [1, 2, {"x": null}]}`),
		Replay:       &ReplayInfo{JobID: "j", OriginalStreamID: "1-0", Handlers: []string{"h1", "h2"}},
		TraceContext: &TraceContext{Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Tracestate: "a=1,b=\"2\""},
	}
	noState := Event{ID: "y", Type: "a.b", TenantID: "t", UserID: "u", Timestamp: time.Now(),
		TraceContext: &TraceContext{Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}}
	for _, e := range []Event{ev, noState, {ID: "x", Type: "a.b", TenantID: "t", UserID: "u", Timestamp: time.Now()}} {
		ours := appendEnvelope(nil, &e)
		std, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var a, b map[string]any
		if err := json.Unmarshal(ours, &a); err != nil {
			t.Fatalf("%s: %v", ours, err)
		}
		json.Unmarshal(std, &b)
		aj, _ := json.Marshal(a)
		bj, _ := json.Marshal(b)
		if string(aj) != string(bj) {
			t.Errorf("envelope differs:\n ours %s\n std  %s", aj, bj)
		}
	}
}

// FuzzDecodeFast: whenever the fast decoder accepts an input, encoding/json
// accepts it too and gives the same envelope.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range []string{
		`{"id":"e1","type":"a.b.c","source":"s","timestamp":"2025-12-03T10:00:00.000Z","correlationId":"c","tenantId":"t","userId":"u","version":"1.0","data":{"k":[1,{"x":"}"}]}}`,
		` { "id" : "e1" , "data" : { } } `, `{}`, `{"id":"a\"b"}`, `{"ID":"x"}`, `{"data":{"a":"\\"}}`, `{"id":"é"}`,
		`{"data":{"a":1}`, `{"data":[1]}`, `{"id":null}`, `{"id":"x"} trailing`, `{"id":"x","id":"y"}`,
		`{"id":"e1","data":{},"traceContext":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","tracestate":"a=1"}}`,
		`{"traceContext":{}}`, `{"traceContext":null}`, `{"traceContext":5}`, `{"traceContext":{"traceparent":7}}`,
		`{"traceContext":{"traceparent":"a","traceparent":"b"}}`, `{"traceContext":{"traceparent":"a"},"traceContext":{"tracestate":"b"}}`,
		`{"traceContext":{"TraceParent":"a"}}`, `{"traceContext":{"traceparent":"a","x":1}}`, `{"traceContext":{"traceparent":"a",}}`,
		`{"traceContext":{ "traceparent" : "a" , "tracestate" : "b" } }`, `{"traceContext":{"traceparent":"a\u0041"}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := decodeFast(s)
		if !ok {
			return
		}
		var std wireEnvelope
		if err := json.Unmarshal([]byte(s), &std); err != nil {
			t.Fatalf("fast accepted %q, encoding/json refused: %v", s, err)
		}
		fj, _ := json.Marshal(fast)
		sj, _ := json.Marshal(std)
		if string(fj) != string(sj) {
			t.Fatalf("%q:\n fast %s\n std  %s", s, fj, sj)
		}
	})
}

func TestAppendTimestampMatchesFormat(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("x", -3600)),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 0),
		time.Now(),
	} {
		got := string(appendTimestamp([]byte("x"), tm))
		want := "x" + tm.UTC().Format(TimestampLayout)
		if got != want {
			t.Errorf("%v: %s, want %s", tm, got, want)
		}
	}
}

// FuzzParseTimestamp: the fast path agrees with time.Parse(RFC3339Nano)
// whenever it accepts.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2025-12-03T10:00:00.000Z", "2025-12-03T10:00:00Z", "2024-02-29T23:59:59.123456789Z",
		"2025-02-30T00:00:00Z", "2025-12-03T24:00:00Z", "2025-12-03T10:00:00+01:00", "yesterday", "2025-12-03T10:00:00.Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := parseUTCFast(s)
		if !ok {
			return
		}
		std, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatalf("fast accepted %q, time.Parse refused: %v", s, err)
		}
		if !fast.Equal(std) {
			t.Fatalf("%q: fast %v, time.Parse %v", s, fast, std)
		}
	})
}

// The trace context survives the envelope's round trip through the
// hand-written codec, fast decoder or not.
func TestTraceContextRoundTrip(t *testing.T) {
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, tc := range []*TraceContext{nil, {Traceparent: tp}, {Traceparent: tp, Tracestate: "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}} {
		ev := Event{ID: "e1", Type: "a.b", TenantID: "t", UserID: "u", Timestamp: time.Now(), TraceContext: tc}
		payload := string(appendEnvelope(nil, &ev))
		if _, ok := decodeFast(payload); !ok {
			t.Errorf("%s: the fast decoder refused the codec's own output", payload)
		}
		got, err := decodeEvent(payload, 0)
		if err != nil {
			t.Fatalf("%s: %v", payload, err)
		}
		if (got.TraceContext == nil) != (tc == nil) || tc != nil && *got.TraceContext != *tc {
			t.Errorf("%s: decoded trace context %+v, want %+v", payload, got.TraceContext, tc)
		}
		var std Event
		if err := json.Unmarshal([]byte(payload), &std); err != nil || (std.TraceContext == nil) != (tc == nil) || tc != nil && *std.TraceContext != *tc {
			t.Errorf("%s: encoding/json decoded %+v (%v), want %+v", payload, std.TraceContext, err, tc)
		}
	}
}

// On the consuming side a malformed trace context is dropped, never a
// reason to refuse the event; a bad tracestate alone loses the
// tracestate.
func TestDecodeEventDropsMalformedTraceContext(t *testing.T) {
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, tc := range []struct {
		key  string
		want *TraceContext
	}{
		{`,"traceContext":{"traceparent":"` + tp + `","tracestate":"a=1"}`, &TraceContext{Traceparent: tp, Tracestate: "a=1"}},
		{`,"traceContext":{"traceparent":"` + tp + `","tracestate":"not valid"}`, &TraceContext{Traceparent: tp}},
		{`,"traceContext":{"traceparent":"garbage","tracestate":"a=1"}`, nil},
		{`,"traceContext":{"tracestate":"a=1"}`, nil},
		{`,"traceContext":{}`, nil},
		{`,"traceContext":null`, nil},
		{`,"traceContext":5`, nil},
		{`,"traceContext":[1]`, nil},
		{`,"traceContext":{"traceparent":7}`, nil},
		{`,"traceContext":{"traceparent":"` + strings.ToUpper(tp) + `"}`, nil},
	} {
		payload := `{"id":"e1","type":"a.b","tenantId":"t","userId":"u","data":{}` + tc.key + `}`
		ev, err := decodeEvent(payload, 0)
		if err != nil {
			t.Errorf("%s: %v, want the event with its trace context dropped", tc.key, err)
			continue
		}
		if (ev.TraceContext == nil) != (tc.want == nil) || tc.want != nil && *ev.TraceContext != *tc.want {
			t.Errorf("%s: trace context %+v, want %+v", tc.key, ev.TraceContext, tc.want)
		}
	}
}

func TestValidTraceparent(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like", true},
		{"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", false},
		{"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-07", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-10", false},
		{"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", true},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", false},
	} {
		if err := validTraceparent(tc.s); (err == nil) != tc.ok {
			t.Errorf("validTraceparent(%q) = %v, want ok %v", tc.s, err, tc.ok)
		}
	}
}

// FuzzTraceparent: whenever validTraceparent accepts a traceparent,
// OpenTelemetry's W3C propagator reads a valid span context from it.
func FuzzTraceparent(f *testing.F) {
	for _, s := range []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", "garbage"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validTraceparent(s) != nil {
			return
		}
		if sc := (&TraceContext{Traceparent: s}).spanContext(); !sc.IsValid() {
			t.Fatalf("%q: accepted, but the propagator reads no valid span context", s)
		}
	})
}
