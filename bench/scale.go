package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
)

// The scale mode (-scale, or -only scale) measures end-to-end throughput
// of eventbus on one redis-server and on a 3-master Redis Cluster, with 1
// and 8 partitions, and the raw per-core ceiling of one redis-server, with
// the CPU time of this process and of every redis-server during each
// timed window (from /proc): see docs/scaling.md. It starts its own
// servers (a -redis-url is not used).

// scaleCounts are the sizes of the scale mode's cells.
type scaleCounts struct {
	EndToEnd    int `json:"endToEnd"` // events per end-to-end run
	Ceiling     int `json:"ceiling"`  // XADDs per ceiling run
	cellTimeout time.Duration
}

var (
	scaleFull  = scaleCounts{EndToEnd: 200_000, Ceiling: 1_000_000, cellTimeout: 3 * time.Minute}
	scaleQuick = scaleCounts{EndToEnd: 40_000, Ceiling: 100_000, cellTimeout: time.Minute}
)

// Shapes of the scale cells.
const (
	scalePublishers = 4   // goroutines calling PublishBatch (or pipelining XADDs)
	scaleConsumers  = 4   // consumers of the one group (one Bus each)
	scaleBatch      = 100 // events per PublishBatch / XADDs per pipeline
	scaleStreams    = 12  // streams the cluster ceiling spreads its XADDs over
	scaleMasters    = 3   // masters of the cluster
	// scalePace is the publish rate of the paced row (events/s), about a
	// third of the unpaced rate: does Redis CPU per event stay the same
	// at a lower load (is the per-event figure a fair base for the
	// projection)?
	scalePace = 50_000
)

// scaleCase is one row of the scale table.
type scaleCase struct {
	Key        string `json:"key"`
	Label      string `json:"label"`
	Masters    int    `json:"masters"`    // 0: one redis-server, not a cluster
	Partitions int    `json:"partitions"` // eventbus rows only
	run        func(ctx context.Context, sc *scaleCell) error
}

// scaleCell is one run of one case: the servers, a key prefix of its own
// and the CPU probe of its timed window.
type scaleCell struct {
	single  *target
	cluster *clusterTarget // nil for a single-server case
	prefix  string
	probe   cpuProbe
}

func (sc *scaleCell) pids() []int {
	if sc.cluster != nil {
		return sc.cluster.pids()
	}
	return []int{sc.single.cmd.Process.Pid}
}

// scaleSample is one run's outcome.
type scaleSample struct {
	EventsPerSecond float64   `json:"eventsPerSecond"`
	Seconds         float64   `json:"seconds"`
	ClientCPU       float64   `json:"clientCpuPercent"`   // this process, % of one core
	RedisCPU        []float64 `json:"redisCpuPercent"`    // each redis-server, % of one core
	MachineBusy     float64   `json:"machineBusyPercent"` // all cores, % of their total
	// OtherCPU is the busy time of the machine not accounted for by the
	// client, the redis-servers and interrupts (other processes), % of one
	// core: what else competed for the cores.
	OtherCPU float64 `json:"otherCpuPercent"`
	// IRQCPU is the interrupt time (hard and soft: loopback networking),
	// % of one core; not part of OtherCPU.
	IRQCPU         float64 `json:"irqCpuPercent"`
	EntriesPerNode []int64 `json:"entriesPerNode,omitempty"`
	// Streams is the number of streams that received the events (the
	// partitions written, for the eventbus rows).
	Streams int `json:"streams"`
	// NetInPerEvent and NetOutPerEvent are the bytes all redis-servers
	// received and sent per event over the window (every command and
	// reply: publish, reads, acks, polls).
	NetInPerEvent  float64 `json:"netInBytesPerEvent"`
	NetOutPerEvent float64 `json:"netOutBytesPerEvent"`
	// CommandsPerEvent is the commands all redis-servers processed per
	// event (a script or a MULTI counts its inner commands too): how well
	// the work is batched.
	CommandsPerEvent float64 `json:"commandsPerEvent"`
	// SocketIOPerEvent is the socket reads and writes all redis-servers
	// made per event (round trips, whatever each carried).
	SocketIOPerEvent float64 `json:"socketIoPerEvent"`
	// Attempts is how many times the run was made: a run during which
	// other processes used more than -max-other is made again (up to
	// scaleAttempts times; the last attempt is kept).
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
}

func (s scaleSample) redisTotal() float64 {
	var t float64
	for _, v := range s.RedisCPU {
		t += v
	}
	return t
}

