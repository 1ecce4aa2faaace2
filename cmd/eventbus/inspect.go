package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/config"
)

// The read commands (status, health) read through the library's
// Inspector, the same read side as the HTTP API, so that both show the
// same thing. They take the Redis settings of the other commands.

// statusCmd prints the status of one event as JSON: exit 0 when found, 1
// when not found or Redis failed, 2 on bad usage.
func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("eventbus status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: eventbus status [--tenant ID] [flags] <event-id>\n\n"+
			"Prints the event's status in the group as JSON. Without --tenant only ids the bus\n"+
			"generated are found (in any tenant); caller-supplied ids need their tenant.\n"+
			"Exit code: 0 found, 1 not found or Redis failed, 2 bad usage.\n\nFlags (before the event id):\n")
		fs.PrintDefaults()
	}
	tenant := fs.String("tenant", "", "tenant of the event (default: all tenants, bus-generated ids only)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long (positive)")
	insp, closeFn, err := openInspector(fs, args, getenv, timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	if fs.NArg() != 1 {
		if fs.NArg() == 0 {
			return usageError{errors.New("status: want one event id")}
		}
		return usageError{fmt.Errorf("status: want one event id, then nothing (flags go before the id); got %q", strings.Join(fs.Args(), " "))}
	}
	id := fs.Arg(0)
	scope := eventbus.AllTenants()
	if isSet(fs, "tenant") {
		scope = eventbus.TenantScope(*tenant)
		if err := scope.Validate(); err != nil {
			return usageError{fmt.Errorf("--tenant: %w", err)}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	st, err := insp.Status(ctx, scope, id)
	switch {
	case errors.Is(err, eventbus.ErrNotFound):
		if scope.All() {
			return fmt.Errorf("event %q not found in any tenant (without --tenant only ids the bus generated are found)", id)
		}
		return fmt.Errorf("event %q not found for %s", id, scope)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("status of %q: Redis did not answer within %v: %w", id, *timeout, err)
	case err != nil:
		return fmt.Errorf("status of %q: %w", id, err)
	}
	return writeIndented(stdout, st)
}

// healthCmd prints the health report as JSON (the full report of GET
// /health/events): exit 0 healthy, 1 unhealthy (its warnings on stderr),
// 2 bad usage.
func healthCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("eventbus health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: eventbus health [flags]\n\n"+
			"Prints the health report (the full report of GET /health/events) as JSON.\n"+
			"Exit code: 0 healthy, 1 unhealthy, 2 bad usage.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	timeout := fs.Duration("timeout", 10*time.Second, "bound of the report (positive); Redis not answering within it is reported unhealthy")
	insp, closeFn, err := openInspector(fs, args, getenv, timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("health: unexpected argument %q", fs.Arg(0))}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	h := insp.Health(ctx)
	if err := writeIndented(stdout, h); err != nil {
		return err
	}
	if !h.Healthy {
		return fmt.Errorf("unhealthy: %s", strings.Join(h.Warnings, "; "))
	}
	return nil
}

// openInspector loads the settings (flags of fs, then the environment)
// and returns the Inspector of a Bus on the configured Redis, and a
// function closing its client. Errors are usage errors (exit 2).
func openInspector(fs *flag.FlagSet, args []string, getenv func(string) string, timeout *time.Duration) (*eventbus.Inspector, func(), error) {
	settings, err := config.Load(fs, args, getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, usageError{err}
	}
	if *timeout <= 0 {
		return nil, nil, usageError{fmt.Errorf("--timeout %v: must be positive", *timeout)}
	}
	// go-redis's own lines (failed dials) would repeat the error that the
	// command prints, unformatted.
	redis.SetLogger(redisLogger{slog.New(slog.DiscardHandler)})
	client, err := settings.RedisClient()
	if err != nil {
		return nil, nil, usageError{err}
	}
	bus, err := eventbus.New(settings.BusConfig(client, slog.New(slog.DiscardHandler)))
	if err != nil {
		client.Close()
		return nil, nil, usageError{err}
	}
	return bus.Inspector(), func() { client.Close() }, nil
}

// isSet reports whether flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// writeIndented writes v as indented JSON.
func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
