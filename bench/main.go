// Command bench measures eventbus against raw go-redis v9 and Watermill's
// redisstream on the same Redis, in one run, with the same ~305-byte JSON
// envelope, and prints a markdown table of medians, the ratios to the raw
// go-redis baseline and the targets of the performance issue.
//
//	go run .             # full run (several minutes)
//	go run . -quick      # short counts, under a minute
//	go run . -redis-url redis://127.0.0.1:6379/0   # use a given Redis
//	go run . -scale      # 1 vs 3 masters, 1 vs 8 partitions (docs/scaling.md)
//
// Without -redis-url it starts its own throwaway redis-server on a free
// loopback port (no persistence), flushes it between cells and kills it at
// the end. With -redis-url it never flushes: every cell uses its own key
// prefix and deletes its keys afterwards.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

type options struct {
	quick      bool
	redisURL   string
	runs       int
	outDir     string
	only       string
	cpuprof    string
	systems    string
	scale      bool
	scaleCases string
	maxOther   float64
}

func main() {
	var o options
	flag.BoolVar(&o.quick, "quick", false, "short counts (under a minute in total)")
	flag.StringVar(&o.redisURL, "redis-url", "", "use this Redis instead of starting a throwaway redis-server (never flushed; keys are prefixed and deleted)")
	flag.IntVar(&o.runs, "runs", 3, "runs per figure; the table shows the median")
	flag.StringVar(&o.outDir, "out", "results", "directory for the JSON result file")
	flag.StringVar(&o.only, "only", "", "comma-separated measurement keys to run (default all): "+strings.Join(measurementKeys(), ","))
	flag.StringVar(&o.systems, "systems", "", "comma-separated systems to run (default all): eventbus,raw,watermill")
	flag.BoolVar(&o.scale, "scale", false, "scale mode instead of the comparison: eventbus end to end on 1 redis-server and on a 3-master cluster, 1 and 8 partitions, with the per-core ceiling and process CPU (also -only scale; with -quick, short counts); see docs/scaling.md")
	flag.StringVar(&o.scaleCases, "scale-cases", "", "comma-separated cases of the scale mode (default all)")
	flag.Float64Var(&o.maxOther, "max-other", 30, "scale mode: make a run again when other processes used more than this % of one core during it")
	flag.StringVar(&o.cpuprof, "cpuprofile", "", "write a CPU profile of the whole run to this file (combine with -only)")
	flag.Parse()
	if o.runs < 1 {
		fmt.Fprintln(os.Stderr, "bench: -runs must be at least 1")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if o.scale || o.only == "scale" {
		err = runScale(ctx, o)
	} else {
		err = run(ctx, o)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	started := time.Now()
	if o.cpuprof != "" {
		f, err := os.Create(o.cpuprof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	counts := fullCounts
	mode := "full"
	if o.quick {
		counts, mode = quickCounts, "quick"
	}

	var tgt *target
	var err error
	if o.redisURL != "" {
		tgt, err = useTarget(ctx, o.redisURL)
	} else {
		tgt, err = startServer(ctx)
	}
	if err != nil {
		return err
	}
	defer tgt.close()

	env, err := newEnvelopes()
	if err != nil {
		return err
	}
	logf("bench: %s mode, %d runs per figure, Redis %s at %s (%s)", mode, o.runs, tgt.version, tgt.addr, tgt.kind())
	logf("bench: envelope %d bytes (raw go-redis and Watermill payload), eventbus encoded envelope %d bytes", len(env.raw), env.eventbusSize)

	r := &runner{target: tgt, runs: o.runs, runID: started.UTC().Format("20060102T150405"), cellTimeout: counts.cellTimeout, systems: systems}
	if o.systems != "" {
		if r.systems, err = selectSystems(o.systems); err != nil {
			return err
		}
	}
	plan := buildPlan(env, counts)
	if o.only != "" {
		plan, err = selectPlan(plan, o.only)
		if err != nil {
			return err
		}
	}
	results, err := r.runPlan(ctx, plan)
	if err != nil {
		return err
	}

	rep := newReport(o, mode, started, tgt, env, counts, plan, results)
	fmt.Print(rep.markdown())
	path, err := rep.write(o.outDir)
	if err != nil {
		return err
	}
	logf("bench: results written to %s (%.0f s in total)", path, time.Since(started).Seconds())
	return nil
}

// logf prints progress to stderr, so that stdout holds only the table.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
