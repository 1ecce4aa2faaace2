// Command eventbus runs the event bus server and its tools.
//
//	eventbus serve     run the HTTP server (health, API) against Redis
//	eventbus dev       like serve; uses an embedded in-memory Redis when none answers
//	eventbus publish   publish an event (or one per stdin line, as one atomic batch)
//	eventbus status    print an event's status (JSON)
//	eventbus health    print the health report (JSON)
//	eventbus events    browse events ("events list")
//	eventbus tail      print new events as they are written
//	eventbus dlq       dead letters: list, show, retry, delete, purge
//	eventbus stats     print the stats report
//	eventbus replay    replay jobs: start, status, list, cancel
//	eventbus version   print the version
//
// Settings come from flags and the environment, flags winning; run
// "eventbus serve -h" for the list.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `eventbus: an event bus on Redis Streams

Usage:
  eventbus serve [flags]    run the HTTP server (health, readiness, API)
  eventbus dev [flags]      try it out: uses the configured Redis when one answers,
                            otherwise an embedded in-memory server (data is lost on exit)
  eventbus publish --type T --tenant ID --user ID --data '{...}'
                            publish one event; --data - reads one JSON object per
                            line from stdin and publishes them as one atomic batch (at most 1000)
  eventbus status [--tenant ID] <event-id>
                            print the event's status as JSON; without --tenant only ids
                            the bus generated are found (exit 1 when not found)
  eventbus health           print the health report as JSON (exit 1 when unhealthy)
  eventbus events list [--type P] [--tenant T] [--from T] [--to T] [--limit N] [--cursor C] [--json]
                            list one page of events, oldest first (a table, or JSON lines);
                            the next page's cursor goes to stderr
  eventbus tail [--type P]... [--tenant T] [--json]
                            print new events as they are written (time, stream id, type,
                            tenant, event id; or JSON lines) until Ctrl-C
  eventbus dlq list [--type P] [--handler H] [--tenant T] [--from T] [--to T] [--q TEXT]
                    [--limit N] [--cursor C] [--json]
                            list one page of dead letters, newest first (a table, or JSON lines)
  eventbus dlq show [--tenant T] [--json] <event-id> | --entry <dlq-entry-id>
                            print an event's dead letters (errors, stacks, the event)
  eventbus dlq retry [--tenant T] <event-id>
  eventbus dlq retry --ids ID,... | --event-ids ID,... | filter flags | --all [--yes]
                            send dead letters back to their failed handler; many: a dry run
                            prints the count, then it asks "Redrive N dead letters? [y/N]"
  eventbus dlq delete [--tenant T] <event-id>
                            remove an event's dead letters
  eventbus dlq purge --ids ID,... | --event-ids ID,... | filter flags | --all [--yes]
                            remove dead letters, after a dry run and a question
  eventbus stats [--tenant T] [--json]
                            print the stats report (streams, DLQ, group, throughput, alarms)
  eventbus replay start --from T --to T [--type P]... [--tenant T] [--handler H]... [--rate N]
                        [--dry-run] [--wait] [--json] [--actor A]
                            start a replay job: copy a time window of events to the replay
                            stream for the named handlers; --wait draws a progress bar until
                            it ends (jobs run inside "eventbus serve" or "eventbus dev")
  eventbus replay status [--json] <job-id>
  eventbus replay list [--tenant T] [--cursor C] [--limit N] [--json]
  eventbus replay cancel <job-id>
                            show, list (newest first) and cancel replay jobs
  eventbus version          print the version

The dlq and replay commands act as a platform operator (every tenant, or --tenant's; role
owner) and write their changes to the audit log as --actor (default cli:<OS user>). Exit
codes: 0 ok, 1 failure or not found, 2 bad usage.

Run "eventbus <command> -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

// run executes one command and returns the process exit code: 0 success,
// 1 failure, 2 bad usage or configuration.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr, getenv, false)
	case "dev":
		err = serve(ctx, args[1:], stdout, stderr, getenv, true)
	case "publish":
		err = publishCmd(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "status":
		err = statusCmd(ctx, args[1:], stdout, stderr, getenv)
	case "health":
		err = healthCmd(ctx, args[1:], stdout, stderr, getenv)
	case "events":
		err = eventsCmd(ctx, args[1:], stdout, stderr, getenv)
	case "tail":
		err = tailCmd(ctx, args[1:], stdout, stderr, getenv)
	case "dlq":
		err = dlqCmd(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "stats":
		err = statsCmd(ctx, args[1:], stdout, stderr, getenv)
	case "replay":
		err = replayCmd(ctx, args[1:], stdout, stderr, getenv)
	case "version", "--version":
		fmt.Fprintln(stdout, "eventbus", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "eventbus: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "eventbus:", strings.TrimPrefix(err.Error(), "eventbus: "))
		return 2
	default:
		fmt.Fprintln(stderr, "eventbus:", strings.TrimPrefix(err.Error(), "eventbus: "))
		return 1
	}
}

// usageError marks bad flags or settings (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }
