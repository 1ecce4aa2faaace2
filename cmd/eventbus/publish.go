package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/config"
)

// publishCmd publishes one event, or with --data - one event per line of
// stdin as one atomic batch. It prints {"id","streamId"} per event.
func publishCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("eventbus publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	typ := fs.String("type", "", "event type, e.g. approval.item.approved (required)")
	tenant := fs.String("tenant", "", "tenant id (required)")
	user := fs.String("user", "", "user id (required)")
	data := fs.String("data", "{}", `event data, a JSON object; "-" reads stdin: one JSON object per line, published as one atomic batch`)
	id := fs.String("id", "", "event id (makes the publish idempotent; default: generated)")
	source := fs.String("source", "", "event source (default platform)")
	correlation := fs.String("correlation-id", "", "correlation id (default: generated)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	settings, err := config.Load(fs, args, getenv)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}

	base := eventbus.Event{Type: *typ, TenantID: *tenant, UserID: *user, ID: *id, Source: *source, CorrelationID: *correlation}
	var events []eventbus.Event
	if *data == "-" {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), settings.MaxEventSize+1)
		for line := 1; sc.Scan(); line++ {
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			ev := base
			ev.Data = json.RawMessage(bytes.Clone(b))
			if *id != "" {
				ev.ID = fmt.Sprintf("%s-%d", *id, line)
			}
			events = append(events, ev)
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		if len(events) == 0 {
			return usageError{errors.New("--data -: stdin held no events")}
		}
	} else {
		ev := base
		ev.Data = json.RawMessage(*data)
		events = []eventbus.Event{ev}
	}

	client, err := settings.RedisClient()
	if err != nil {
		return usageError{err}
	}
	defer client.Close()
	bus, err := eventbus.New(settings.BusConfig(client, slog.New(slog.DiscardHandler)))
	if err != nil {
		return usageError{err}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var res []eventbus.Published
	if len(events) == 1 {
		var p eventbus.Published
		p, err = bus.Publish(ctx, events[0])
		res = []eventbus.Published{p}
	} else {
		res, err = bus.PublishBatch(ctx, events)
	}
	if err != nil {
		var ve *eventbus.ValidationError
		if errors.As(err, &ve) {
			return usageError{err}
		}
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, p := range res {
		if p.Duplicate {
			fmt.Fprintf(stderr, "eventbus: event %s was already published; nothing written\n", p.ID)
		}
		if err := enc.Encode(p); err != nil {
			return err
		}
	}
	return nil
}