// cpuProbe measures the CPU time of this process, of each redis-server and
// of the whole machine over a window.
type cpuProbe struct {
	pids      []int
	admins    []*redis.Client // each redis-server, for INFO stats
	net0      []int64         // bytes in and out of the redis-servers at begin
	start     time.Time
	self      time.Duration
	redis     []time.Duration
	busy, irq time.Duration
	total     time.Duration
	stopped   bool
	sample    scaleSample
	err       error
}

// begin starts the timed window.
func (p *cpuProbe) begin() {
	p.net0 = p.netBytes()
	p.redis = make([]time.Duration, len(p.pids))
	var err error
	if p.self, err = procCPU(os.Getpid()); err != nil {
		p.err = err
	}
	for i, pid := range p.pids {
		if p.redis[i], err = procCPU(pid); err != nil {
			p.err = err
		}
	}
	if p.busy, p.irq, p.total, err = machineCPU(); err != nil {
		p.err = err
	}
	p.start = time.Now()
}

// end closes the window of n events.
func (p *cpuProbe) end(n int) {
	wall := time.Since(p.start)
	s := scaleSample{Seconds: wall.Seconds(), EventsPerSecond: rate(n, wall)}
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / wall.Seconds() }
	self, err := procCPU(os.Getpid())
	if err != nil {
		p.err = err
	}
	s.ClientCPU = pct(self - p.self)
	for i, pid := range p.pids {
		d, err := procCPU(pid)
		if err != nil {
			p.err = err
		}
		s.RedisCPU = append(s.RedisCPU, pct(d-p.redis[i]))
	}
	busy, irq, total, err := machineCPU()
	if err != nil {
		p.err = err
	}
	if total > p.total {
		s.MachineBusy = 100 * float64(busy-p.busy) / float64(total-p.total)
		s.IRQCPU = 100 * float64(irq-p.irq) / float64(total-p.total) * float64(runtime.NumCPU())
	}
	s.OtherCPU = max(0, s.MachineBusy*float64(runtime.NumCPU())-s.ClientCPU-s.redisTotal()-s.IRQCPU)
	if net := p.netBytes(); net != nil && p.net0 != nil {
		s.NetInPerEvent = float64(net[0]-p.net0[0]) / float64(n)
		s.NetOutPerEvent = float64(net[1]-p.net0[1]) / float64(n)
		// Less this probe's own INFO command on each server.
		s.CommandsPerEvent = float64(net[2]-p.net0[2]-int64(len(p.admins))) / float64(n)
		s.SocketIOPerEvent = float64(net[3]-p.net0[3]+net[4]-p.net0[4]) / float64(n)
	}
	p.sample, p.stopped = s, true
}

// netBytes returns the bytes every redis-server has received and sent
// and the commands, socket reads and socket writes it has processed (INFO
// stats total_net_input_bytes, total_net_output_bytes,
// total_commands_processed, total_reads_processed, total_writes_processed),
// summed; nil when one cannot be read.
func (p *cpuProbe) netBytes() []int64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	sum := []int64{0, 0, 0, 0, 0}
	for _, rc := range p.admins {
		info, err := rc.Info(ctx, "stats").Result()
		if err != nil {
			return nil
		}
		for i, f := range []string{"total_net_input_bytes", "total_net_output_bytes", "total_commands_processed", "total_reads_processed", "total_writes_processed"} {
			v, err := strconv.ParseInt(infoField(info, f), 10, 64)
			if err != nil {
				return nil
			}
			sum[i] += v
		}
	}
	return sum
}

