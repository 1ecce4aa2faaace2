package eventbus

import (
	"encoding/json"
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
		Data:   json.RawMessage(`{"k": [1, 2, {"x": null}]}`),
		Replay: &ReplayInfo{JobID: "j", OriginalStreamID: "1-0", Handlers: []string{"h1", "h2"}},
	}
	for _, e := range []Event{ev, {ID: "x", Type: "a.b", TenantID: "t", UserID: "u", Timestamp: time.Now()}} {
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
