package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hyvve/eventbus"
)

// The dead-letter commands act through the library's Inspector, as the
// HTTP API does, as a platform operator: every tenant (or the one --tenant
// names), role owner, the actor of the audit log given by --actor.

const dlqUsage = `Usage: eventbus dlq <list|show|retry|delete|purge> [flags] [args]

  list    [--type P] [--handler H] [--tenant T] [--from T] [--to T] [--q TEXT] [--limit N] [--cursor C] [--json]
  show    [--tenant T] [--json] <event-id> | --entry <dlq-entry-id>
  retry   [--tenant T] <event-id> | --ids ID,ID... | --event-ids ID,ID... | filter flags | --all  [--yes]
  delete  [--tenant T] <event-id>
  purge   --ids ID,ID... | --event-ids ID,ID... | filter flags | --all  [--yes]

Flags go before the arguments. Bulk retry and purge first print how many dead letters
match (a dry run), then ask before acting; --yes skips the question.
Exit code: 0 done, 1 failed, not found or not confirmed, 2 bad usage.
Run "eventbus dlq <command> -h" for the flags of a command.
`

// dlqCmd runs "eventbus dlq <subcommand>".
func dlqCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, dlqUsage)
		return usageError{errors.New("dlq: want a subcommand: list, show, retry, delete or purge")}
	}
	switch args[0] {
	case "list":
		return dlqListCmd(ctx, args[1:], stdout, stderr, getenv)
	case "show":
		return dlqShowCmd(ctx, args[1:], stdout, stderr, getenv)
	case "retry":
		return dlqRetryCmd(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "delete":
		return dlqDeleteCmd(ctx, args[1:], stdout, stderr, getenv)
	case "purge":
		return dlqPurgeCmd(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, dlqUsage)
		return nil
	}
	return usageError{fmt.Errorf("dlq: unknown subcommand %q: want list, show, retry, delete or purge", args[0])}
}

// dlqCommon are the flags every dlq command has.
type dlqCommon struct {
	fs      *flag.FlagSet
	tenant  *string
	asJSON  *bool
	timeout *time.Duration
}