// scaleCases lists the rows in table order.
func scaleCases(env *envelopes, n scaleCounts) []scaleCase {
	eb, rw := &bus{env: env}, &raw{env: env}
	e2e := func(partitions int) func(ctx context.Context, sc *scaleCell) error {
		return func(ctx context.Context, sc *scaleCell) error {
			return eb.scaleEndToEnd(ctx, sc, partitions, n.EndToEnd, 0)
		}
	}
	return []scaleCase{
		{Key: "ceiling_xadd", Label: fmt.Sprintf("ceiling: raw XADD, %d pipelining goroutines (%d per pipeline), 1 stream", scalePublishers, scaleBatch),
			run: func(ctx context.Context, sc *scaleCell) error { return rw.scaleXAdd(ctx, sc, n.Ceiling) }},
		{Key: "ceiling_xadd_pinned", Label: fmt.Sprintf("ceiling: redis-benchmark XADD, -P %d -c %d, redis-server pinned to CPU 0, redis-benchmark to CPU 1", scaleBatch, scalePublishers),
			run: func(ctx context.Context, sc *scaleCell) error { return rw.scaleXAddPinned(ctx, sc, n.Ceiling) }},
		{Key: "ceiling_raw_e2e", Label: fmt.Sprintf("ceiling: raw go-redis end to end (%d×pipe + %d c, XREADGROUP/XACK)", rawE2EPublishers, rawE2EConsumers),
			run: func(ctx context.Context, sc *scaleCell) error { return rw.scaleEndToEnd(ctx, sc, n.EndToEnd) }},
		{Key: "ceiling_xadd_3m", Label: fmt.Sprintf("ceiling: raw XADD on the cluster, %d goroutines, %d streams", scalePublishers, scaleStreams), Masters: scaleMasters,
			run: func(ctx context.Context, sc *scaleCell) error { return rw.scaleXAddCluster(ctx, sc, n.Ceiling) }},
		{Key: "eventbus_1m_1p", Label: "(a) eventbus end to end, 1 redis-server, 1 partition", Partitions: 1, run: e2e(1)},
		{Key: "eventbus_1m_1p_paced", Label: fmt.Sprintf("(a, paced) eventbus end to end, 1 redis-server, 1 partition, published at %d events/s", scalePace), Partitions: 1,
			run: func(ctx context.Context, sc *scaleCell) error {
				return eb.scaleEndToEnd(ctx, sc, 1, n.EndToEnd/2, scalePace)
			}},
		{Key: "eventbus_1m_8p", Label: "(b) eventbus end to end, 1 redis-server, 8 partitions", Partitions: 8, run: e2e(8)},
		{Key: "eventbus_3m_1p", Label: "(c) eventbus end to end, 3 masters, 1 partition", Masters: scaleMasters, Partitions: 1, run: e2e(1)},
		{Key: "eventbus_3m_8p", Label: "(d) eventbus end to end, 3 masters, 8 partitions", Masters: scaleMasters, Partitions: 8, run: e2e(8)},
	}
}

// selectScaleCases keeps the cases named in keys (comma-separated, "" or
// "scale": all).
func selectScaleCases(all []scaleCase, keys string) ([]scaleCase, error) {
	if keys == "" || keys == "scale" {
		return all, nil
	}
	var out []scaleCase
	for _, k := range strings.Split(keys, ",") {
		k = strings.TrimSpace(k)
		found := false
		for _, c := range all {
			if c.Key == k {
				out, found = append(out, c), true
			}
		}
		if !found {
			var known []string
			for _, c := range all {
				known = append(known, c.Key)
			}
			return nil, fmt.Errorf("-scale-cases: unknown case %q (known: %s)", k, strings.Join(known, ","))
		}
	}
	return out, nil
}

// runScale is the scale mode.
func runScale(ctx context.Context, o options) error {
	started := time.Now()
	counts, mode := scaleFull, "scale"
	if o.quick {
		counts, mode = scaleQuick, "scale-quick"
	}
	env, err := newEnvelopes()
	if err != nil {
		return err
	}
	cases, err := selectScaleCases(scaleCases(env, counts), o.scaleCases)
	if err != nil {
		return err
	}
	needSingle, needCluster := false, false
	for _, c := range cases {
		needSingle = needSingle || c.Masters == 0
		needCluster = needCluster || c.Masters > 0
	}
	var single *target
	if needSingle {
		if single, err = startServer(ctx); err != nil {
			return err
		}
		defer single.close()
		logf("bench: scale: redis-server %s at %s (pid %d)", single.version, single.addr, single.cmd.Process.Pid)
	}
	var cluster *clusterTarget
	if needCluster {
		if cluster, err = startCluster(ctx, scaleMasters); err != nil {
			return err
		}
		defer cluster.close()
		logf("bench: scale: %d-master cluster at %s (pids %v)", scaleMasters, strings.Join(cluster.addrs(), ","), cluster.pids())
	}
	runID := started.UTC().Format("20060102T150405")
	samples := make([][]scaleSample, len(cases))
	seq := 0
	// Runs interleave the cases (run 1 of every case, then run 2...), so
	// that a slow spell of the machine does not land on one case only.
	for run := range o.runs {
		for i, c := range cases {
			seq++
			sc := &scaleCell{single: single, prefix: fmt.Sprintf("bench-%s-%d", runID, seq)}
			if c.Masters > 0 {
				sc.cluster = cluster
			}
			var s scaleSample
			for attempt := 1; ; attempt++ {
				s = runScaleCell(ctx, sc, c, counts.cellTimeout)
				if ctx.Err() != nil {
					return fmt.Errorf("interrupted: %w", context.Cause(ctx))
				}
				s.Attempts = attempt
				if s.Error != "" || s.OtherCPU <= o.maxOther || attempt == scaleAttempts {
					break
				}
				logf("  %-16s run %d/%d  other processes used %.0f%% of a core (over -max-other %.0f%%): again", c.Key, run+1, o.runs, s.OtherCPU, o.maxOther)
			}
			samples[i] = append(samples[i], s)
			logf("  %-16s run %d/%d  %s", c.Key, run+1, o.runs, s.describe())
		}
	}
	rep := newScaleReport(mode, o.runs, started, counts, single, cluster, cases, samples)
	fmt.Print(rep.markdown())
	path, err := rep.write(o.outDir)
	if err != nil {
		return err
	}
	logf("bench: results written to %s (%.0f s in total)", path, time.Since(started).Seconds())
	return nil
}

