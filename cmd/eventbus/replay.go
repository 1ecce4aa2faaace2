package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hyvve/eventbus"
)

// The replay commands act through the library's Inspector, as the HTTP
// API does, as a platform operator (every tenant, or the one --tenant
// names; role owner; the audit log's actor given by --actor). They only
// record and read jobs: a replay runner inside "eventbus serve" or
// "eventbus dev" (any instance on the same Redis and prefix) executes them.

const replayUsage = `Usage: eventbus replay <start|status|list|cancel> [flags] [args]

  start   --from T --to T [--type P]... [--tenant T] [--handler H]... [--rate N] [--dry-run]
          [--wait] [--pending-timeout D] [--json] [--actor A]
  status  [--tenant T] [--json] <job-id>
  list    [--tenant T] [--cursor C] [--limit N] [--json]
  cancel  [--tenant T] [--actor A] [--json] <job-id>

A replay copies the events of the main stream written between --from and --to (matching
--type and --tenant) to the replay stream, where only the named handlers of the group run
them. Jobs run inside "eventbus serve" or "eventbus dev": start records a pending job that a
running server picks up; "start --wait" shows a progress bar until the job ends.
Flags go before the arguments.
Exit code: 0 done (with --wait: the job completed), 1 failed, not found, cancelled or never
picked up, 2 bad usage or a request the bus refuses (the reason names the flag).
Run "eventbus replay <command> -h" for the flags of a command.
`

// replayPollInterval is how often "start --wait" reads the job.
const replayPollInterval = 250 * time.Millisecond

// replayCmd runs "eventbus replay <subcommand>".
func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, replayUsage)
		return usageError{errors.New("replay: want a subcommand: start, status, list or cancel")}
	}
	switch args[0] {
	case "start":
		return replayStartCmd(ctx, args[1:], stdout, stderr, getenv)
	case "status":
		return replayStatusCmd(ctx, args[1:], stdout, stderr, getenv)
	case "list":
		return replayListCmd(ctx, args[1:], stdout, stderr, getenv)
	case "cancel":
		return replayCancelCmd(ctx, args[1:], stdout, stderr, getenv)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, replayUsage)
		return nil
	}
	return usageError{fmt.Errorf("replay: unknown subcommand %q: want start, status, list or cancel", args[0])}
}

// newReplayFlags returns the flags every replay command has: --tenant,
// --json, --timeout.
func newReplayFlags(name, usage string, stderr io.Writer) dlqCommon {
	fs := flag.NewFlagSet("eventbus replay "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage+"\nFlags:\n")
		fs.PrintDefaults()
	}
	return dlqCommon{
		fs:      fs,
		tenant:  fs.String("tenant", "", "only this tenant (default: every tenant)"),
		asJSON:  fs.Bool("json", false, "print JSON instead of a table"),
		timeout: fs.Duration("timeout", 30*time.Second, "give up on each Redis call after this long (positive)"),
	}
}

// replayFlagNames are the flags of the request fields a *ReplayError
// names.
var replayFlagNames = map[string]string{
	"from": "from", "to": "to", "types": "type", "tenantId": "tenant", "handlers": "handler", "rate": "rate", "dryRun": "dry-run",
}

