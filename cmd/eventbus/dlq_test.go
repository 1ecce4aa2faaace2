package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// TestRunBulk: a bulk command first runs a dry run and prints the count,
// asks on stderr and acts only on "y" or "yes" (or with --yes); nothing
// matched means no question and no action; not confirming is exit 1 with
// nothing changed.
func TestRunBulk(t *testing.T) {
	for _, tt := range []struct {
		name     string
		matched  int64
		yes      bool
		asJSON   bool
		stdin    io.Reader
		confirms bool   // the real action ran
		wantErr  string // "" for success
		stdout   string // stdout contains it
		stderr   string // stderr contains it
	}{
		{name: "yes answered", matched: 3, stdin: strings.NewReader("y\n"), confirms: true, stdout: "MATCHED", stderr: "Redrive 3 dead letters? [y/N]"},
		{name: "YES answered", matched: 3, stdin: strings.NewReader(" YES \n"), confirms: true},
		{name: "no answered", matched: 3, stdin: strings.NewReader("n\n"), wantErr: "not confirmed; nothing was changed", stderr: "3 dead letters match"},
		{name: "empty answer", matched: 3, stdin: strings.NewReader("\n"), wantErr: "not confirmed"},
		{name: "no stdin", matched: 3, stdin: nil, wantErr: "not confirmed"},
		{name: "stdin closed", matched: 3, stdin: strings.NewReader(""), wantErr: "not confirmed"},
		{name: "--yes", matched: 2, yes: true, confirms: true, stderr: "2 dead letters match"},
		{name: "--yes --json", matched: 2, yes: true, asJSON: true, confirms: true, stdout: `"redriven": 2`},
		{name: "nothing matches", matched: 0, stdin: strings.NewReader("y\n"), stdout: "no dead letter matches"},
		{name: "nothing matches, json", matched: 0, asJSON: true, stdout: `"dryRun": true`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var calls []bool
			act := func(_ context.Context, confirm bool) (eventbus.BulkResult, error) {
				calls = append(calls, confirm)
				if !confirm {
					return eventbus.BulkResult{Matched: tt.matched, DryRun: true}, nil
				}
				return eventbus.BulkResult{Matched: tt.matched, Redriven: tt.matched}, nil
			}
			var out, errOut bytes.Buffer
			err := runBulk(context.Background(), act, "Redrive", "retry", tt.yes, tt.asJSON, tt.stdin, &out, &errOut, time.Second)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
			want := []bool{false}
			if tt.confirms {
				want = append(want, true)
			}
			if !slices.Equal(calls, want) {
				t.Errorf("calls (confirm) %v, want %v", calls, want)
			}
			if !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("stdout %q stderr %q, want %q and %q", out.String(), errOut.String(), tt.stdout, tt.stderr)
			}
			if tt.yes && strings.Contains(errOut.String(), "[y/N]") {
				t.Errorf("--yes asked: %q", errOut.String())
			}
		})
	}
	// A failing dry run acts on nothing and says what failed.
	calls := 0
	err := runBulk(context.Background(), func(context.Context, bool) (eventbus.BulkResult, error) {
		calls++
		return eventbus.BulkResult{}, &eventbus.FilterError{Field: "type", Reason: "bad pattern"}
	}, "Delete", "purge", true, false, nil, io.Discard, io.Discard, time.Second)
	var ue usageError
	if calls != 1 || !errors.As(err, &ue) || !strings.Contains(err.Error(), "--type: bad pattern") {
		t.Errorf("bad filter: %d calls, err %v; want one call and a usage error naming --type", calls, err)
	}
}