// runScaleCell flushes the servers, runs the case once and returns its
// sample.
func runScaleCell(ctx context.Context, sc *scaleCell, c scaleCase, timeout time.Duration) scaleSample {
	fail := func(err error) scaleSample { return scaleSample{Error: err.Error()} }
	if sc.cluster != nil {
		if err := sc.cluster.flush(ctx); err != nil {
			return fail(err)
		}
	} else if err := sc.single.admin.FlushAll(ctx).Err(); err != nil {
		return fail(fmt.Errorf("FLUSHALL: %w", err))
	}
	sc.probe = cpuProbe{pids: sc.pids()}
	if sc.cluster != nil {
		for _, t := range sc.cluster.nodes {
			sc.probe.admins = append(sc.probe.admins, t.admin)
		}
	} else {
		sc.probe.admins = []*redis.Client{sc.single.admin}
	}
	runtime.GC()
	waitQuiet(ctx)
	cctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("cell timed out after %v", timeout))
	defer cancel()
	err := c.run(cctx, sc)
	if err == nil && !sc.probe.stopped {
		err = fmt.Errorf("%s: the timed window was not closed", c.Key)
	}
	if err == nil {
		err = sc.probe.err
	}
	if err != nil {
		return fail(err)
	}
	s := sc.probe.sample
	// Where the events went: the eventbus main streams, or the ceiling's
	// own streams.
	pattern := "*events:main"
	if c.Partitions == 0 {
		pattern = sc.prefix + ":*"
	}
	admins := sc.probe.admins
	for _, rc := range admins {
		n, streams, err := streamEntries(ctx, rc, pattern)
		if err != nil {
			return fail(err)
		}
		s.Streams += streams
		if len(admins) > 1 {
			s.EntriesPerNode = append(s.EntriesPerNode, n)
		}
	}
	return s
}

// Before each run the scale mode waits (up to quietWait) for the machine
// to be mostly idle: other processes (builds, tests) compete for the same
// two cores and would be measured as slowness.
const (
	scaleAttempts = 5 // attempts per run, see scaleSample.Attempts
	quietWait     = 60 * time.Second
	quietBusy     = 20.0 // % of all cores
	quietProbe    = 300 * time.Millisecond
)

func waitQuiet(ctx context.Context) {
	deadline := time.Now().Add(quietWait)
	for {
		b0, _, t0, err := machineCPU()
		if err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(quietProbe):
		}
		b1, _, t1, err := machineCPU()
		if err != nil || t1 <= t0 {
			return
		}
		busy := 100 * float64(b1-b0) / float64(t1-t0)
		if busy < quietBusy {
			return
		}
		if time.Now().After(deadline) {
			logf("  (machine still %.0f%% busy after %v: running anyway)", busy, quietWait)
			return
		}
	}
}

func (s scaleSample) describe() string {
	if s.Error != "" {
		return "ERROR: " + s.Error
	}
	return fmt.Sprintf("%s events/s in %.2f s, client CPU %.0f%%, redis CPU %s, irq %.0f%%, other CPU %.0f%%, machine busy %.0f%%, %.2f commands/event, %.3f socket io/event, %d streams%s",
		formatValue(s.EventsPerSecond), s.Seconds, s.ClientCPU, percents(s.RedisCPU), s.IRQCPU, s.OtherCPU, s.MachineBusy, s.CommandsPerEvent, s.SocketIOPerEvent, s.Streams, entriesText(s.EntriesPerNode))
}

func percents(vs []float64) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%.0f%%", v)
	}
	return strings.Join(parts, "/")
}

func entriesText(vs []int64) string {
	if len(vs) == 0 {
		return ""
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strconv.FormatInt(v, 10)
	}
	return ", entries per master " + strings.Join(parts, "/")
}

// --- raw ceilings ---

// scaleXAdd: goroutines each send pipelines of XADDs to one stream; timed
// from the first pipeline until the last reply.
func (s *raw) scaleXAdd(ctx context.Context, sc *scaleCell, n int) error {
	rc := redis.NewClient(&redis.Options{Addr: sc.single.addr})
	defer rc.Close()
	stream := sc.prefix + ":raw"
	op := func(ctx context.Context, _ int) error { return s.pipelined(ctx, rc, stream, scaleBatch) }
	if _, err := parallel(ctx, scalePublishers, warmupEvents/scaleBatch, op); err != nil {
		return err
	}
	sc.probe.begin()
	_, err := parallel(ctx, scalePublishers, n/scaleBatch, op)
	sc.probe.end(n)
	if err != nil {
		return err
	}
	return checkLen(ctx, rc, stream, warmupEvents+n)
}

