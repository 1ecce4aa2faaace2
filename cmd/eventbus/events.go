package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hyvve/eventbus"
)

// eventsCmd runs "eventbus events <subcommand>"; today only list.
func eventsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] != "list" {
		return usageError{errors.New(`events: want the subcommand "list" (eventbus events list [flags])`)}
	}
	return eventsListCmd(ctx, args[1:], stdout, stderr, getenv)
}

// patternsFlag collects --type, repeated or comma-separated.
type patternsFlag []string

func (p *patternsFlag) String() string { return strings.Join(*p, ",") }
func (p *patternsFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*p = append(*p, s)
		}
	}
	return nil
}

// timeFlag is an RFC 3339 time; zero when not given.
type timeFlag struct{ t time.Time }

func (f *timeFlag) String() string {
	if f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339Nano)
}
func (f *timeFlag) Set(v string) error {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return fmt.Errorf("%q is not an RFC 3339 time (e.g. 2026-01-02T15:04:05Z)", v)
	}
	f.t = t
	return nil
}

// eventsListCmd prints one page of the main stream (Inspector.Events),
// oldest first: a table by default, JSON lines with --json; the next
// cursor goes to stderr. Exit 0 on success, 1 when Redis failed, 2 on bad
// usage.
func eventsListCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("eventbus events list", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: eventbus events list [--type P] [--tenant T] [--from T] [--to T] [--limit N] [--cursor C] [--json] [flags]\n\n"+
			"Lists one page of the events in the main stream, oldest first: stream id, time, type,\n"+
			"tenant and event id (a table), or one JSON object per line with --json. The cursor of\n"+
			"the next page goes to stderr (\"next cursor: ...\"); none is printed at the end of the\n"+
			"range. A page reads at most 1000 entries, so it may hold fewer than --limit items and\n"+
			"still have a next cursor.\n"+
			"Exit code: 0 listed, 1 Redis failed, 2 bad usage.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var types patternsFlag
	var from, to timeFlag
	fs.Var(&types, "type", "type pattern (\"*\", \"prefix.*\" or exact); repeat or comma-separate for several")
	tenant := fs.String("tenant", "", "only this tenant's events (default: every tenant)")
	fs.Var(&from, "from", "only events written at or after this RFC 3339 time")
	fs.Var(&to, "to", "only events written at or before this RFC 3339 time")
	limit := fs.Int("limit", eventbus.DefaultBrowseLimit, fmt.Sprintf("most events printed (1 to %d)", eventbus.MaxBrowseLimit))
	cursor := fs.String("cursor", "", "continue after the page that printed this cursor")
	asJSON := fs.Bool("json", false, "print one JSON object per line instead of a table")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long (positive)")
	insp, closeFn, err := openInspector(fs, args, getenv, timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("events list: unexpected argument %q", fs.Arg(0))}
	}
	scope := eventbus.AllTenants()
	if isSet(fs, "tenant") {
		scope = eventbus.TenantScope(*tenant)
		if err := scope.Validate(); err != nil {
			return usageError{fmt.Errorf("--tenant: %w", err)}
		}
	}
	if *limit < 1 {
		return usageError{fmt.Errorf("--limit %d: must be between 1 and %d", *limit, eventbus.MaxBrowseLimit)}
	}
	f := eventbus.EventFilter{From: from.t, To: to.t, Types: types, Cursor: *cursor, Limit: *limit}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	page, err := insp.Events(ctx, scope, f)
	var fe *eventbus.FilterError
	switch {
	case errors.As(err, &fe):
		return usageError{fmt.Errorf("--%s: %s", fe.Field, fe.Reason)}
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("events list: Redis did not answer within %v: %w", *timeout, err)
	case err != nil:
		return fmt.Errorf("events list: %w", err)
	}
	return writePage(stdout, stderr, *asJSON, page.Items, page.NextCursor, writeEventTable)
}

// writePage prints one page of a listing: JSON lines with asJSON, else
// table's table; the next page's cursor goes to stderr.
func writePage[T any](stdout, stderr io.Writer, asJSON bool, items []T, next string, table func(io.Writer, []T) error) error {
	if asJSON {
		enc := json.NewEncoder(stdout)
		for _, it := range items {
			if err := enc.Encode(it); err != nil {
				return err
			}
		}
	} else if err := table(stdout, items); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(stderr, "next cursor: %s\n", next)
	}
	return nil
}

// writeEventTable prints items as a table; an entry that is not a valid
// event shows its decode error in the last column.
func writeEventTable(w io.Writer, items []eventbus.BrowsedEvent) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM ID\tTIME\tTYPE\tTENANT\tEVENT ID")
	for _, it := range items {
		typ, tenant, id := "-", "-", "-"
		if it.Event != nil {
			typ, tenant, id = orDash(it.Event.Type), orDash(it.Event.TenantID), orDash(it.Event.ID)
		}
		if it.DecodeError != "" {
			id += " (invalid: " + it.DecodeError + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Cursor(), it.Time.UTC().Format("2006-01-02T15:04:05.000Z"), typ, tenant, id)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
