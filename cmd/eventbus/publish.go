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
	"github.com/hyvve/eventbus/internal/httpapi"
)

// maxStdinEvents is the most events --data - publishes: one atomic batch,
// the same limit as POST /v1/events/batch. More is refused, not split, so
// that a publish stays all or nothing.
const maxStdinEvents = httpapi.MaxBatchEvents

// publishCmd publishes one event, or with --data - one event per line of
// stdin (at most maxStdinEvents) as one atomic batch. It prints
// {"id","streamId"} per event. Errors about stdin name its line, counted
// from 1 with blank lines included.
func publishCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("eventbus publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	typ := fs.String("type", "", "event type, e.g. approval.item.approved (required)")
	tenant := fs.String("tenant", "", "tenant id (required)")
	user := fs.String("user", "", "user id (required)")
	data := fs.String("data", "{}", fmt.Sprintf(`event data, a JSON object; "-" reads stdin: one JSON object per line (blank lines skipped), at most %d, published as one atomic batch (more is refused: split the input, e.g. with split -l %d); errors name the stdin line, counted from 1`, maxStdinEvents, maxStdinEvents))
	id := fs.String("id", "", "event id (makes the publish idempotent; default: generated); with --data - each event gets ID-LINE, LINE its stdin line")
	source := fs.String("source", "", "event source (default platform)")
	correlation := fs.String("correlation-id", "", "correlation id (default: generated)")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long (positive)")
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
	if *timeout <= 0 {
		return usageError{fmt.Errorf("--timeout %v: must be positive", *timeout)}
	}

	base := eventbus.Event{Type: *typ, TenantID: *tenant, UserID: *user, ID: *id, Source: *source, CorrelationID: *correlation}
	var events []eventbus.Event
	var lines []int // stdin line of each event, from 1
	if *data == "-" {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), settings.MaxEventSize+1)
		line := 0
		for sc.Scan() {
			line++
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			if len(events) == maxStdinEvents {
				return usageError{fmt.Errorf("--data -: stdin line %d: more than %d events; one publish is one atomic batch of at most %d: split the input (e.g. with split -l %d); nothing was written",
					line, maxStdinEvents, maxStdinEvents, maxStdinEvents)}
			}
			ev := base
			ev.Data = json.RawMessage(bytes.Clone(b))
			if *id != "" {
				ev.ID = fmt.Sprintf("%s-%d", *id, line)
			}
			events = append(events, ev)
			lines = append(lines, line)
		}
		if err := sc.Err(); err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				return usageError{fmt.Errorf("--data -: stdin line %d: longer than the event size limit of %d bytes; nothing was written", line+1, settings.MaxEventSize)}
			}
			return fmt.Errorf("read stdin after line %d: %w; nothing was written", line, err)
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
			i := max(ve.Index, 0)
			if i >= len(lines) {
				return usageError{err}
			}
			// Name the stdin line instead of the index in the batch.
			lineErr := *ve
			lineErr.Index = -1
			return usageError{fmt.Errorf("stdin line %d: %w", lines[i], &lineErr)}
		}
		return err
	}
	// Defence in depth: a success without a stream id is no success.
	var missing []string
	for _, p := range res {
		if p.StreamID == "" {
			missing = append(missing, p.ID)
		}
	}
	if len(missing) > 0 {
		return &eventbus.OutcomeUnknownError{TenantID: *tenant, EventIDs: missing, Err: errors.New("no stream id in the reply")}
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