// scaleXAddPinned: redis-benchmark (a C client, far lighter than Go's)
// sends pipelined XADDs of the envelope from CPU 1 while redis-server runs
// alone on CPU 0: the closest this box gets to one redis-server core with
// its clients elsewhere. The client CPU is redis-benchmark's.
func (s *raw) scaleXAddPinned(ctx context.Context, sc *scaleCell, n int) error {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return fmt.Errorf("redis-benchmark not found on PATH: %w", err)
	}
	if runtime.NumCPU() < 2 {
		return fmt.Errorf("pinning needs 2 CPUs, have %d", runtime.NumCPU())
	}
	pid := strconv.Itoa(sc.single.cmd.Process.Pid)
	if out, err := exec.CommandContext(ctx, "taskset", "-a", "-p", "-c", "0", pid).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset redis-server: %v: %s", err, out)
	}
	defer func() {
		_ = exec.Command("taskset", "-a", "-p", "-c", "0-"+strconv.Itoa(runtime.NumCPU()-1), pid).Run()
	}()
	host, port, _ := net.SplitHostPort(sc.single.addr)
	stream := sc.prefix + ":raw"
	cmd := exec.CommandContext(ctx, "taskset", "-c", "1", bin, "-h", host, "-p", port,
		"-n", strconv.Itoa(n), "-P", strconv.Itoa(scaleBatch), "-c", strconv.Itoa(scalePublishers), "-q",
		"XADD", stream, "*", "event", string(s.env.raw))
	sc.probe.begin()
	out, err := cmd.CombinedOutput()
	sc.probe.end(n)
	if err != nil {
		return fmt.Errorf("redis-benchmark: %v: %s", err, out)
	}
	// The client is redis-benchmark (this process only waited); the
	// other CPU was computed with this process as the client.
	ps := &sc.probe.sample
	bench := 100 * (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() / ps.Seconds
	ps.OtherCPU = max(0, ps.OtherCPU+ps.ClientCPU-bench)
	ps.ClientCPU = bench
	rc := redis.NewClient(&redis.Options{Addr: sc.single.addr})
	defer rc.Close()
	return checkLen(ctx, rc, stream, n)
}

// scaleXAddCluster: goroutines each send pipelines of XADDs spread over
// scaleStreams streams (so over every master) through a cluster client.
func (s *raw) scaleXAddCluster(ctx context.Context, sc *scaleCell, n int) error {
	rc := sc.cluster.client()
	defer rc.Close()
	streams, err := sc.cluster.balancedStreams(ctx, sc.prefix+":raw", scaleStreams)
	if err != nil {
		return err
	}
	op := func(ctx context.Context, _ int) error {
		pipe := rc.Pipeline()
		for i := range scaleBatch {
			pipe.XAdd(ctx, s.xadd(streams[i%len(streams)], s.env.raw))
		}
		_, err := pipe.Exec(ctx)
		return err
	}
	if _, err := parallel(ctx, scalePublishers, warmupEvents/scaleBatch, op); err != nil {
		return err
	}
	sc.probe.begin()
	_, err = parallel(ctx, scalePublishers, n/scaleBatch, op)
	sc.probe.end(n)
	return err
}

// scaleEndToEnd is raw.endToEnd with the CPU probe on its window.
func (s *raw) scaleEndToEnd(ctx context.Context, sc *scaleCell, n int) error {
	opts := &redis.Options{Addr: sc.single.addr}
	pub, sub, mon := redis.NewClient(opts), redis.NewClient(opts), redis.NewClient(opts)
	defer pub.Close()
	defer sub.Close()
	defer mon.Close()
	stream := sc.prefix + ":raw"
	if err := createGroup(ctx, mon, stream); err != nil {
		return err
	}
	cr := s.startConsumers(ctx, sub, stream, rawE2EConsumers, nil)
	sc.probe.begin()
	_, err := parallel(cr.ctx, rawE2EPublishers, n/rawPipeline, func(ctx context.Context, _ int) error {
		return s.pipelined(ctx, pub, stream, rawPipeline)
	})
	if err == nil {
		err = waitDrained(cr.ctx, mon, stream, n)
	}
	sc.probe.end(n)
	if serr := cr.stop(); err == nil {
		err = serr
	}
	return err
}

// --- eventbus ---

