package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// report is the JSON written per run and the source of the markdown table.
type report struct {
	Started         time.Time      `json:"started"`
	Finished        time.Time      `json:"finished"`
	DurationSeconds float64        `json:"durationSeconds"`
	Mode            string         `json:"mode"`
	Runs            int            `json:"runsPerFigure"`
	Machine         machineInfo    `json:"machine"`
	Redis           redisInfo      `json:"redis"`
	Counts          counts         `json:"counts"`
	Envelope        envelopeInfo   `json:"envelope"`
	Rows            []rowResult    `json:"rows"`
	Targets         []targetResult `json:"targets"`
}

type machineInfo struct {
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	CPUModel   string `json:"cpuModel,omitempty"`
	GoVersion  string `json:"goVersion"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
}

type redisInfo struct {
	Version string `json:"version"`
	Addr    string `json:"addr"`
	Owned   bool   `json:"owned"` // a throwaway server this run started
}

type envelopeInfo struct {
	Bytes         int    `json:"bytes"`         // raw go-redis and Watermill payload
	EventbusBytes int    `json:"eventbusBytes"` // the envelope eventbus encodes
	Sample        string `json:"sample"`
}

type rowResult struct {
	row
	Systems map[string]*systemResult `json:"systems"`
	// RatioToRaw: each system's median over the raw go-redis median of
	// this row (or of Baseline's row).
	RatioToRaw map[string]float64 `json:"ratioToRaw,omitempty"`
}

type systemResult struct {
	Note    string    `json:"note,omitempty"`
	Samples []float64 `json:"samples"`
	Errors  []string  `json:"errors,omitempty"`
	Median  *float64  `json:"median"`
}

type targetResult struct {
	Target   string  `json:"target"`
	Measured string  `json:"measured"`
	Required string  `json:"required"`
	Ratio    float64 `json:"ratio,omitempty"`
	Result   string  `json:"result"` // PASS, FAIL, or n/a when a figure is missing
}

func newReport(o options, mode string, started time.Time, t *target, env *envelopes, n counts, plan []measurement, res results) *report {
	finished := time.Now()
	rep := &report{
		Started: started.UTC(), Finished: finished.UTC(), DurationSeconds: finished.Sub(started).Seconds(),
		Mode: mode, Runs: o.runs,
		Machine: machineInfo{
			CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPUModel: cpuModel(),
			GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		},
		Redis:    redisInfo{Version: t.version, Addr: t.addr, Owned: t.owned},
		Counts:   n,
		Envelope: envelopeInfo{Bytes: len(env.raw), EventbusBytes: env.eventbusSize, Sample: string(env.raw)},
	}
	for _, m := range plan {
		for i, r := range m.rows {
			rr := rowResult{row: r, Systems: map[string]*systemResult{}}
			for _, sys := range systems {
				samples, ok := res[m.key][sys]
				if !ok {
					continue
				}
				sr := &systemResult{Note: m.notes[sys], Samples: []float64{}}
				for _, s := range samples {
					if s.err != nil {
						sr.Errors = append(sr.Errors, s.err.Error())
						continue
					}
					sr.Samples = append(sr.Samples, s.values[i])
				}
				if med := medians(samples, len(m.rows))[i]; !math.IsNaN(med) {
					sr.Median = &med
				}
				rr.Systems[sys] = sr
			}
			rep.Rows = append(rep.Rows, rr)
		}
	}
	for i := range rep.Rows {
		rr := &rep.Rows[i]
		base := rep.median(rr.Key, sysRaw)
		if rr.Baseline != "" {
			base = rep.median(rr.Baseline, sysRaw)
		}
		for _, sys := range []string{sysEventbus, sysWatermill} {
			if v := rep.median(rr.Key, sys); !math.IsNaN(v) && !math.IsNaN(base) && base != 0 {
				if rr.RatioToRaw == nil {
					rr.RatioToRaw = map[string]float64{}
				}
				rr.RatioToRaw[sys] = v / base
			}
		}
	}
	rep.Targets = rep.targets()
	return rep
}

// median of a row's system, NaN when missing.
func (r *report) median(key, sys string) float64 {
	for _, rr := range r.Rows {
		if rr.Key == key {
			if sr := rr.Systems[sys]; sr != nil && sr.Median != nil {
				return *sr.Median
			}
		}
	}
	return math.NaN()
}

// targets checks the performance issue's targets on the medians.
func (r *report) targets() []targetResult {
	type check struct {
		name       string
		key, sys   string // numerator: eventbus on key
		okey, osys string // denominator
		atLeast    bool   // ratio >= bound (else <= bound, or < when strict)
		bound      float64
		strict     bool
	}
	checks := []check{
		{"publish 50 g: eventbus ≥ 3× Watermill (16 g)", "publish_50g", sysEventbus, "publish_50g", sysWatermill, true, 3, false},
		{"publish 50 g: eventbus ≥ 0.7× raw pipelined batches of 100", "publish_50g", sysEventbus, "publish_batch100", sysRaw, true, 0.7, false},
		{"consume backlog, 4 consumers: eventbus ≥ 0.5× raw", "backlog_4c", sysEventbus, "backlog_4c", sysRaw, true, 0.5, false},
		{"end to end: eventbus ≥ 5× Watermill", "end_to_end", sysEventbus, "end_to_end", sysWatermill, true, 5, false},
		{"end to end: eventbus ≥ 0.5× raw end to end", "end_to_end", sysEventbus, "end_to_end", sysRaw, true, 0.5, false},
		{"latency p99: eventbus ≤ 1.5× raw", "latency_p99", sysEventbus, "latency_p99", sysRaw, false, 1.5, false},
		{"latency p99: eventbus < Watermill", "latency_p99", sysEventbus, "latency_p99", sysWatermill, false, 1, true},
		{"memory: eventbus ≤ 1.1× bare stream entry", "memory", sysEventbus, "memory", sysRaw, false, 1.1, false},
	}
	var out []targetResult
	for _, c := range checks {
		num, den := r.median(c.key, c.sys), r.median(c.okey, c.osys)
		t := targetResult{Target: c.name}
		switch {
		case c.atLeast:
			t.Required = fmt.Sprintf("≥ %s×", trimFloat(c.bound))
		case c.strict:
			t.Required = fmt.Sprintf("< %s×", trimFloat(c.bound))
		default:
			t.Required = fmt.Sprintf("≤ %s×", trimFloat(c.bound))
		}
		if math.IsNaN(num) || math.IsNaN(den) || den == 0 {
			t.Measured, t.Result = "not measured", "n/a"
			out = append(out, t)
			continue
		}
		t.Ratio = num / den
		t.Measured = fmt.Sprintf("%.2f× (%s vs %s)", t.Ratio, formatValue(num), formatValue(den))
		var pass bool
		switch {
		case c.atLeast:
			pass = t.Ratio >= c.bound
		case c.strict:
			pass = t.Ratio < c.bound
		default:
			pass = t.Ratio <= c.bound
		}
		t.Result = "FAIL"
		if pass {
			t.Result = "PASS"
		}
		out = append(out, t)
	}
	return out
}

// markdown renders the table, the targets and the run's facts.
func (r *report) markdown() string {
	var b strings.Builder
	server := "given by -redis-url"
	if r.Redis.Owned {
		server = "throwaway redis-server"
	}
	fmt.Fprintf(&b, "\n## eventbus vs raw go-redis v9 vs Watermill redisstream — %s mode, median of %d runs\n\n", r.Mode, r.Runs)
	fmt.Fprintf(&b, "Redis %s (%s, %s), %s, %d CPUs (GOMAXPROCS %d), %s/%s. Envelope: %d bytes (raw go-redis and Watermill payload); eventbus encodes %d bytes.\n\n",
		r.Redis.Version, server, r.Redis.Addr, r.Machine.GoVersion, r.Machine.CPUs, r.Machine.GOMAXPROCS, r.Machine.OS, r.Machine.Arch,
		r.Envelope.Bytes, r.Envelope.EventbusBytes)
	b.WriteString("| # | measurement | unit | better | eventbus | raw go-redis | Watermill | eventbus ÷ raw | Watermill ÷ raw |\n")
	b.WriteString("|---|---|---|---|---:|---:|---:|---:|---:|\n")
	for i, rr := range r.Rows {
		better := "higher"
		if rr.LowerBetter {
			better = "lower"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", i+1, rr.Label, rr.Unit, better,
			cellText(rr.Systems[sysEventbus]), cellText(rr.Systems[sysRaw]), cellText(rr.Systems[sysWatermill]),
			ratioText(rr, sysEventbus), ratioText(rr, sysWatermill))
	}
	b.WriteString("\nRatios are each figure ÷ the raw go-redis figure of the same row in this run. Throughput (events/s): higher is better, " +
		"a ratio above 1 beats raw go-redis. Latency (µs, from each event's scheduled send time) and memory (bytes/event): lower is better, " +
		"a ratio below 1 beats raw go-redis. The caller-supplied-ids row is compared with raw go-redis at 50 goroutines; " +
		"the reference rows (other clients, same 50-goroutine shape, pre-encoded envelope) are figures of their own, in the raw go-redis column. " +
		"Notes: g = publishing goroutines, c = consumers; \"–\" = not applicable.\n")
	if gen, idem := r.median("publish_50g", sysEventbus), r.median("publish_idempotent_50g", sysEventbus); !math.IsNaN(gen) && !math.IsNaN(idem) {
		fmt.Fprintf(&b, "Idempotency checks: caller-supplied ids publish at %.2f× the rate of generated ids.\n", idem/gen)
	}

	b.WriteString("\n### Targets\n\n| target | measured | required | result |\n|---|---|---|---|\n")
	pass, total := 0, 0
	for _, t := range r.Targets {
		fmt.Fprintf(&b, "| %s | %s | %s | **%s** |\n", t.Target, t.Measured, t.Required, t.Result)
		if t.Result != "n/a" {
			total++
			if t.Result == "PASS" {
				pass++
			}
		}
	}
	fmt.Fprintf(&b, "\n%d of %d targets pass.\n", pass, total)
	if batch := r.median("publish_batch100", sysRaw); !math.IsNaN(batch) && batch > 0 {
		best := math.NaN()
		for _, k := range []string{"publish_50g_autopipeline", "publish_50g_minimal"} {
			if v := r.median(k, sysRaw); !math.IsNaN(v) && (math.IsNaN(best) || v > best) {
				best = v
			}
		}
		if eb := r.median("publish_50g", sysEventbus); !math.IsNaN(best) && !math.IsNaN(eb) {
			fmt.Fprintf(&b, "\nCeiling of the 50-goroutine, one-event-per-call shape in this run: the faster reference client "+
				"reaches %s events/s = %.2f× raw pipelined batches of 100; eventbus Publish reaches %.2f× (%.2f× that reference).\n",
				formatValue(best), best/batch, eb/batch, eb/best)
		}
	}

	n := r.Counts
	fmt.Fprintf(&b, "\nCounts per run: publish %s (1 g), %s (50 g / Watermill 16 g), %s (batches), %s (caller ids); backlog %s (Watermill %s); "+
		"end to end %s (Watermill %s); latency %s at %d/s; memory %s events.\n",
		formatValue(float64(n.Publish1)), formatValue(float64(n.Publish50)), formatValue(float64(n.Batch)), formatValue(float64(n.Idempotent)),
		formatValue(float64(n.Backlog)), formatValue(float64(n.BacklogWatermill)), formatValue(float64(n.EndToEnd)), formatValue(float64(n.EndToEndWM)),
		n.LatencyDuration, n.LatencyRate, formatValue(float64(n.Memory)))
	if !r.Redis.Owned {
		b.WriteString("Memory figures on a shared Redis include whatever else wrote to it meanwhile.\n")
	}
	for _, rr := range r.Rows {
		for _, sys := range systems {
			if sr := rr.Systems[sys]; sr != nil && len(sr.Errors) > 0 {
				fmt.Fprintf(&b, "Errors in %s, %s: %s\n", rr.Key, sys, strings.Join(sr.Errors, "; "))
			}
		}
	}
	return b.String()
}

// write saves the report as results/<mode>-<UTC time>.json.
func (r *report) write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.json", r.Mode, r.Started.Format("20060102T150405Z")))
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(b, '\n'), 0o644)
}

func cellText(sr *systemResult) string {
	if sr == nil {
		return "–"
	}
	s := "error"
	if sr.Median != nil {
		s = formatValue(*sr.Median)
	}
	if sr.Note != "" {
		s += " (" + sr.Note + ")"
	}
	return s
}

func ratioText(rr rowResult, sys string) string {
	v, ok := rr.RatioToRaw[sys]
	if !ok {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v)
}

// formatValue prints large figures as grouped integers, small ones with
// one decimal.
func formatValue(v float64) string {
	if math.IsNaN(v) {
		return "NaN"
	}
	if math.Abs(v) < 1000 {
		return fmt.Sprintf("%.1f", v)
	}
	s := fmt.Sprintf("%.0f", math.Abs(v))
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if v < 0 {
		return "-" + string(out)
	}
	return string(out)
}

func trimFloat(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
