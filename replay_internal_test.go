package eventbus

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The envelope encoder writes the replay info with its group exactly as
// encoding/json does, and DecodeEvent reads it back.
func TestReplayInfoWithGroupRoundTrips(t *testing.T) {
	ev := Event{ID: "e1", Type: "a.b", Source: "s", Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC), CorrelationID: "c",
		TenantID: "t", UserID: "u", Version: "1.0", Data: json.RawMessage(`{"x":1}`),
		Replay: &ReplayInfo{JobID: "j", OriginalStreamID: "1-0", Group: "g\"1", Handlers: []string{"h1", "h2"}}}
	ours := appendEnvelope(nil, &ev)
	std, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	if err := json.Unmarshal(ours, &a); err != nil {
		t.Fatalf("%s: %v", ours, err)
	}
	_ = json.Unmarshal(std, &b)
	aj, _ := json.Marshal(a)
	bj, _ := json.Marshal(b)
	if string(aj) != string(bj) {
		t.Errorf("envelope differs:\n ours %s\n std  %s", aj, bj)
	}
	got, err := DecodeEvent(ours, 0)
	if err != nil || got.Replay == nil || got.Replay.Group != "g\"1" || len(got.Replay.Handlers) != 2 {
		t.Errorf("decoded %+v %v", got.Replay, err)
	}
	ev.Replay.Group = ""
	if s := string(appendEnvelope(nil, &ev)); strings.Contains(s, `"group"`) {
		t.Errorf("an empty group is written: %s", s)
	}
}

func TestWithReplayFlag(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, `{"__replay":true}`},
		{`{}`, `{"__replay":true}`},
		{` { } `, `{"__replay":true}`},
		{`{"a":1}`, `{"__replay":true,"a":1}`},
		{`{"__replay":false,"a":1}`, `{"__replay":true,"a":1}`},
		{`{"\u005f_replay":"x"}`, `{"__replay":true}`},
		{`{"a":"\"","b":[1,{"c":2}]}`, `{"__replay":true,"a":"\"","b":[1,{"c":2}]}`},
	} {
		got := withReplayFlag(json.RawMessage(tc.in))
		var g, w map[string]any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("%s -> %s: %v", tc.in, got, err)
		}
		_ = json.Unmarshal([]byte(tc.want), &w)
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(w)
		if string(gj) != string(wj) {
			t.Errorf("%s -> %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestReplayProgress(t *testing.T) {
	for _, tc := range []struct {
		status, cursor string
		want           int
	}{
		{ReplayRunning, "", 0},
		{ReplayRunning, "1000-5", 0},
		{ReplayRunning, "1500-0", 50},
		{ReplayRunning, "1999-9", 99},
		{ReplayCancelled, "1250-0", 25},
		{ReplayCompleted, "1500-0", 100},
	} {
		if got := replayProgress(tc.status, "1000-0", "1999-18446744073709551615", tc.cursor); got != tc.want {
			t.Errorf("%s at %q: %d, want %d", tc.status, tc.cursor, got, tc.want)
		}
	}
}

func TestReplayProgressOfPartitions(t *testing.T) {
	const start, end = "1000-0", "1999-18446744073709551615"
	for _, tc := range []struct {
		status  string
		cursors []string
		want    int
	}{
		{ReplayRunning, []string{"", "", ""}, 0},
		{ReplayRunning, []string{end, "", ""}, 33},
		{ReplayRunning, []string{end, "1500-0", ""}, 50},
		{ReplayRunning, []string{end, end, end}, 99},
		{ReplayCompleted, []string{end, "1500-0", ""}, 100},
		{ReplayRunning, nil, 0},
	} {
		if got := replayProgressOf(tc.status, start, end, tc.cursors); got != tc.want {
			t.Errorf("%s at %q: %d, want %d", tc.status, tc.cursors, got, tc.want)
		}
	}
}