// scaleTenants is the number of tenants the scale events are spread over:
// event i of a batch has tenant i (tenant-0000, ...), and the bench's
// partitioner sends tenant k to partition k mod N, so every partition gets
// an even share (the default partitioner hashes the tenant id: with few
// tenants its split is uneven, which would measure the hash, not the
// layout).
const scaleTenants = scaleBatch

func tenantPartitioner(ev *eventbus.Event, n int) int {
	k, err := strconv.Atoi(strings.TrimPrefix(ev.TenantID, "tenant-"))
	if err != nil || k < 0 {
		return 0
	}
	return k % n
}

// scaleEvents returns scaleBatch events of scaleTenants tenants.
func (s *bus) scaleEvents() []eventbus.Event {
	evs := s.batch(scaleBatch)
	for i := range evs {
		evs[i].TenantID = fmt.Sprintf("tenant-%04d", i%scaleTenants)
	}
	return evs
}

// scaleBus returns a Bus with partitions partitions on the cell's single
// server or cluster, on a client of its own.
func (s *bus) scaleBus(sc *scaleCell, partitions int, consumer string) (*eventbus.Bus, redis.UniversalClient, error) {
	var rc redis.UniversalClient
	if sc.cluster != nil {
		rc = sc.cluster.client()
	} else {
		rc = redis.NewClient(&redis.Options{Addr: sc.single.addr, ContextTimeoutEnabled: true, ReadTimeout: 3 * time.Second})
	}
	b, err := eventbus.New(eventbus.Config{
		Redis: rc, Cluster: sc.cluster != nil, Prefix: sc.prefix, Group: group, Consumer: consumer,
		Block: readBlock, BatchSize: busBatchSize,
		Partitions: partitions, Partitioner: tenantPartitioner,
	})
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	return b, rc, nil
}

// scaleEndToEnd: scalePublishers goroutines call PublishBatch(100) on one
// Bus while scaleConsumers consumers (one Bus each, no-op handler) of the
// group handle; timed from the first publish until the consumers have
// acknowledged all n.
func (s *bus) scaleEndToEnd(ctx context.Context, sc *scaleCell, partitions, n, pace int) error {
	pub, prc, err := s.scaleBus(sc, partitions, "publisher")
	if err != nil {
		return err
	}
	defer prc.Close()
	if err := pub.SetUp(ctx); err != nil {
		return err
	}
	var cons []*eventbus.Consumer
	for i := range scaleConsumers {
		b, rc, err := s.scaleBus(sc, partitions, fmt.Sprintf("c%d", i+1))
		if err != nil {
			return err
		}
		defer rc.Close()
		c, err := b.NewConsumer(eventbus.ConsumerConfig{Concurrency: busConcurrency})
		if err == nil {
			err = c.Handle("bench", "*", eventbus.HandlerFunc(noop), eventbus.Timeout(10*time.Second))
		}
		if err != nil {
			return err
		}
		cons = append(cons, c)
	}
	sum := func() (handled, acked, dead int64) {
		for _, c := range cons {
			st := c.Stats()
			handled += st.Handled
			acked += st.Acked
			dead += st.DeadLettered
		}
		return
	}
	cr := newCrew(ctx)
	for _, c := range cons {
		cr.Go(c.Run)
	}
	batch := s.scaleEvents()
	sc.probe.begin()
	t0 := time.Now()
	_, err = parallel(cr.ctx, scalePublishers, n/len(batch), func(ctx context.Context, i int) error {
		if pace > 0 { // batch i is due at t0 + i*len(batch)/pace
			sleepUntil(t0.Add(time.Duration(i*len(batch)) * time.Second / time.Duration(pace)))
		}
		_, err := pub.PublishBatch(ctx, batch)
		return err
	})
	if err == nil {
		err = pollUntil(cr.ctx, func() bool { _, acked, _ := sum(); return acked >= int64(n) })
	}
	sc.probe.end(n)
	if serr := cr.stop(); err == nil {
		err = serr
	}
	if err != nil {
		handled, acked, dead := sum()
		return fmt.Errorf("%w (handled %d, acked %d, dead-lettered %d of %d)", err, handled, acked, dead, n)
	}
	if handled, _, dead := sum(); handled < int64(n) || dead > 0 {
		return fmt.Errorf("handlers ran %d times for %d events, %d dead-lettered", handled, n, dead)
	}
	return nil
}

// pollUntil polls done every 2 ms until it holds or ctx ends.
func pollUntil(ctx context.Context, done func() bool) error {
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-tick.C:
		}
	}
	return nil
}

// --- report ---