// TestBulkSelection: exactly one of --ids, --event-ids and filter flags
// (or --all, or --tenant alone) selects the dead letters of a bulk
// command.
func TestBulkSelection(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		want    eventbus.DLQSelection
		wantErr string
	}{
		{args: []string{"--ids", "1-1,2-2", "--ids", "3-3"}, want: eventbus.DLQSelection{IDs: []string{"1-1", "2-2", "3-3"}}},
		{args: []string{"--event-ids", "e1"}, want: eventbus.DLQSelection{EventIDs: []string{"e1"}}},
		{args: []string{"--type", "crm.*", "--handler", "mailer", "--q", "timeout"}, want: eventbus.DLQSelection{Filter: &eventbus.DLQFilter{Types: []string{"crm.*"}, Handler: "mailer", Query: "timeout"}}},
		{args: []string{"--all"}, want: eventbus.DLQSelection{Filter: &eventbus.DLQFilter{}}},
		{args: []string{"--tenant", "t1"}, want: eventbus.DLQSelection{Filter: &eventbus.DLQFilter{}}},
		{args: []string{"--tenant", "t1", "--type", "a.b"}, want: eventbus.DLQSelection{Filter: &eventbus.DLQFilter{Types: []string{"a.b"}}}},
		{args: nil, wantErr: "want --ids"},
		{args: []string{"--ids", " , "}, wantErr: "--ids: empty"},
		{args: []string{"--ids", "1-1", "--type", "a.b"}, wantErr: "not several"},
		{args: []string{"--ids", "1-1", "--event-ids", "e"}, wantErr: "not several"},
		{args: []string{"--all", "--handler", "h"}, wantErr: "--all"},
		{args: []string{"--ids", strings.Repeat("x,", 1001)}, wantErr: "at most 1000"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String("tenant", "", "")
		b := addBulkFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		sel, err := b.selection(fs)
		if tt.wantErr != "" {
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: err %v, want a usage error with %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		got, _ := json.Marshal(sel)
		want, _ := json.Marshal(tt.want)
		if err != nil || string(got) != string(want) {
			t.Errorf("%v: %s %v, want %s", tt.args, got, err, want)
		}
	}
}

// TestOperator: the CLI acts as cli:<OS user> (or --actor), on every
// tenant, as an owner.
func TestOperator(t *testing.T) {
	env := func(k string) string { return map[string]string{"USER": "ana"}[k] }
	if a := operator("", env); a != (eventbus.Actor{Subject: "cli:ana", TenantID: "*", Role: "owner"}) {
		t.Errorf("default actor %+v", a)
	}
	if a := operator("ops-bot", env); a.Subject != "ops-bot" || a.TenantID != "*" || a.Role != "owner" {
		t.Errorf("--actor %+v", a)
	}
	if a := operator("", func(string) string { return "" }); !strings.HasPrefix(a.Subject, "cli:") || a.Subject == "cli:" {
		t.Errorf("actor without USER %+v", a)
	}
}

// TestDLQTables: the readable output of list, show and bulk results.
func TestDLQTables(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var buf bytes.Buffer
	if err := writeDLQTable(&buf, []eventbus.DLQItem{
		{ID: "1764504000000-0", EventID: "01JD", Type: "crm.deal.won", TenantID: "t1", Handler: "mailer", Attempts: 4, Redrives: 1,
			LastError: "smtp: 421 try\nlater " + strings.Repeat("x", 80), MovedAt: at},
		{ID: "1764504000001-0", Handlers: []string{"a", "b"}, Handler: "a", MovedAt: at},
	}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "DLQ ID MOVED AT TYPE TENANT HANDLER ATTEMPTS REDRIVES EVENT ID LAST ERROR" {
		t.Fatalf("table %q", buf.String())
	}
	if f := strings.Fields(lines[1]); len(f) < 9 || f[0] != "1764504000000-0" || f[1] != "2026-11-30T12:00:00.000Z" || f[4] != "mailer" || f[5] != "4" || f[6] != "1" || f[7] != "01JD" || !strings.HasSuffix(lines[1], "…") || strings.Contains(lines[1], "\n") {
		t.Errorf("row %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[2] != "-" || f[4] != "a,b" {
		t.Errorf("row of an entry without event %q", lines[2])
	}

	buf.Reset()
	if err := writeDLQEntries(&buf, []eventbus.DLQEntry{{
		DeadLetter: eventbus.DeadLetter{ID: "1-0", EventID: "01JD", Type: "crm.deal.won", TenantID: "t1", Handler: "mailer", Group: "g",
			Attempts: 2, MovedAt: at, Reason: "retries exhausted",
			Errors: []eventbus.AttemptError{{Attempt: 1, At: at, Message: "boom"}, {Attempt: 2, At: at, Message: "panic: x", Stack: "main.f()\n\tf.go:1\n"}}},
		Event: json.RawMessage(`{"id":"01JD"}`),
	}, {DeadLetter: eventbus.DeadLetter{ID: "2-0", Reason: "invalid entry"}, Raw: "not json"}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DLQ ID     1-0", "HANDLER    mailer", "REASON     retries exhausted", "  #1  2026-11-30T12:00:00Z  boom",
		"  #2  2026-11-30T12:00:00Z  panic: x\n        main.f()\n        \tf.go:1\n", "EVENT\n  {\"id\":\"01JD\"}", "\n\nDLQ ID     2-0", "RAW (not valid JSON)\n  not json"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("show output lacks %q:\n%s", want, buf.String())
		}
	}

	buf.Reset()
	_ = writeBulkResult(&buf, eventbus.BulkResult{Matched: 5, Redriven: 3, OverLimit: 1, Gone: 1})
	if f := strings.Fields(strings.Split(buf.String(), "\n")[1]); strings.Join(f, " ") != "5 3 0 1 0 1" {
		t.Errorf("bulk result %q", buf.String())
	}
}

// TestStatsTable: the readable stats report.
func TestStatsTable(t *testing.T) {
	first, last := "1-0", "9-0"
	lag, age := int64(12), int64(1500)
	var buf bytes.Buffer
	err := writeStats(&buf, eventbus.Stats{
		Timestamp: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), Scope: "*",
		MainStream:    &eventbus.StreamStats{Name: "hyvve:events:main", Length: 42, FirstEntryID: &first, LastEntryID: &last},
		DLQ:           eventbus.DLQStats{Length: 120, Budget: 10000, UsedPercent: 1.2, TrimmedByRetention: 7},
		ConsumerGroup: &eventbus.GroupStats{Name: "hyvve-platform", Pending: 3, Consumers: 2, Lag: &lag, OldestPendingAgeMs: &age, RetriesScheduled: 4},
		Throughput:    eventbus.ThroughputStats{LastHour: 30, Last24h: 400, ByType: map[string]eventbus.TypeCount{"b.x": {LastHour: 1, Last24h: 100}, "a.x": {LastHour: 29, Last24h: 300}, "c.x": {Last24h: 100}}},
		Failures:      eventbus.FailureStats{LastHour: 11},
		Alarms: []eventbus.StatsAlarm{{Name: "dlq", Level: eventbus.AlarmWarning, Value: 120, Threshold: 100, Message: "120 dead letters"},
			{Name: "failures", Level: eventbus.AlarmWarning, Value: 11, Threshold: 10, Message: "11 failures in the last hour"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"SCOPE", "hyvve:events:main  length 42  first 1-0  last 9-0", "length 120  budget 10000 (1.2 % used)  trimmed by retention 7",
		"hyvve-platform  pending 3  consumers 2  lag 12  oldest pending 1.5s  retries scheduled 4", "last hour 30  last 24h 400", "FAILURES     last hour 11",
		"a.x   29         300", "dlq       warning  120    100        120 dead letters"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats output lacks %q:\n%s", want, out)
		}
	}
	if a, b, c := strings.Index(out, "a.x"), strings.Index(out, "b.x"), strings.Index(out, "c.x"); !(a < b && b < c) {
		t.Errorf("types not busiest first, then by name:\n%s", out)
	}
	// A tenant's report has no stream or group, and no alarms.
	buf.Reset()
	_ = writeStats(&buf, eventbus.Stats{Scope: "t1", DLQ: eventbus.DLQStats{Length: 2}})
	if out := buf.String(); strings.Contains(out, "MAIN STREAM") || strings.Contains(out, "GROUP") || strings.Contains(out, "budget") || !strings.Contains(out, "ALARMS: none") {
		t.Errorf("tenant stats:\n%s", out)
	}
}

// TestDLQCommandUsage: bad usage of the dlq and stats commands exits 2
// with a message naming the problem, before anything is read or changed.
func TestDLQCommandUsage(t *testing.T) {
	_, prefix := redistest.Shared(t)
	env := inspectEnv(sharedURL(), prefix)
	for _, tt := range []struct {
		args      []string
		stderrHas string
	}{
		{[]string{"dlq"}, "subcommand"},
		{[]string{"dlq", "requeue"}, `unknown subcommand "requeue"`},
		{[]string{"dlq", "list", "extra"}, "unexpected argument"},
		{[]string{"dlq", "list", "--limit", "0"}, "--limit"},
		{[]string{"dlq", "list", "--from", "yesterday"}, "RFC 3339"},
		{[]string{"dlq", "list", "--tenant", ""}, "--tenant"},
		{[]string{"dlq", "list", "--timeout", "0s"}, "--timeout"},
		{[]string{"dlq", "show"}, "want one event id"},
		{[]string{"dlq", "show", "a", "b"}, "want one event id"},
		{[]string{"dlq", "show", "--entry", "1-1", "e1"}, "not both"},
		{[]string{"dlq", "show", "--entry", ""}, "--entry"},
		{[]string{"dlq", "retry"}, "want --ids"},
		{[]string{"dlq", "retry", "--type", "a.b", "e1"}, "one event id"},
		{[]string{"dlq", "retry", "e1", "e2"}, "one event id"},
		{[]string{"dlq", "retry", "--ids", "1-1", "--all"}, "not several"},
		{[]string{"dlq", "delete"}, "want one event id"},
		{[]string{"dlq", "delete", "--type", "a.b"}, "flag provided but not defined"},
		{[]string{"dlq", "purge"}, "want --ids"},
		{[]string{"dlq", "purge", "e1"}, "dlq delete"},
		{[]string{"dlq", "purge", "--all", "--q", "x"}, "--all"},
		{[]string{"stats", "extra"}, "unexpected argument"},
		{[]string{"stats", "--tenant", " "}, "--tenant"},
	} {
		code, out, errOut := runRead(t, env, tt.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tt.stderrHas) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 mentioning %q", tt.args, code, out, errOut, tt.stderrHas)
		}
	}
	for _, args := range [][]string{{"dlq", "--help"}, {"dlq", "list", "-h"}, {"stats", "-h"}, {"dlq", "purge", "-h"}} {
		if code, _, _ := runRead(t, env, args...); code != 0 {
			t.Errorf("%v: exit %d, want 0", args, code)
		}
	}
}

// TestDLQCommandsRedisDown: with Redis not there the commands exit 1 and
// say so. It needs the Inspector's DLQ and Stats implementation (their
// stubs do not reach Redis).
func TestDLQCommandsRedisDown(t *testing.T) {
	_, prefix := redistest.Shared(t)
	down := inspectEnv("redis://"+freeAddr(t), prefix)
	for _, args := range [][]string{{"dlq", "list"}, {"stats"}, {"dlq", "purge", "--all", "--yes"}} {
		code, out, errOut := runRead(t, down, append(args, "--timeout", "5s")...)
		if code != 1 || out != "" || !strings.Contains(errOut, "redis unavailable") {
			t.Errorf("%v with Redis down: exit %d, stdout %q, stderr %q; want exit 1 saying redis unavailable", args, code, out, errOut)
		}
	}
}

// TestDLQCommands runs the dlq and stats commands against dead letters
// made through the public path (a handler failing permanently). It needs
// the Inspector's DLQ and Stats implementation (it fails against their
// stubs).
func TestDLQCommands(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	bus, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix, Block: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	cons, err := bus.NewConsumer(eventbus.ConsumerConfig{ClaimIdle: 5 * time.Second, ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Handle("billing", "*", eventbus.HandlerFunc(func(context.Context, eventbus.Event) error {
		return eventbus.Permanent(errors.New("card declined"))
	}), eventbus.Timeout(time.Second)); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = cons.Run(runCtx) }()
	ids := map[string]string{} // name -> event id
	for _, e := range []struct{ name, typ, tenant string }{
		{"a1", "crm.deal.won", "t1"}, {"a2", "crm.deal.lost", "t1"}, {"a3", "billing.invoice.sent", "t1"}, {"b1", "crm.deal.won", "t2"},
	} {
		p, err := bus.Publish(ctx, eventbus.Event{Type: e.typ, TenantID: e.tenant, UserID: "u"})
		if err != nil {
			t.Fatal(err)
		}
		ids[e.name] = p.ID
	}
	dlq := rdb.NewKeys(prefix, false).DLQ()
	deadline := time.Now().Add(30 * time.Second)
	for c.XLen(ctx, dlq).Val() < 4 {
		if time.Now().After(deadline) {
			t.Fatal("events not dead-lettered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-done
	env := inspectEnv(sharedURL(), prefix)
	cli := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(ctx, args, strings.NewReader(stdin), &out, &errOut, env)
		return code, out.String(), errOut.String()
	}

	// list: a table, newest first; filters; --json lines.
	// (Handlers run concurrently: the DLQ's order is not the publish order.)
	code, out, errOut := cli("", "dlq", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 5 || !strings.HasPrefix(lines[0], "DLQ ID") {
		t.Fatalf("dlq list: exit %d\n%s%s", code, out, errOut)
	}
	var dlqIDs []string
	for _, l := range lines[1:] {
		dlqIDs = append(dlqIDs, strings.Fields(l)[0])
	}
	if !slices.IsSortedFunc(dlqIDs, func(a, b string) int { return -compareStreamIDs(a, b) }) {
		t.Errorf("dlq list not newest first:\n%s", out)
	}
	for name, id := range ids {
		if !strings.Contains(out, id) {
			t.Errorf("dlq list lacks %s (%s):\n%s", name, id, out)
		}
	}
	code, out, _ = cli("", "dlq", "list", "--tenant", "t1", "--type", "crm.*", "--json")
	var items []eventbus.DLQItem
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var it eventbus.DLQItem
		if json.Unmarshal([]byte(l), &it) == nil {
			items = append(items, it)
		}
	}
	got := []string{}
	for _, it := range items {
		got = append(got, it.EventID)
	}
	slices.Sort(got)
	want := []string{ids["a1"], ids["a2"]}
	slices.Sort(want)
	if code != 0 || !slices.Equal(got, want) || items[0].Handler != "billing" {
		t.Errorf("dlq list --tenant t1 --type crm.* --json: exit %d\n%s", code, out)
	}
	// show: the event's dead letter, by event id and by entry id.
	code, out, _ = cli("", "dlq", "show", ids["a3"])
	if code != 0 || !strings.Contains(out, "card declined") || !strings.Contains(out, "HANDLER    billing") {
		t.Errorf("dlq show: exit %d\n%s", code, out)
	}
	code, out, _ = cli("", "dlq", "show", "--entry", items[0].ID, "--json")
	var e eventbus.DLQEntry
	if code != 0 || json.Unmarshal([]byte(out), &e) != nil || e.EventID != items[0].EventID || e.Event == nil {
		t.Errorf("dlq show --entry: exit %d\n%s", code, out)
	}
	if code, _, errOut := cli("", "dlq", "show", "--tenant", "t2", ids["a3"]); code != 1 || !strings.Contains(errOut, "no dead letter") {
		t.Errorf("dlq show of another tenant's: exit %d %s", code, errOut)
	}
	// retry one; purge asks and does nothing without "y"; then purges.
	if code, out, errOut := cli("", "dlq", "retry", "--actor", "tester", ids["a1"]); code != 0 || out != "redriven: 1\n" {
		t.Errorf("dlq retry: exit %d %q %q", code, out, errOut)
	}
	code, _, errOut = cli("n\n", "dlq", "purge", "--tenant", "t1")
	if code != 1 || !strings.Contains(errOut, "Delete 2 dead letters? [y/N]") || c.XLen(ctx, dlq).Val() != 3 {
		t.Errorf("dlq purge answered n: exit %d %q, DLQ length %d", code, errOut, c.XLen(ctx, dlq).Val())
	}
	code, out, _ = cli("y\n", "dlq", "purge", "--tenant", "t1", "--json")
	var res eventbus.BulkResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Matched != 2 || res.Deleted != 2 || c.XLen(ctx, dlq).Val() != 1 {
		t.Errorf("dlq purge y: exit %d %s", code, out)
	}
	if code, out, _ := cli("", "dlq", "delete", ids["b1"]); code != 0 || out != "deleted: 1\n" {
		t.Errorf("dlq delete: exit %d %q", code, out)
	}
	if code, _, errOut := cli("", "dlq", "delete", ids["b1"]); code != 1 || !strings.Contains(errOut, "no dead letter") {
		t.Errorf("dlq delete again: exit %d %q", code, errOut)
	}
	// stats: the table and JSON.
	code, out, _ = cli("", "stats")
	if code != 0 || !strings.Contains(out, "SCOPE") || !strings.Contains(out, "DLQ") {
		t.Errorf("stats: exit %d\n%s", code, out)
	}
	code, out, _ = cli("", "stats", "--tenant", "t1", "--json")
	var st eventbus.Stats
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Scope != "t1" {
		t.Errorf("stats --tenant t1 --json: exit %d\n%s", code, out)
	}
}

// compareStreamIDs orders stream ids ("ms-seq") as Redis does.
func compareStreamIDs(a, b string) int {
	parse := func(id string) (uint64, uint64) {
		ms, seq, _ := strings.Cut(id, "-")
		m, _ := strconv.ParseUint(ms, 10, 64)
		q, _ := strconv.ParseUint(seq, 10, 64)
		return m, q
	}
	am, aq := parse(a)
	bm, bq := parse(b)
	if c := cmp.Compare(am, bm); c != 0 {
		return c
	}
	return cmp.Compare(aq, bq)
}