func newDLQFlags(name, usage string, stderr io.Writer) dlqCommon {
	fs := flag.NewFlagSet("eventbus dlq "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	return dlqCommon{
		fs:      fs,
		tenant:  fs.String("tenant", "", "only this tenant's dead letters (default: every tenant)"),
		asJSON:  fs.Bool("json", false, "print JSON instead of a table"),
		timeout: fs.Duration("timeout", 30*time.Second, "give up after this long (positive)"),
	}
}

// scope is the command's tenant scope; an empty --tenant is a usage error.
func (d dlqCommon) scope() (eventbus.Scope, error) {
	if !isSet(d.fs, "tenant") {
		return eventbus.AllTenants(), nil
	}
	s := eventbus.TenantScope(*d.tenant)
	if err := s.Validate(); err != nil {
		return s, usageError{fmt.Errorf("--tenant: %w", err)}
	}
	return s, nil
}

// dlqFilterFlags are the filter flags of list, retry and purge.
type dlqFilterFlags struct {
	types          patternsFlag
	handler, query *string
	from, to       timeFlag
}

func addFilterFlags(fs *flag.FlagSet) *dlqFilterFlags {
	f := &dlqFilterFlags{}
	fs.Var(&f.types, "type", "type pattern (\"*\", \"prefix.*\" or exact); repeat or comma-separate for several")
	f.handler = fs.String("handler", "", "only dead letters of this handler")
	fs.Var(&f.from, "from", "only dead letters moved at or after this RFC 3339 time")
	fs.Var(&f.to, "to", "only dead letters moved at or before this RFC 3339 time")
	f.query = fs.String("q", "", "only dead letters whose reason or errors contain this text (any case)")
	return f
}

func (f *dlqFilterFlags) filter() eventbus.DLQFilter {
	return eventbus.DLQFilter{Types: f.types, Handler: *f.handler, From: f.from.t, To: f.to.t, Query: *f.query}
}

// dlqError turns a library error into the command's: a bad filter is a
// usage error naming the flag; a timeout says so.
func dlqError(what string, err error, timeout time.Duration) error {
	var fe *eventbus.FilterError
	switch {
	case errors.As(err, &fe):
		return usageError{fmt.Errorf("--%s: %s", fe.Field, fe.Reason)}
	case errors.Is(err, eventbus.ErrInvalidScope):
		return usageError{fmt.Errorf("--tenant: %w", err)}
	case errors.Is(err, eventbus.ErrRedriveLimit):
		return fmt.Errorf("%s: redriven the most times allowed (EVENTBUS_MAX_REDRIVES) already; fix the handler, then delete it or publish the event again: %w", what, err)
	case errors.Is(err, eventbus.ErrNotRedrivable):
		return fmt.Errorf("%s: not a valid event, it cannot go back to a handler (delete it): %w", what, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: Redis did not answer within %v (a write may or may not have been applied; list the dead letters to see): %w", what, timeout, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// dlqListCmd prints one page of dead letters, newest first.
func dlqListCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	d := newDLQFlags("list", "Usage: eventbus dlq list [--type P] [--handler H] [--tenant T] [--from T] [--to T] [--q TEXT] [--limit N] [--cursor C] [--json] [flags]\n\n"+
		"Lists one page of dead letters, newest first: DLQ entry id, moved at, type, tenant,\n"+
		"handler, attempts, redrives, event id and last error (a table), or one JSON object per\n"+
		"line with --json. The next page's cursor goes to stderr (\"next cursor: ...\"). A page\n"+
		"reads at most 1000 entries, so it may hold fewer than --limit items and still have a cursor.\n"+
		"Exit code: 0 listed, 1 Redis failed, 2 bad usage.\n", stderr)
	f := addFilterFlags(d.fs)
	limit := d.fs.Int("limit", eventbus.DefaultBrowseLimit, fmt.Sprintf("most dead letters printed (1 to %d)", eventbus.MaxBrowseLimit))
	cursor := d.fs.String("cursor", "", "continue after the page that printed this cursor")
	insp, closeFn, err := openInspector(d.fs, args, getenv, d.timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	if d.fs.NArg() > 0 {
		return usageError{fmt.Errorf("dlq list: unexpected argument %q", d.fs.Arg(0))}
	}
	scope, err := d.scope()
	if err != nil {
		return err
	}
	if *limit < 1 {
		return usageError{fmt.Errorf("--limit %d: must be between 1 and %d", *limit, eventbus.MaxBrowseLimit)}
	}
	ctx, cancel := context.WithTimeout(ctx, *d.timeout)
	defer cancel()
	page, err := insp.DeadLetters(ctx, scope, eventbus.DLQListOptions{Filter: f.filter(), Cursor: *cursor, Limit: *limit})
	if err != nil {
		return dlqError("dlq list", err, *d.timeout)
	}
	return writePage(stdout, stderr, *d.asJSON, page.Items, page.NextCursor, writeDLQTable)
}

// writeDLQTable prints dead letters as a table.
func writeDLQTable(w io.Writer, items []eventbus.DLQItem) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DLQ ID\tMOVED AT\tTYPE\tTENANT\tHANDLER\tATTEMPTS\tREDRIVES\tEVENT ID\tLAST ERROR")
	for _, it := range items {
		handler := orDash(it.Handler)
		if len(it.Handlers) > 1 {
			handler = strings.Join(it.Handlers, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", it.ID, it.MovedAt.UTC().Format("2006-01-02T15:04:05.000Z"),
			orDash(it.Type), orDash(it.TenantID), handler, it.Attempts, it.Redrives, orDash(it.EventID), oneLine(it.LastError, 60))
	}
	return tw.Flush()
}

// oneLine shortens s to one line of at most n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return orDash(s)
}

// dlqShowCmd prints every dead letter of an event, or one DLQ entry.
func dlqShowCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	d := newDLQFlags("show", "Usage: eventbus dlq show [--tenant T] [--json] [flags] <event-id>\n"+
		"       eventbus dlq show --entry <dlq-entry-id> [--json] [flags]\n\n"+
		"Prints every dead letter of the event (one per failed handler) with its full error\n"+
		"history and the event, or the one DLQ entry --entry names. Without --tenant the dead\n"+
		"letters of every tenant's event with that id are shown (caller-supplied ids are unique\n"+
		"per tenant only); --tenant keeps one tenant's.\n"+
		"Exit code: 0 found, 1 not found or Redis failed, 2 bad usage.\n", stderr)
	entry := d.fs.String("entry", "", "show this DLQ entry (its stream id) instead of an event's dead letters")
	insp, closeFn, err := openInspector(d.fs, args, getenv, d.timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	scope, err := d.scope()
	if err != nil {
		return err
	}
	switch {
	case isSet(d.fs, "entry") && d.fs.NArg() > 0:
		return usageError{errors.New("dlq show: give an event id or --entry, not both")}
	case isSet(d.fs, "entry") && strings.TrimSpace(*entry) == "":
		return usageError{errors.New("--entry: empty")}
	case !isSet(d.fs, "entry") && d.fs.NArg() != 1:
		return usageError{fmt.Errorf("dlq show: want one event id (flags go before it); got %d arguments", d.fs.NArg())}
	}
	ctx, cancel := context.WithTimeout(ctx, *d.timeout)
	defer cancel()
	var entries []eventbus.DLQEntry
	var out any
	if isSet(d.fs, "entry") {
		e, err := insp.DeadLetter(ctx, scope, *entry)
		if errors.Is(err, eventbus.ErrNotFound) {
			return fmt.Errorf("dead letter %q not found for %s", *entry, scope)
		} else if err != nil {
			return dlqError("dlq show", err, *d.timeout)
		}
		entries, out = []eventbus.DLQEntry{e}, e
	} else {
		id := d.fs.Arg(0)
		dl, err := insp.DeadLettersOf(ctx, scope, id)
		if errors.Is(err, eventbus.ErrNotFound) {
			return fmt.Errorf("no dead letter of event %q for %s", id, scope)
		} else if err != nil {
			return dlqError("dlq show", err, *d.timeout)
		}
		entries, out = dl.Entries, dl
	}
	if *d.asJSON {
		return writeIndented(stdout, out)
	}
	return writeDLQEntries(stdout, entries)
}

// writeDLQEntries prints dead letters in full, one block each.
func writeDLQEntries(w io.Writer, entries []eventbus.DLQEntry) error {
	for i, e := range entries {
		if i > 0 {
			fmt.Fprintln(w)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		handler := orDash(e.Handler)
		if len(e.Handlers) > 1 {
			handler = strings.Join(e.Handlers, ",")
		}
		for _, kv := range [][2]string{
			{"DLQ ID", e.ID}, {"EVENT ID", orDash(e.EventID)}, {"TYPE", orDash(e.Type)}, {"TENANT", orDash(e.TenantID)},
			{"HANDLER", handler}, {"GROUP", orDash(e.Group)}, {"STREAM", orDash(e.Stream)}, {"STREAM ID", orDash(e.OriginalStreamID)},
			{"ATTEMPTS", fmt.Sprint(e.Attempts)}, {"REDRIVES", fmt.Sprint(e.Redrives)},
			{"MOVED AT", e.MovedAt.UTC().Format(time.RFC3339Nano)}, {"REASON", orDash(e.Reason)},
		} {
			fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w, "ERRORS")
		for _, ae := range e.Errors {
			fmt.Fprintf(w, "  #%d  %s  %s\n", ae.Attempt, ae.At.UTC().Format(time.RFC3339Nano), ae.Message)
			for _, line := range strings.Split(strings.TrimRight(ae.Stack, "\n"), "\n") {
				if line != "" {
					fmt.Fprintf(w, "        %s\n", line)
				}
			}
		}
		switch {
		case e.Event != nil:
			fmt.Fprintf(w, "EVENT\n  %s\n", e.Event)
		case e.Raw != "":
			fmt.Fprintf(w, "RAW (not valid JSON)\n  %s\n", e.Raw)
		}
	}
	return nil
}

// idsFlag collects a comma-separated list of ids.
type idsFlag []string

func (p *idsFlag) String() string { return strings.Join(*p, ",") }
func (p *idsFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*p = append(*p, s)
		}
	}
	return nil
}

// operator is the actor of the CLI's writes: --actor (default
// "cli:<OS user>"), every tenant, role owner.
func operator(name string, getenv func(string) string) eventbus.Actor {
	if name == "" {
		u := getenv("USER")
		if cu, err := user.Current(); u == "" && err == nil {
			u = cu.Username
		}
		if u == "" {
			u = "unknown"
		}
		name = "cli:" + u
	}
	return eventbus.Actor{Subject: name, TenantID: "*", Role: "owner"}
}

// bulkFlags are the selection flags of retry and purge.
type bulkFlags struct {
	ids, eventIDs idsFlag
	filter        *dlqFilterFlags
	all, yes      *bool
	actor         *string
}

func addBulkFlags(fs *flag.FlagSet) *bulkFlags {
	b := &bulkFlags{filter: addFilterFlags(fs)}
	fs.Var(&b.ids, "ids", "DLQ entry ids, comma-separated (at most 1000)")
	fs.Var(&b.eventIDs, "event-ids", "event ids, comma-separated (every dead letter of each; at most 1000)")
	b.all = fs.Bool("all", false, "select every dead letter in scope (no filter)")
	b.yes = fs.Bool("yes", false, "act without asking after the dry run")
	b.actor = fs.String("actor", "", "who acts, for the audit log (default cli:<OS user>)")
	return b
}

// selection is the dead letters the bulk flags select: exactly one of
// --ids, --event-ids, filter flags (or --all).
func (b *bulkFlags) selection(fs *flag.FlagSet) (eventbus.DLQSelection, error) {
	var sel eventbus.DLQSelection
	n := 0
	if len(b.ids) > 0 {
		n++
		sel.IDs = b.ids
	}
	if len(b.eventIDs) > 0 {
		n++
		sel.EventIDs = b.eventIDs
	}
	filtered := false
	for _, name := range []string{"type", "handler", "from", "to", "q"} {
		filtered = filtered || isSet(fs, name)
	}
	if filtered || *b.all {
		n++
		f := b.filter.filter()
		sel.Filter = &f
	}
	switch {
	case isSet(fs, "ids") && len(b.ids) == 0:
		return sel, usageError{errors.New("--ids: empty list")}
	case isSet(fs, "event-ids") && len(b.eventIDs) == 0:
		return sel, usageError{errors.New("--event-ids: empty list")}
	case filtered && *b.all:
		return sel, usageError{errors.New("--all: selects every dead letter; give it without filter flags")}
	case n == 0 && isSet(fs, "tenant"):
		// --tenant alone selects all of one tenant's dead letters.
		sel.Filter = &eventbus.DLQFilter{}
	case n == 0:
		return sel, usageError{errors.New("want --ids, --event-ids, filter flags (--type, --handler, --from, --to, --q, --tenant) or --all")}
	case n > 1:
		return sel, usageError{errors.New("give one of --ids, --event-ids and filter flags, not several")}
	case len(b.ids) > maxCLIBulkIDs || len(b.eventIDs) > maxCLIBulkIDs:
		return sel, usageError{fmt.Errorf("at most %d ids per command", maxCLIBulkIDs)}
	}
	return sel, nil
}

// maxCLIBulkIDs is the most ids one bulk command names (as over HTTP).
const maxCLIBulkIDs = 1000

// bulkFunc runs a bulk action, for real when confirm is set, else as a
// dry run.
type bulkFunc func(ctx context.Context, confirm bool) (eventbus.BulkResult, error)

// runBulk runs act as a dry run, prints the count, asks "<Verb> N dead
// letters? [y/N]" on stderr (unless yes) and reads the answer from stdin,
// then acts and prints the result (JSON with asJSON). Not confirming is an
// error (exit 1): nothing was changed.
func runBulk(ctx context.Context, act bulkFunc, verb, what string, yes, asJSON bool, stdin io.Reader, stdout, stderr io.Writer, timeout time.Duration) error {
	// Each call gets the timeout; the question in between does not count.
	call := func(confirm bool) (eventbus.BulkResult, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return act(ctx, confirm)
	}
	dry, err := call(false)
	if err != nil {
		return dlqError("dlq "+what+" (dry run)", err, timeout)
	}
	if dry.Matched == 0 {
		if asJSON {
			return writeIndented(stdout, dry)
		}
		fmt.Fprintln(stdout, "no dead letter matches; nothing to do")
		return nil
	}
	fmt.Fprintf(stderr, "%d dead letters match.\n", dry.Matched)
	if !yes {
		fmt.Fprintf(stderr, "%s %d dead letters? [y/N] ", verb, dry.Matched)
		answer := ""
		if stdin != nil {
			line, _ := bufio.NewReader(stdin).ReadString('\n')
			answer = strings.ToLower(strings.TrimSpace(line))
		}
		if answer != "y" && answer != "yes" {
			fmt.Fprintln(stderr)
			return errors.New("not confirmed; nothing was changed")
		}
	}
	res, err := call(true)
	if err != nil {
		return dlqError("dlq "+what, err, timeout)
	}
	if asJSON {
		return writeIndented(stdout, res)
	}
	return writeBulkResult(stdout, res)
}

// writeBulkResult prints a bulk result as a table.
func writeBulkResult(w io.Writer, r eventbus.BulkResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MATCHED\tREDRIVEN\tDELETED\tOVER LIMIT\tNOT REDRIVABLE\tGONE")
	fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\n", r.Matched, r.Redriven, r.Deleted, r.OverLimit, r.NotRedrivable, r.Gone)
	return tw.Flush()
}

// dlqRetryCmd redrives one event's dead letters, or many after a dry run.
func dlqRetryCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	d := newDLQFlags("retry", "Usage: eventbus dlq retry [--tenant T] [flags] <event-id>\n"+
		"       eventbus dlq retry --ids ID,ID... | --event-ids ID,ID... | [--type P] [--handler H] [--tenant T] [--from T] [--to T] [--q TEXT] | --all  [--yes] [flags]\n\n"+
		"Sends dead letters back to their failed handler only, with the same event id and a fresh\n"+
		"retry budget; a consumer of the group runs them. With an event id: every dead letter of\n"+
		"that event, at once. Otherwise a dry run first prints how many match, then it asks before\n"+
		"acting (--yes: no question). Over the redrive limit (EVENTBUS_MAX_REDRIVES) a dead letter\n"+
		"is refused. Every redrive is written to the audit log with --actor.\n"+
		"Exit code: 0 done, 1 failed, not found, over the limit or not confirmed, 2 bad usage.\n", stderr)
	b := addBulkFlags(d.fs)
	insp, closeFn, err := openInspector(d.fs, args, getenv, d.timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	scope, err := d.scope()
	if err != nil {
		return err
	}
	actor := operator(*b.actor, getenv)
	if d.fs.NArg() > 0 {
		selecting := false
		for _, n := range []string{"ids", "event-ids", "all", "type", "handler", "from", "to", "q"} {
			selecting = selecting || isSet(d.fs, n)
		}
		if d.fs.NArg() > 1 || selecting {
			return usageError{errors.New("dlq retry: give one event id (and at most --tenant), or selection flags without an event id")}
		}
		id := d.fs.Arg(0)
		ctx, cancel := context.WithTimeout(ctx, *d.timeout)
		defer cancel()
		n, err := insp.Redrive(ctx, scope, actor, id)
		if errors.Is(err, eventbus.ErrNotFound) {
			return fmt.Errorf("no dead letter of event %q for %s", id, scope)
		} else if err != nil {
			return dlqError("dlq retry "+id, err, *d.timeout)
		}
		if *d.asJSON {
			return writeIndented(stdout, map[string]int64{"redriven": n})
		}
		fmt.Fprintf(stdout, "redriven: %d\n", n)
		return nil
	}
	sel, err := b.selection(d.fs)
	if err != nil {
		return err
	}
	act := func(ctx context.Context, confirm bool) (eventbus.BulkResult, error) {
		return insp.RedriveMany(ctx, scope, actor, sel, confirm)
	}
	return runBulk(ctx, act, "Redrive", "retry", *b.yes, *d.asJSON, stdin, stdout, stderr, *d.timeout)
}

// dlqDeleteCmd removes every dead letter of one event.
func dlqDeleteCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	d := newDLQFlags("delete", "Usage: eventbus dlq delete [--tenant T] [--actor A] [flags] <event-id>\n\n"+
		"Removes every dead letter of the event (written to the audit log with --actor). Without\n"+
		"--tenant the dead letters of every tenant's event with that id go; --tenant keeps to one.\n"+
		"Exit code: 0 deleted, 1 not found or Redis failed, 2 bad usage.\n", stderr)
	actorName := d.fs.String("actor", "", "who acts, for the audit log (default cli:<OS user>)")
	insp, closeFn, err := openInspector(d.fs, args, getenv, d.timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	scope, err := d.scope()
	if err != nil {
		return err
	}
	if d.fs.NArg() != 1 {
		return usageError{fmt.Errorf("dlq delete: want one event id (flags go before it); got %d arguments", d.fs.NArg())}
	}
	id := d.fs.Arg(0)
	ctx, cancel := context.WithTimeout(ctx, *d.timeout)
	defer cancel()
	n, err := insp.DeleteDeadLetters(ctx, scope, operator(*actorName, getenv), id)
	if errors.Is(err, eventbus.ErrNotFound) {
		return fmt.Errorf("no dead letter of event %q for %s", id, scope)
	} else if err != nil {
		return dlqError("dlq delete "+id, err, *d.timeout)
	}
	if *d.asJSON {
		return writeIndented(stdout, map[string]int64{"deleted": n})
	}
	fmt.Fprintf(stdout, "deleted: %d\n", n)
	return nil
}

// dlqPurgeCmd removes the dead letters a selection names, after a dry run
// and a question.
func dlqPurgeCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	d := newDLQFlags("purge", "Usage: eventbus dlq purge --ids ID,ID... | --event-ids ID,ID... | [--type P] [--handler H] [--tenant T] [--from T] [--to T] [--q TEXT] | --all  [--yes] [flags]\n\n"+
		"Removes the dead letters selected. A dry run first prints how many match, then it asks\n"+
		"before acting (--yes: no question). Written to the audit log with --actor.\n"+
		"Exit code: 0 done, 1 failed or not confirmed, 2 bad usage.\n", stderr)
	b := addBulkFlags(d.fs)
	insp, closeFn, err := openInspector(d.fs, args, getenv, d.timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	if d.fs.NArg() > 0 {
		return usageError{fmt.Errorf("dlq purge: unexpected argument %q (to remove one event's dead letters: eventbus dlq delete <event-id>)", d.fs.Arg(0))}
	}
	scope, err := d.scope()
	if err != nil {
		return err
	}
	sel, err := b.selection(d.fs)
	if err != nil {
		return err
	}
	actor := operator(*b.actor, getenv)
	act := func(ctx context.Context, confirm bool) (eventbus.BulkResult, error) {
		return insp.Purge(ctx, scope, actor, sel, confirm)
	}
	return runBulk(ctx, act, "Delete", "purge", *b.yes, *d.asJSON, stdin, stdout, stderr, *d.timeout)
}