type scaleReport struct {
	Started         time.Time        `json:"started"`
	DurationSeconds float64          `json:"durationSeconds"`
	Mode            string           `json:"mode"`
	Runs            int              `json:"runsPerFigure"`
	Machine         machineInfo      `json:"machine"`
	RedisVersion    string           `json:"redisVersion"`
	EventbusCommit  string           `json:"eventbusCommit,omitempty"`
	Counts          scaleCounts      `json:"counts"`
	Rows            []scaleRowResult `json:"rows"`
}

type scaleRowResult struct {
	scaleCase
	Samples []scaleSample `json:"samples"`
	Median  *scaleMedian  `json:"median"` // each figure's median over the successful runs
}

// scaleMedian holds the medians of a row; the per-10k figures are medians
// of each run's ratio.
type scaleMedian struct {
	EventsPerSecond  float64   `json:"eventsPerSecond"`
	ClientCPU        float64   `json:"clientCpuPercent"`
	RedisCPU         []float64 `json:"redisCpuPercent"` // per node, busiest first
	RedisCPUTotal    float64   `json:"redisCpuPercentTotal"`
	RedisCPUPer10k   float64   `json:"redisCpuPercentPer10kEventsPerSecond"`
	ClientCPUPer10k  float64   `json:"clientCpuPercentPer10kEventsPerSecond"`
	MachineBusy      float64   `json:"machineBusyPercent"`
	OtherCPU         float64   `json:"otherCpuPercent"`
	IRQCPU           float64   `json:"irqCpuPercent"`
	NetInPerEvent    float64   `json:"netInBytesPerEvent"`
	NetOutPerEvent   float64   `json:"netOutBytesPerEvent"`
	CommandsPerEvent float64   `json:"commandsPerEvent"`
	SocketIOPerEvent float64   `json:"socketIoPerEvent"`
	EntriesPerNode   []int64   `json:"entriesPerNode,omitempty"` // of the median-rate run
	Streams          int       `json:"streams"`                  // of the median-rate run
	SuccessfulRuns   int       `json:"successfulRuns"`
}

func newScaleReport(mode string, runs int, started time.Time, n scaleCounts, single *target, cluster *clusterTarget, cases []scaleCase, samples [][]scaleSample) *scaleReport {
	rep := &scaleReport{
		Started: started.UTC(), DurationSeconds: time.Since(started).Seconds(), Mode: mode, Runs: runs,
		Machine: machineInfo{
			CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), CPUModel: cpuModel(),
			GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		},
		Counts: n, EventbusCommit: gitCommit(),
	}
	switch {
	case single != nil:
		rep.RedisVersion = single.version
	case cluster != nil:
		rep.RedisVersion = cluster.nodes[0].version
	}
	for i, c := range cases {
		rep.Rows = append(rep.Rows, scaleRowResult{scaleCase: c, Samples: samples[i], Median: scaleMedians(samples[i])})
	}
	return rep
}