// replayError turns a library error into the command's: a refused request
// is a usage error naming the flag; a timeout says so.
func replayError(what string, err error, timeout time.Duration) error {
	var re *eventbus.ReplayError
	switch {
	case errors.As(err, &re):
		name := re.Field
		if f, ok := replayFlagNames[re.Field]; ok {
			name = f
		}
		return usageError{fmt.Errorf("%s: --%s: %s", what, name, re.Reason)}
	case errors.Is(err, eventbus.ErrInvalidScope):
		return usageError{fmt.Errorf("--tenant: %w", err)}
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: Redis did not answer within %v (a write may or may not have been applied; list the replay jobs to see): %w", what, timeout, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// replayStartCmd records a replay job and, with --wait, follows it to its
// end.
func replayStartCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	d := newReplayFlags("start", "Usage: eventbus replay start --from T --to T [--type P]... [--tenant T] [--handler H]... [--rate N] [--dry-run]\n"+
		"                            [--wait] [--pending-timeout D] [--json] [--actor A] [flags]\n\n"+
		"Starts a replay job: the events of the main stream written between --from and --to (both\n"+
		"inclusive, RFC 3339) that match --type and --tenant are copied to the replay stream, where\n"+
		"only the --handler handlers of the group run them (default: every handler the group's live\n"+
		"consumers registered). --rate caps the copies per second; --dry-run counts and copies nothing.\n"+
		"The job runs inside \"eventbus serve\" or \"eventbus dev\" (any instance on this Redis); this\n"+
		"command records it (written to the audit log with --actor) and prints it. --wait then draws a\n"+
		"progress bar on stderr until the job ends, and gives up when no server picks the job up\n"+
		"within --pending-timeout (the job stays queued).\n"+
		"Exit code: 0 started (with --wait: completed), 1 failed, cancelled or never picked up, 2 bad\n"+
		"usage or a request the bus refuses (the window, the handlers...: the reason names the flag).\n", stderr)
	var from, to timeFlag
	var types, handlers patternsFlag
	d.fs.Var(&from, "from", "first write time of the window, RFC 3339 (required)")
	d.fs.Var(&to, "to", "last write time of the window, RFC 3339 (required)")
	d.fs.Var(&types, "type", "type pattern (\"*\", \"prefix.*\" or exact); repeat or comma-separate for several (default: every type)")
	d.fs.Var(&handlers, "handler", "handler of the group that runs the copies; repeat or comma-separate for several (default: every registered handler)")
	rate := d.fs.Int("rate", 0, "most copies written per second (0: as fast as the runner goes)")
	dryRun := d.fs.Bool("dry-run", false, "scan and count the matching events; copy nothing")
	wait := d.fs.Bool("wait", false, "follow the job with a progress bar on stderr until it ends")
	pendingTimeout := d.fs.Duration("pending-timeout", 30*time.Second, "with --wait: give up when the job is still pending after this long (no server running)")
	actorName := d.fs.String("actor", "", "who acts, for the audit log and the job's requestedBy (default cli:<OS user>)")
	insp, closeFn, err := openInspector(d.fs, args, getenv, d.timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	switch {
	case d.fs.NArg() > 0:
		return usageError{fmt.Errorf("replay start: unexpected argument %q", d.fs.Arg(0))}
	case !isSet(d.fs, "from"):
		return usageError{errors.New("replay start: --from is required (an RFC 3339 time)")}
	case !isSet(d.fs, "to"):
		return usageError{errors.New("replay start: --to is required (an RFC 3339 time)")}
	case *rate < 0:
		return usageError{fmt.Errorf("--rate %d: must be 0 (no limit) or positive", *rate)}
	case *pendingTimeout <= 0:
		return usageError{fmt.Errorf("--pending-timeout %v: must be positive", *pendingTimeout)}
	}
	scope, err := d.scope()
	if err != nil {
		return err
	}
	req := eventbus.ReplayRequest{From: from.t, To: to.t, Types: types, TenantID: *d.tenant, Handlers: handlers, Rate: *rate, DryRun: *dryRun}
	callCtx, cancel := context.WithTimeout(ctx, *d.timeout)
	job, err := insp.StartReplay(callCtx, scope, operator(*actorName, getenv), req)
	cancel()
	if err != nil {
		return replayError("replay start", err, *d.timeout)
	}
	if !*wait {
		if *d.asJSON {
			return writeIndented(stdout, job)
		}
		if err := writeReplayJob(stdout, job); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "replay job %s recorded; a running \"eventbus serve\" or \"eventbus dev\" executes it (follow it: eventbus replay status %s)\n", job.ID, job.ID)
		return nil
	}
	fmt.Fprintf(stderr, "replay job %s: about %d events to copy\n", job.ID, job.EstimatedEvents)
	get := func(ctx context.Context) (eventbus.ReplayJob, error) { return insp.Replay(ctx, scope, job.ID) }
	bar := newProgressBar(stderr, isTerminal(stderr))
	job, err = waitReplay(ctx, get, job, replayPollInterval, *pendingTimeout, *d.timeout, bar)
	if err != nil {
		return err
	}
	if *d.asJSON {
		err = writeIndented(stdout, job)
	} else {
		err = writeReplayJob(stdout, job)
	}
	if err != nil {
		return err
	}
	return replayOutcome(job)
}

// errStillPending is returned by waitReplay for a job no runner picked up
// within the pending timeout.
var errStillPending = errors.New("still pending")

// waitReplay reads the job every interval (each read bounded by timeout)
// and draws its progress on bar until it ends (the job returned, nil) or
// ctx ends, a read fails, or it stays pending longer than pendingTimeout
// (an error saying what to do; the job goes on either way).
func waitReplay(ctx context.Context, get func(context.Context) (eventbus.ReplayJob, error), job eventbus.ReplayJob,
	interval, pendingTimeout, timeout time.Duration, bar *progressBar) (eventbus.ReplayJob, error) {
	start := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if replayEnded(job.Status) {
			bar.finish(job)
			return job, nil
		}
		bar.update(job)
		if job.Status == eventbus.ReplayPending && time.Since(start) > pendingTimeout {
			bar.stop()
			return job, fmt.Errorf("replay job %s: %w after %v: jobs run inside \"eventbus serve\" or \"eventbus dev\"; is one running on this Redis and prefix? "+
				"The job stays queued and runs when one starts (cancel it: eventbus replay cancel %s)", job.ID, errStillPending, pendingTimeout, job.ID)
		}
		select {
		case <-ctx.Done():
			bar.stop()
			return job, fmt.Errorf("stopped waiting; replay job %s goes on (eventbus replay status %s; eventbus replay cancel %s): %w", job.ID, job.ID, job.ID, ctx.Err())
		case <-t.C:
		}
		callCtx, cancel := context.WithTimeout(ctx, timeout)
		next, err := get(callCtx)
		cancel()
		if err != nil {
			bar.stop()
			if ctx.Err() != nil {
				return job, fmt.Errorf("stopped waiting; replay job %s goes on (eventbus replay status %s; eventbus replay cancel %s): %w", job.ID, job.ID, job.ID, ctx.Err())
			}
			return job, replayError("replay job "+job.ID+": reading its progress (the job goes on)", err, timeout)
		}
		job = next
	}
}

