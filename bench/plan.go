package main

import (
	"context"
	"fmt"
	"strings"
)

// one adapts a single-figure measurement to a cellFunc result.
func one(v float64, err error) ([]float64, error) {
	if err != nil {
		return nil, err
	}
	return []float64{v}, nil
}

func thr(key, label string) []row { return []row{{Key: key, Label: label, Unit: "events/s"}} }

// buildPlan lists the measurements in table order, with each system's
// cell.
func buildPlan(env *envelopes, n counts) []measurement {
	eb, rw, w := &bus{env: env}, &raw{env: env}, &wm{env: env}
	return []measurement{
		{
			key: "publish_1g", rows: thr("publish_1g", "publish, 1 goroutine"),
			cells: map[string]cellFunc{
				sysEventbus:  func(ctx context.Context, c *cell) ([]float64, error) { return one(eb.publish(ctx, c, 1, n.Publish1)) },
				sysRaw:       func(ctx context.Context, c *cell) ([]float64, error) { return one(rw.publish(ctx, c, 1, n.Publish1)) },
				sysWatermill: func(ctx context.Context, c *cell) ([]float64, error) { return one(w.publish(ctx, c, 1, n.Publish1)) },
			},
		},
		{
			key: "publish_50g", rows: thr("publish_50g", "publish, 50 goroutines, 1 event per call"),
			cells: map[string]cellFunc{
				sysEventbus: func(ctx context.Context, c *cell) ([]float64, error) { return one(eb.publish(ctx, c, 50, n.Publish50)) },
				sysRaw:      func(ctx context.Context, c *cell) ([]float64, error) { return one(rw.publish(ctx, c, 50, n.Publish50)) },
				sysWatermill: func(ctx context.Context, c *cell) ([]float64, error) {
					return one(w.publish(ctx, c, wmPublishers, n.Publish50))
				},
			},
			notes: map[string]string{sysWatermill: fmt.Sprintf("%d g", wmPublishers)},
		},
		{
			key: "publish_batch100", rows: thr("publish_batch100", "publish, batches of 100"),
			cells: map[string]cellFunc{
				sysEventbus: func(ctx context.Context, c *cell) ([]float64, error) { return one(eb.publishBatch(ctx, c, n.Batch)) },
				sysRaw:      func(ctx context.Context, c *cell) ([]float64, error) { return one(rw.publishBatch(ctx, c, n.Batch)) },
			},
			notes: map[string]string{sysEventbus: "PublishBatch", sysRaw: "pipeline"},
		},
		{
			key: "publish_50g_ceiling",
			rows: []row{
				{Key: "publish_50g_autopipeline", Label: "reference: go-redis AutoPipeline, 50 goroutines, 1 event per call", Unit: "events/s", Baseline: "publish_batch100"},
				{Key: "publish_50g_minimal", Label: "reference: minimal hand-written pipelining client, 50 goroutines, 1 event per call", Unit: "events/s", Baseline: "publish_batch100"},
			},
			cells: map[string]cellFunc{
				sysRaw: func(ctx context.Context, c *cell) ([]float64, error) {
					ap, err := rw.publishAutoPipeline(ctx, c, 50, n.Publish50)
					if err != nil {
						return nil, err
					}
					mp, err := rw.publishMinimal(ctx, c, 50, n.Publish50)
					if err != nil {
						return nil, err
					}
					return []float64{ap, mp}, nil
				},
			},
			notes: map[string]string{sysRaw: "pre-encoded"},
		},
		{
			key: "publish_idempotent_50g",
			rows: []row{{Key: "publish_idempotent_50g", Label: "extra: eventbus publish, caller-supplied ids, 50 goroutines",
				Unit: "events/s", Baseline: "publish_50g"}},
			cells: map[string]cellFunc{
				sysEventbus: func(ctx context.Context, c *cell) ([]float64, error) {
					return one(eb.publishIdempotent(ctx, c, 50, n.Idempotent))
				},
			},
		},
		{
			key: "backlog_1c", rows: thr("backlog_1c", "consume + ack a backlog, 1 consumer"),
			cells: map[string]cellFunc{
				sysEventbus: func(ctx context.Context, c *cell) ([]float64, error) { return one(eb.backlog(ctx, c, 1, n.Backlog)) },
				sysRaw:      func(ctx context.Context, c *cell) ([]float64, error) { return one(rw.backlog(ctx, c, 1, n.Backlog)) },
				sysWatermill: func(ctx context.Context, c *cell) ([]float64, error) {
					return one(w.backlog(ctx, c, 1, n.BacklogWatermill))
				},
			},
		},
		{
			key: "backlog_4c", rows: thr("backlog_4c", "consume + ack a backlog, 4 consumers"),
			cells: map[string]cellFunc{
				sysEventbus: func(ctx context.Context, c *cell) ([]float64, error) { return one(eb.backlog(ctx, c, 4, n.Backlog)) },
				sysRaw:      func(ctx context.Context, c *cell) ([]float64, error) { return one(rw.backlog(ctx, c, 4, n.Backlog)) },
				sysWatermill: func(ctx context.Context, c *cell) ([]float64, error) {
					return one(w.backlog(ctx, c, 4, n.BacklogWatermill))
				},
			},
		},
		{
			key: "end_to_end", rows: thr("end_to_end", "end to end: publish and consume at once"),
			cells: map[string]cellFunc{
				sysEventbus:  func(ctx context.Context, c *cell) ([]float64, error) { return one(eb.endToEnd(ctx, c, n.EndToEnd)) },
				sysRaw:       func(ctx context.Context, c *cell) ([]float64, error) { return one(rw.endToEnd(ctx, c, n.EndToEnd)) },
				sysWatermill: func(ctx context.Context, c *cell) ([]float64, error) { return one(w.endToEnd(ctx, c, n.EndToEndWM)) },
			},
			notes: map[string]string{
				sysEventbus:  fmt.Sprintf("%d×PublishBatch + %d c", busE2EPublishers, busE2EConsumers),
				sysRaw:       fmt.Sprintf("%d×pipe + %d c", rawE2EPublishers, rawE2EConsumers),
				sysWatermill: fmt.Sprintf("%d g + %d c", wmE2EPublishers, wmE2ESubscribers),
			},
		},
		{
			key: "latency",
			rows: []row{
				{Key: "latency_p50", Label: fmt.Sprintf("latency publish→handler at %d/s, p50", n.LatencyRate), Unit: "µs", LowerBetter: true},
				{Key: "latency_p99", Label: fmt.Sprintf("latency publish→handler at %d/s, p99", n.LatencyRate), Unit: "µs", LowerBetter: true},
				{Key: "latency_p999", Label: fmt.Sprintf("latency publish→handler at %d/s, p99.9", n.LatencyRate), Unit: "µs", LowerBetter: true},
			},
			cells: map[string]cellFunc{
				sysEventbus: func(ctx context.Context, c *cell) ([]float64, error) {
					return eb.latency(ctx, c, n.LatencyRate, n.LatencyDuration)
				},
				sysRaw: func(ctx context.Context, c *cell) ([]float64, error) {
					return rw.latency(ctx, c, n.LatencyRate, n.LatencyDuration)
				},
				sysWatermill: func(ctx context.Context, c *cell) ([]float64, error) {
					return w.latency(ctx, c, n.LatencyRate, n.LatencyDuration)
				},
			},
		},
		{
			key: "memory",
			rows: []row{{Key: "memory", Label: "Redis memory per retained event (consumed + acked)",
				Unit: "bytes/event", LowerBetter: true}},
			cells: map[string]cellFunc{
				sysEventbus: func(ctx context.Context, c *cell) ([]float64, error) { return one(eb.memory(ctx, c, n.Memory)) },
				sysRaw:      func(ctx context.Context, c *cell) ([]float64, error) { return one(rw.memory(ctx, c, n.Memory)) },
			},
			notes: map[string]string{sysRaw: "bare entry"},
		},
	}
}

func measurementKeys() []string {
	var keys []string
	for _, m := range buildPlan(&envelopes{}, quickCounts) {
		keys = append(keys, m.key)
	}
	return keys
}

// selectPlan keeps the measurements named in only (comma-separated).
func selectPlan(plan []measurement, only string) ([]measurement, error) {
	want := map[string]bool{}
	for _, k := range strings.Split(only, ",") {
		want[strings.TrimSpace(k)] = true
	}
	var out []measurement
	for _, m := range plan {
		if want[m.key] {
			out = append(out, m)
			delete(want, m.key)
		}
	}
	for k := range want {
		return nil, fmt.Errorf("-only: unknown measurement %q (known: %s)", k, strings.Join(measurementKeys(), ","))
	}
	return out, nil
}
