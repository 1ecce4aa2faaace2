package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/hyvve/eventbus"
)

// statsCmd prints the stats report (GET /admin/events/stats): a table by
// default, JSON with --json. Exit 0 printed, 1 Redis failed, 2 bad usage.
func statsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	d := newDLQFlags("stats", "", stderr)
	d.fs.Init("eventbus stats", d.fs.ErrorHandling())
	d.fs.Usage = func() {
		fmt.Fprint(d.fs.Output(), "Usage: eventbus stats [--tenant T] [--json] [flags]\n\n"+
			"Prints the stats report (GET /admin/events/stats): the main stream, the DLQ and its\n"+
			"budget, the consumer group (pending, consumers, lag, oldest pending, retries scheduled),\n"+
			"events published in the last hour and 24 hours (in total and per type), handler failures\n"+
			"in the last hour, and the alarms raised. --tenant: that tenant's figures only.\n"+
			"Exit code: 0 printed, 1 Redis failed, 2 bad usage.\n\nFlags:\n")
		d.fs.PrintDefaults()
	}
	insp, closeFn, err := openInspector(d.fs, args, getenv, d.timeout)
	if err != nil {
		return err
	}
	defer closeFn()
	if d.fs.NArg() > 0 {
		return usageError{fmt.Errorf("stats: unexpected argument %q", d.fs.Arg(0))}
	}
	scope, err := d.scope()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *d.timeout)
	defer cancel()
	st, err := insp.Stats(ctx, scope)
	if err != nil {
		return dlqError("stats", err, *d.timeout)
	}
	if *d.asJSON {
		return writeIndented(stdout, st)
	}
	return writeStats(stdout, st)
}

// writeStats prints the report as tables.
func writeStats(w io.Writer, st eventbus.Stats) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "SCOPE\t%s\n", st.Scope)
	fmt.Fprintf(tw, "AT\t%s\n", st.Timestamp.UTC().Format(time.RFC3339))
	if m := st.MainStream; m != nil {
		fmt.Fprintf(tw, "MAIN STREAM\t%s\tlength %d\tfirst %s\tlast %s\n", m.Name, m.Length, orDashPtr(m.FirstEntryID), orDashPtr(m.LastEntryID))
	}
	dlq := fmt.Sprintf("length %d", st.DLQ.Length)
	if st.DLQ.Budget > 0 && st.Scope == "*" {
		dlq += fmt.Sprintf("\tbudget %d (%.1f %% used)\ttrimmed by retention %d", st.DLQ.Budget, st.DLQ.UsedPercent, st.DLQ.TrimmedByRetention)
	}
	fmt.Fprintf(tw, "DLQ\t%s\n", dlq)
	if g := st.ConsumerGroup; g != nil {
		oldest := "-"
		if g.OldestPendingAgeMs != nil {
			oldest = (time.Duration(*g.OldestPendingAgeMs) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "GROUP\t%s\tpending %d\tconsumers %d\tlag %s\toldest pending %s\tretries scheduled %d\n",
			g.Name, g.Pending, g.Consumers, orDashInt(g.Lag), oldest, g.RetriesScheduled)
	}
	fmt.Fprintf(tw, "PUBLISHED\tlast hour %d\tlast 24h %d\n", st.Throughput.LastHour, st.Throughput.Last24h)
	fmt.Fprintf(tw, "FAILURES\tlast hour %d\n", st.Failures.LastHour)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Throughput.ByType) > 0 {
		types := make([]string, 0, len(st.Throughput.ByType))
		for t := range st.Throughput.ByType {
			types = append(types, t)
		}
		// Busiest first over 24 hours, then by name.
		slices.SortFunc(types, func(a, b string) int {
			ca, cb := st.Throughput.ByType[a], st.Throughput.ByType[b]
			if c := cmp.Compare(cb.Last24h, ca.Last24h); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TYPE\tLAST HOUR\tLAST 24H")
		for _, t := range types {
			c := st.Throughput.ByType[t]
			fmt.Fprintf(tw, "%s\t%d\t%d\n", t, c.LastHour, c.Last24h)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(st.Alarms) == 0 {
		fmt.Fprintln(w, "ALARMS: none")
		return nil
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ALARM\tLEVEL\tVALUE\tTHRESHOLD\tMESSAGE")
	for _, a := range st.Alarms {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", a.Name, a.Level, a.Value, a.Threshold, a.Message)
	}
	return tw.Flush()
}

func orDashPtr(s *string) string {
	if s == nil {
		return "-"
	}
	return orDash(*s)
}

func orDashInt(n *int64) string {
	if n == nil {
		return "unknown"
	}
	return fmt.Sprint(*n)
}