// replayEnded reports whether status is a final one.
func replayEnded(status string) bool {
	return status == eventbus.ReplayCompleted || status == eventbus.ReplayFailed || status == eventbus.ReplayCancelled
}

// replayOutcome is the command's error for a job that ended: nil when it
// completed.
func replayOutcome(job eventbus.ReplayJob) error {
	switch job.Status {
	case eventbus.ReplayCompleted:
		return nil
	case eventbus.ReplayFailed:
		return fmt.Errorf("replay job %s failed: %s", job.ID, orDash(job.Error))
	case eventbus.ReplayCancelled:
		return fmt.Errorf("replay job %s was cancelled", job.ID)
	}
	return fmt.Errorf("replay job %s is %s", job.ID, job.Status)
}

// progressBar draws a job's progress: redrawn in place with \r on a
// terminal, otherwise one line at most every second (and the last one).
type progressBar struct {
	w     io.Writer
	tty   bool
	every time.Duration
	now   func() time.Time
	last  time.Time // when the last line was printed (not a terminal)
	line  string    // the last line drawn
	drawn int       // runes of the line on the terminal
}

func newProgressBar(w io.Writer, tty bool) *progressBar {
	return &progressBar{w: w, tty: tty, every: time.Second, now: time.Now}
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// update draws the job's progress if it changed (and, off a terminal, a
// second has passed since the last line).
func (p *progressBar) update(job eventbus.ReplayJob) {
	line := progressLine(job)
	if line == p.line {
		return
	}
	if p.tty {
		p.draw(line)
		return
	}
	if now := p.now(); p.last.IsZero() || now.Sub(p.last) >= p.every {
		fmt.Fprintln(p.w, line)
		p.last, p.line = now, line
	}
}

// draw redraws the terminal line, blanking what is left of a longer one.
func (p *progressBar) draw(line string) {
	n := len([]rune(line))
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", max(p.drawn-n, 0)))
	p.line, p.drawn = line, n
}

// finish draws the job's last state and ends the line.
func (p *progressBar) finish(job eventbus.ReplayJob) {
	line := progressLine(job)
	switch {
	case p.tty:
		p.draw(line)
		fmt.Fprintln(p.w)
		p.drawn = 0
	case line != p.line:
		fmt.Fprintln(p.w, line)
		p.line = line
	}
}

// stop ends a terminal line drawn, before another message.
func (p *progressBar) stop() {
	if p.tty && p.drawn > 0 {
		fmt.Fprintln(p.w)
		p.drawn = 0
	}
}

// progressBarWidth is the number of cells of the bar.
const progressBarWidth = 20

// progressLine is one line of progress:
// "[#########...........]  45 %  scanned 12000 matched 900 written 900",
// with the errors when there are some and the status unless running.
func progressLine(job eventbus.ReplayJob) string {
	pct := min(max(job.Progress, 0), 100)
	filled := pct * progressBarWidth / 100
	var b strings.Builder
	fmt.Fprintf(&b, "[%s%s] %3d %%  scanned %d matched %d written %d", strings.Repeat("#", filled), strings.Repeat(".", progressBarWidth-filled),
		pct, job.Scanned, job.Matched, job.Written)
	if job.Errors > 0 {
		fmt.Fprintf(&b, " errors %d", job.Errors)
	}
	switch job.Status {
	case eventbus.ReplayRunning:
	case eventbus.ReplayPending:
		b.WriteString("  pending (waiting for a server to pick it up)")
	default:
		b.WriteString("  " + job.Status)
	}
	return b.String()
}

// writeReplayJob prints one job as a block of labelled lines.
func writeReplayJob(w io.Writer, j eventbus.ReplayJob) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	req := j.Request
	lines := [][2]string{
		{"JOB ID", j.ID}, {"STATUS", j.Status}, {"PROGRESS", fmt.Sprintf("%d %%", j.Progress)}, {"GROUP", orDash(j.Group)},
		{"WINDOW", formatTime(req.From) + " .. " + formatTime(req.To)},
		{"TYPES", orDefault(strings.Join(req.Types, ","), "* (every type)")},
		{"TENANT", orDefault(req.TenantID, "* (every tenant)")},
		{"HANDLERS", orDefault(strings.Join(req.Handlers, ","), "every registered handler")},
		{"RATE", rateText(req.Rate)}, {"DRY RUN", yesNo(req.DryRun)},
		{"ESTIMATED", fmt.Sprint(j.EstimatedEvents)}, {"SCANNED", fmt.Sprint(j.Scanned)}, {"MATCHED", fmt.Sprint(j.Matched)},
		{"WRITTEN", fmt.Sprint(j.Written)}, {"ERRORS", fmt.Sprint(j.Errors)}, {"CURSOR", orDash(j.Cursor)},
		{"REQUESTED BY", requestedBy(j)},
		{"CREATED AT", formatTime(j.CreatedAt)}, {"STARTED AT", formatTimePtr(j.StartedAt)}, {"FINISHED AT", formatTimePtr(j.FinishedAt)},
	}
	if j.Error != "" {
		lines = append(lines, [2]string{"ERROR", oneLine(j.Error, 200)})
	}
	for _, kv := range lines {
		fmt.Fprintf(tw, "%s\t%s\n", kv[0], kv[1])
	}
	return tw.Flush()
}