func scaleMedians(samples []scaleSample) *scaleMedian {
	var ok []scaleSample
	for _, s := range samples {
		if s.Error == "" {
			ok = append(ok, s)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	col := func(f func(scaleSample) float64) float64 {
		vs := make([]float64, len(ok))
		for i, s := range ok {
			vs[i] = f(s)
		}
		return median(vs)
	}
	m := &scaleMedian{
		EventsPerSecond:  col(func(s scaleSample) float64 { return s.EventsPerSecond }),
		ClientCPU:        col(func(s scaleSample) float64 { return s.ClientCPU }),
		RedisCPUTotal:    col(func(s scaleSample) float64 { return s.redisTotal() }),
		RedisCPUPer10k:   col(func(s scaleSample) float64 { return s.redisTotal() / (s.EventsPerSecond / 1e4) }),
		ClientCPUPer10k:  col(func(s scaleSample) float64 { return s.ClientCPU / (s.EventsPerSecond / 1e4) }),
		MachineBusy:      col(func(s scaleSample) float64 { return s.MachineBusy }),
		OtherCPU:         col(func(s scaleSample) float64 { return s.OtherCPU }),
		IRQCPU:           col(func(s scaleSample) float64 { return s.IRQCPU }),
		NetInPerEvent:    col(func(s scaleSample) float64 { return s.NetInPerEvent }),
		NetOutPerEvent:   col(func(s scaleSample) float64 { return s.NetOutPerEvent }),
		CommandsPerEvent: col(func(s scaleSample) float64 { return s.CommandsPerEvent }),
		SocketIOPerEvent: col(func(s scaleSample) float64 { return s.SocketIOPerEvent }),
		SuccessfulRuns:   len(ok),
	}
	// Per node, busiest first: with one partition the busy master is the
	// one that owns the prefix's slot, which changes with every run's
	// prefix.
	for j := range ok[0].RedisCPU {
		m.RedisCPU = append(m.RedisCPU, col(func(s scaleSample) float64 {
			vs := slices.Clone(s.RedisCPU)
			slices.SortFunc(vs, func(a, b float64) int { return cmp.Compare(b, a) })
			return vs[j]
		}))
	}
	best := ok[0]
	for _, s := range ok {
		if math.Abs(s.EventsPerSecond-m.EventsPerSecond) < math.Abs(best.EventsPerSecond-m.EventsPerSecond) {
			best = s
		}
	}
	m.EntriesPerNode, m.Streams = best.EntriesPerNode, best.Streams
	return m
}

// redoneText tells how many runs were made again because other processes
// competed for the cores.
func redoneText(samples []scaleSample) string {
	redone := 0
	for _, s := range samples {
		redone += max(0, s.Attempts-1)
	}
	if redone == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d redone)", redone)
}

func (r *scaleReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## eventbus scale benchmark (%s, %d runs per row, medians)\n\n", r.Mode, r.Runs)
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %s; Redis %s; eventbus %s; %d events per end-to-end run, %d per ceiling run.\n",
		r.Machine.CPUs, r.Machine.CPUModel, r.Machine.GoVersion, r.RedisVersion, r.EventbusCommit, r.Counts.EndToEnd, r.Counts.Ceiling)
	b.WriteString("CPU is % of one core over the timed window (client: this whole process, or redis-benchmark; redis: each server; irq: interrupts, mostly loopback networking; other: the rest of the machine's busy time, i.e. other processes); machine busy is % of all cores.\n\n")
	b.WriteString("| row | events/s | client CPU | redis CPU per node (busiest first) | redis CPU total | irq | other CPU | redis CPU per 10k ev/s | client CPU per 10k ev/s | redis bytes in/out per event | redis commands per event | redis socket reads+writes per event | machine busy | streams written | entries per master | ok runs |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range r.Rows {
		m := row.Median
		if m == nil {
			fmt.Fprintf(&b, "| %s | error | | | | | | | | | | | | | | 0/%d |\n", row.Label, len(row.Samples))
			continue
		}
		entries := strings.TrimPrefix(entriesText(m.EntriesPerNode), ", entries per master ")
		fmt.Fprintf(&b, "| %s | %s | %.0f%% | %s | %.0f%% | %.0f%% | %.0f%% | %.1f%% | %.1f%% | %.0f / %.0f | %.2f | %.3f | %.0f%% | %d | %s | %d/%d%s |\n",
			row.Label, formatValue(m.EventsPerSecond), m.ClientCPU, percents(m.RedisCPU), m.RedisCPUTotal, m.IRQCPU, m.OtherCPU,
			m.RedisCPUPer10k, m.ClientCPUPer10k, m.NetInPerEvent, m.NetOutPerEvent, m.CommandsPerEvent, m.SocketIOPerEvent, m.MachineBusy, m.Streams, entries, m.SuccessfulRuns, len(row.Samples), redoneText(row.Samples))
	}
	for _, row := range r.Rows {
		for _, s := range row.Samples {
			if s.Error != "" {
				fmt.Fprintf(&b, "\n%s: %s", row.Key, s.Error)
			}
		}
	}
	b.WriteString("\n")
	b.WriteString(r.projection())
	return b.String()
}

// projection prints the per-master capacity implied by the measured Redis
// CPU per event, and what 3, 10 and 30 masters would carry: one core per
// master, clients elsewhere, the network not modelled (docs/scaling.md).
func (r *scaleReport) projection() string {
	var b strings.Builder
	for _, key := range []string{"eventbus_1m_1p", "eventbus_1m_8p", "eventbus_3m_8p"} {
		var m *scaleMedian
		for _, row := range r.Rows {
			if row.Key == key {
				m = row.Median
			}
		}
		if m == nil || m.RedisCPUPer10k <= 0 {
			continue
		}
		perMaster := 1e4 * 100 / m.RedisCPUPer10k
		fmt.Fprintf(&b, "\nProjection from %s: %.2f%% redis CPU per 10k events/s -> one master core carries 10k × 100 / %.2f = %s events/s;",
			key, m.RedisCPUPer10k, m.RedisCPUPer10k, formatValue(perMaster))
		for _, masters := range []int{3, 10, 30} {
			clientCores := m.ClientCPUPer10k * perMaster * float64(masters) / 1e4 / 100
			fmt.Fprintf(&b, " %d masters: %s events/s (client cores needed: %.0f);", masters, formatValue(perMaster*float64(masters)), clientCores)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func (r *scaleReport) write(dir string) (string, error) {
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

// gitCommit is the commit of the eventbus module the bench runs (the
// replace in go.mod points at ../), "" when git cannot tell.
func gitCommit() string {
	out, err := exec.Command("git", "-C", "..", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
