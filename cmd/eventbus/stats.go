package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
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
			"each partition's stream length, lag, pending and DLQ (with more than one partition),\n"+
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
	// One line per part: the label aligned, the figures after it.
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(label string, figures ...string) { fmt.Fprintf(tw, "%s\t%s\n", label, strings.Join(figures, "  ")) }
	line("SCOPE", st.Scope)
	line("AT", st.Timestamp.UTC().Format(time.RFC3339))
	if m := st.MainStream; m != nil {
		line("MAIN STREAM", m.Name, fmt.Sprintf("length %d", m.Length), "first "+orDashPtr(m.FirstEntryID), "last "+orDashPtr(m.LastEntryID))
	}
	dlq := []string{fmt.Sprintf("length %d", st.DLQ.Length)}
	if st.DLQ.Budget > 0 && st.Scope == "*" {
		dlq = append(dlq, fmt.Sprintf("budget %d (%.1f %% used)", st.DLQ.Budget, st.DLQ.UsedPercent), fmt.Sprintf("trimmed by retention %d", st.DLQ.TrimmedByRetention))
	}
	line("DLQ", dlq...)
	if g := st.ConsumerGroup; g != nil {
		oldest := "-"
		if g.OldestPendingAgeMs != nil {
			oldest = (time.Duration(*g.OldestPendingAgeMs) * time.Millisecond).String()
		}
		line("GROUP", g.Name, fmt.Sprintf("pending %d", g.Pending), fmt.Sprintf("consumers %d", g.Consumers), "lag "+orDashInt(g.Lag),
			"oldest pending "+oldest, fmt.Sprintf("retries scheduled %d", g.RetriesScheduled))
	}
	line("PUBLISHED", fmt.Sprintf("last hour %d", st.Throughput.LastHour), fmt.Sprintf("last 24h %d", st.Throughput.Last24h))
	line("FAILURES", fmt.Sprintf("last hour %d", st.Failures.LastHour))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Partitions) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "PARTITION\tROLE\tSTREAM\tLENGTH\tLAG\tPENDING\tDLQ")
		for _, p := range st.Partitions {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%d\t%d\n", p.Index, p.Role, p.Stream, p.Length, orDashInt(p.Lag), p.Pending, p.DLQ)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
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
