package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hyvve/eventbus"
)

// tailConnectTimeout bounds finding the end of the stream at start.
const tailConnectTimeout = 10 * time.Second

// tailCmd runs "eventbus tail": it prints every new event of the main
// stream (Inspector.Tail, which reads Redis directly without a consumer
// group) until ctx is cancelled (Ctrl-C), one line per event, or one JSON
// object per line with --json. Exit 0 when stopped, 1 when Redis failed,
// 2 on bad usage.
func tailCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("eventbus tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: eventbus tail [--type P]... [--tenant T] [--json] [flags]\n\n"+
			"Prints the events written to the main stream from now on, until Ctrl-C: one line per\n"+
			"event (time, stream id, type, tenant, event id), or one JSON object per line with --json.\n"+
			"It reads Redis directly and never acknowledges or claims anything.\n"+
			"Exit code: 0 stopped, 1 Redis failed, 2 bad usage.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var types patternsFlag
	fs.Var(&types, "type", "type pattern (\"*\", \"prefix.*\" or exact); repeat or comma-separate for several")
	tenant := fs.String("tenant", "", "only this tenant's events (default: every tenant)")
	asJSON := fs.Bool("json", false, "print one JSON object per line instead of a table")
	timeout := tailConnectTimeout
	insp, closeFn, err := openInspector(fs, args, getenv, &timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("tail: unexpected argument %q", fs.Arg(0))}
	}
	scope := eventbus.AllTenants()
	if isSet(fs, "tenant") {
		scope = eventbus.TenantScope(*tenant)
		if err := scope.Validate(); err != nil {
			return usageError{fmt.Errorf("--tenant: %w", err)}
		}
	}
	f := eventbus.TailFilter{Types: types}
	var fe *eventbus.FilterError
	if err := f.Check(); errors.As(err, &fe) {
		return usageError{fmt.Errorf("--%s: %s", fe.Field, fe.Reason)}
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	f.After, err = insp.TailStart(sctx)
	cancel()
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("tail: Redis did not answer within %v: %w", timeout, err)
	case err != nil:
		return fmt.Errorf("tail: %w", err)
	}
	fmt.Fprintf(stderr, "eventbus tail: following new events of %s after %s (Ctrl-C to stop)\n", scope, f.After)
	enc := json.NewEncoder(stdout)
	if !*asJSON {
		fmt.Fprintf(stdout, "%-24s  %-20s  %-32s  %-16s  %s\n", "TIME", "STREAM ID", "TYPE", "TENANT", "EVENT ID")
	}
	err = insp.Tail(ctx, scope, f, func(it eventbus.BrowsedEvent) error {
		if *asJSON {
			return enc.Encode(it)
		}
		typ, tenant, id := "-", "-", "-"
		if it.Event != nil {
			typ, tenant, id = orDash(it.Event.Type), orDash(it.Event.TenantID), orDash(it.Event.ID)
		}
		if it.DecodeError != "" {
			id += " (invalid: " + it.DecodeError + ")"
		}
		_, err := fmt.Fprintf(stdout, "%-24s  %-20s  %-32s  %-16s  %s\n", it.Time.UTC().Format("2006-01-02T15:04:05.000Z"), it.Cursor(), typ, tenant, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("tail: %w", err)
	}
	return nil
}