// writeReplayTable prints jobs as a table, one line each.
func writeReplayTable(w io.Writer, jobs []eventbus.ReplayJob) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB ID\tSTATUS\tPROGRESS\tTENANT\tTYPES\tHANDLERS\tFROM\tTO\tMATCHED\tWRITTEN\tREQUESTED BY\tCREATED AT")
	for _, j := range jobs {
		req := j.Request
		fmt.Fprintf(tw, "%s\t%s\t%d %%\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", j.ID, j.Status, j.Progress,
			orDefault(req.TenantID, "*"), orDefault(strings.Join(req.Types, ","), "*"), orDefault(strings.Join(req.Handlers, ","), "*"),
			formatTime(req.From), formatTime(req.To), j.Matched, j.Written, orDash(j.RequestedBy), formatTime(j.CreatedAt))
	}
	return tw.Flush()
}

func requestedBy(j eventbus.ReplayJob) string {
	if j.RequestedByTenant == "" {
		return orDash(j.RequestedBy)
	}
	return fmt.Sprintf("%s (tenant %s)", orDash(j.RequestedBy), j.RequestedByTenant)
}

func rateText(rate int) string {
	if rate <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%d events/s", rate)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return formatTime(*t)
}

// replayStatusCmd prints one job.
func replayStatusCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	d := newReplayFlags("status", "Usage: eventbus replay status [--tenant T] [--json] [flags] <job-id>\n\n"+
		"Prints the replay job: its status (pending, running, completed, failed, cancelled), progress,\n"+
		"counters (estimated, scanned, matched, written, errors), request and times.\n"+
		"Exit code: 0 found, 1 not found or Redis failed, 2 bad usage.\n", stderr)
	insp, closeFn, err := openInspector(d.fs, args, getenv, d.timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	if d.fs.NArg() != 1 {
		return usageError{fmt.Errorf("replay status: want one job id (flags go before it); got %d arguments", d.fs.NArg())}
	}
	scope, err := d.scope()
	if err != nil {
		return err
	}
	id := d.fs.Arg(0)
	ctx, cancel := context.WithTimeout(ctx, *d.timeout)
	defer cancel()
	job, err := insp.Replay(ctx, scope, id)
	if errors.Is(err, eventbus.ErrNotFound) {
		return fmt.Errorf("replay job %q not found for %s", id, scope)
	} else if err != nil {
		return replayError("replay status "+id, err, *d.timeout)
	}
	if *d.asJSON {
		return writeIndented(stdout, job)
	}
	return writeReplayJob(stdout, job)
}

// replayListCmd prints one page of jobs, newest first.
func replayListCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	d := newReplayFlags("list", "Usage: eventbus replay list [--tenant T] [--cursor C] [--limit N] [--json] [flags]\n\n"+
		"Lists one page of replay jobs, newest first (a table, or one JSON object per line with\n"+
		"--json). --tenant: the jobs of that tenant only. The next page's cursor goes to stderr\n"+
		"(\"next cursor: ...\").\n"+
		"Exit code: 0 listed, 1 Redis failed, 2 bad usage.\n", stderr)
	limit := d.fs.Int("limit", eventbus.DefaultBrowseLimit, fmt.Sprintf("most jobs printed (1 to %d)", eventbus.MaxBrowseLimit))
	cursor := d.fs.String("cursor", "", "continue after the page that printed this cursor")
	insp, closeFn, err := openInspector(d.fs, args, getenv, d.timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	if d.fs.NArg() > 0 {
		return usageError{fmt.Errorf("replay list: unexpected argument %q", d.fs.Arg(0))}
	}
	if *limit < 1 || *limit > eventbus.MaxBrowseLimit {
		return usageError{fmt.Errorf("--limit %d: must be between 1 and %d", *limit, eventbus.MaxBrowseLimit)}
	}
	scope, err := d.scope()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *d.timeout)
	defer cancel()
	page, err := insp.Replays(ctx, scope, *cursor, *limit)
	if err != nil {
		var fe *eventbus.FilterError
		if errors.As(err, &fe) {
			return usageError{fmt.Errorf("--%s: %s", fe.Field, fe.Reason)}
		}
		return replayError("replay list", err, *d.timeout)
	}
	return writePage(stdout, stderr, *d.asJSON, page.Items, page.NextCursor, writeReplayTable)
}

// replayCancelCmd cancels one job.
func replayCancelCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	d := newReplayFlags("cancel", "Usage: eventbus replay cancel [--tenant T] [--actor A] [--json] [flags] <job-id>\n\n"+
		"Cancels the replay job: a pending job at once, a running one within a second (its runner\n"+
		"stops; the copies already written stay and run). Written to the audit log with --actor.\n"+
		"Exit code: 0 cancelled, 1 not found, finished already or Redis failed, 2 bad usage.\n", stderr)
	actorName := d.fs.String("actor", "", "who acts, for the audit log (default cli:<OS user>)")
	insp, closeFn, err := openInspector(d.fs, args, getenv, d.timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	if d.fs.NArg() != 1 {
		return usageError{fmt.Errorf("replay cancel: want one job id (flags go before it); got %d arguments", d.fs.NArg())}
	}
	scope, err := d.scope()
	if err != nil {
		return err
	}
	id := d.fs.Arg(0)
	ctx, cancel := context.WithTimeout(ctx, *d.timeout)
	defer cancel()
	job, err := insp.CancelReplay(ctx, scope, operator(*actorName, getenv), id)
	switch {
	case errors.Is(err, eventbus.ErrNotFound):
		return fmt.Errorf("replay job %q not found for %s", id, scope)
	case errors.Is(err, eventbus.ErrReplayFinished):
		return fmt.Errorf("replay job %q has finished already (completed, failed or cancelled); nothing to cancel", id)
	case err != nil:
		return replayError("replay cancel "+id, err, *d.timeout)
	}
	if *d.asJSON {
		return writeIndented(stdout, job)
	}
	if job.Status == eventbus.ReplayCancelled {
		fmt.Fprintf(stdout, "cancelled: %s\n", job.ID)
	} else {
		fmt.Fprintf(stdout, "cancel requested: %s (%s; its runner stops within a second)\n", job.ID, job.Status)
	}
	return nil
}
