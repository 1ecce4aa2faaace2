package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// scrape serves reg's exposition as GET /metrics does and parses it with
// the Prometheus text parser.
func scrape(t testing.TB, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "text/plain") // the text format, not protobuf
	promhttp.HandlerFor(g, promhttp.HandlerOpts{}).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parsing the exposition: %v", err)
	}
	return fams
}

// metricValue is the value of the series of family name with exactly
// labels (a counter's or gauge's value, a histogram's sample count), and
// whether it exists.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// series lists a family's series as "label=value,..." strings, sorted.
func series(fams map[string]*dto.MetricFamily, name string) []string {
	var out []string
	for _, m := range fams[name].GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		out = append(out, strings.Join(ls, ","))
	}
	sort.Strings(out)
	return out
}

func TestMetricsCountExactly(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	reg := prometheus.NewRegistry()
	b := fastBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Registerer = reg })
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	cons := fastConsumer(t, b, func(cfg *eventbus.ConsumerConfig) {
		cfg.Retry = &eventbus.RetryPolicy{Delays: []time.Duration{50 * time.Millisecond, 50 * time.Millisecond}}
	})
	noRetry := eventbus.Retry(eventbus.RetryPolicy{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	flaky := newCounter()
	mustHandle(t, cons, "ok", "order.*", func(context.Context, eventbus.Event) error { return nil })
	mustHandle(t, cons, "flaky", "pay.*", func(_ context.Context, ev eventbus.Event) error {
		if flaky.add(ev.ID) <= 2 {
			return errors.New("not yet")
		}
		return nil
	})
	mustHandle(t, cons, "perm", "perm.*", func(context.Context, eventbus.Event) error {
		return eventbus.Permanent(errors.New("never"))
	})
	mustHandle(t, cons, "panics", "panic.*", func(context.Context, eventbus.Event) error { panic("boom") }, noRetry)
	// hangs ignores its context: the watchdog abandons it.
	mustHandle(t, cons, "hangs", "hang.*", func(context.Context, eventbus.Event) error { <-release; return nil },
		eventbus.Timeout(100*time.Millisecond), noRetry)
	// slow returns its context's error past its deadline.
	mustHandle(t, cons, "slow", "slow.*", func(ctx context.Context, _ eventbus.Event) error { <-ctx.Done(); return ctx.Err() },
		eventbus.Timeout(100*time.Millisecond), noRetry)
	runConsumer(t, cons)
	runBus(t, b)

	from := time.Now().Add(-time.Second)
	pub := func(ev eventbus.Event) eventbus.Published {
		t.Helper()
		ev.TenantID, ev.UserID = "t1", "u1"
		p, err := b.Publish(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for range 3 {
		pub(eventbus.Event{Type: "order.created"})
	}
	pub(eventbus.Event{Type: "order.created", ID: "fixed-1"})
	if p := pub(eventbus.Event{Type: "order.created", ID: "fixed-1"}); !p.Duplicate {
		t.Fatal("second publish of fixed-1 is no duplicate")
	}
	if _, err := b.PublishBatch(ctx, []eventbus.Event{
		{Type: "order.shipped", TenantID: "t1", UserID: "u1"}, {Type: "order.shipped", TenantID: "t1", UserID: "u1"},
	}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		pub(eventbus.Event{Type: "pay.done"})
	}
	perm := pub(eventbus.Event{Type: "perm.fail"})
	pub(eventbus.Event{Type: "panic.now"})
	pub(eventbus.Event{Type: "hang.now"})
	pub(eventbus.Event{Type: "slow.now"})
	// An entry that is no event: dead-lettered without a handler.
	if err := c.XAdd(ctx, &redis.XAddArgs{Stream: testKeys(prefix).Main(), Values: []string{"junk", "1"}}).Err(); err != nil {
		t.Fatal(err)
	}

	dlq := func() int64 { return c.XLen(ctx, testKeys(prefix).DLQ()).Val() }
	waitFor(t, 20*time.Second, "five dead letters", func() bool { return dlq() == 5 })
	waitFor(t, 20*time.Second, "flaky succeeded twice", func() bool {
		v, _ := metricValue(scrape(t, reg), "eventbus_handler_runs_total", "handler", "flaky", "outcome", "success")
		return v == 2
	})

	// A redrive: perm runs once more and dead-letters again.
	in := b.Inspector()
	if n, err := in.Redrive(ctx, eventbus.AllTenants(), testActor, perm.ID); err != nil || n != 1 {
		t.Fatalf("Redrive: %d, %v", n, err)
	}
	waitFor(t, 20*time.Second, "perm ran again", func() bool {
		v, _ := metricValue(scrape(t, reg), "eventbus_dead_letters_total", "handler", "perm")
		return v == 2
	})

	// A replay of the order events to ok: 6 copies.
	waitFor(t, 20*time.Second, "the consumer registered", func() bool {
		cs, err := in.Consumers(ctx)
		return err == nil && len(cs) == 1
	})
	job, err := in.StartReplay(ctx, eventbus.AllTenants(), testActor, eventbus.ReplayRequest{
		From: from, To: time.Now().Add(time.Second), Types: []string{"order.*"}, Handlers: []string{"ok"},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, in, job.ID, 30*time.Second, "the replay to end", ended)
	waitFor(t, 20*time.Second, "ok ran the copies", func() bool {
		v, _ := metricValue(scrape(t, reg), "eventbus_handler_runs_total", "handler", "ok", "outcome", "success")
		return v == 12
	})

	fams := scrape(t, reg)
	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"eventbus_events_published_total", []string{"type", "order.created", "outcome", "written"}, 4},
		{"eventbus_events_published_total", []string{"type", "order.created", "outcome", "duplicate"}, 1},
		{"eventbus_events_published_total", []string{"type", "order.shipped", "outcome", "written"}, 2},
		{"eventbus_events_published_total", []string{"type", "pay.done", "outcome", "written"}, 2},
		{"eventbus_events_published_total", []string{"type", "perm.fail", "outcome", "written"}, 1},
		{"eventbus_events_published_total", []string{"type", "panic.now", "outcome", "written"}, 1},
		{"eventbus_events_published_total", []string{"type", "hang.now", "outcome", "written"}, 1},
		{"eventbus_events_published_total", []string{"type", "slow.now", "outcome", "written"}, 1},
		{"eventbus_events_published_total", []string{"type", "order.created", "outcome", "failed"}, 0},
		{"eventbus_events_published_total", []string{"type", "order.created", "outcome", "unknown"}, 0},
		{"eventbus_publish_duration_seconds", []string{"call", "publish"}, 11},
		{"eventbus_publish_duration_seconds", []string{"call", "batch"}, 1},
		{"eventbus_handler_runs_total", []string{"handler", "ok", "outcome", "success"}, 12},
		{"eventbus_handler_runs_total", []string{"handler", "flaky", "outcome", "success"}, 2},
		{"eventbus_handler_runs_total", []string{"handler", "flaky", "outcome", "failure"}, 4},
		{"eventbus_handler_runs_total", []string{"handler", "perm", "outcome", "permanent"}, 2},
		{"eventbus_handler_runs_total", []string{"handler", "panics", "outcome", "panic"}, 1},
		{"eventbus_handler_runs_total", []string{"handler", "hangs", "outcome", "timeout"}, 1},
		{"eventbus_handler_runs_total", []string{"handler", "slow", "outcome", "timeout"}, 1},
		{"eventbus_handler_runs_total", []string{"handler", "slow", "outcome", "failure"}, 0},
		{"eventbus_handler_duration_seconds", []string{"handler", "ok"}, 12},
		{"eventbus_handler_duration_seconds", []string{"handler", "flaky"}, 6},
		{"eventbus_handler_duration_seconds", []string{"handler", "hangs"}, 1},
		// First runs of main-stream deliveries only: 6 order, 2 pay,
		// perm, panic, hang, slow (no retries, redrives or copies).
		{"eventbus_delivery_delay_seconds", nil, 12},
		{"eventbus_retries_scheduled_total", []string{"handler", "flaky"}, 4},
		{"eventbus_dead_letters_total", []string{"handler", "perm"}, 2},
		{"eventbus_dead_letters_total", []string{"handler", "panics"}, 1},
		{"eventbus_dead_letters_total", []string{"handler", "hangs"}, 1},
		{"eventbus_dead_letters_total", []string{"handler", "slow"}, 1},
		{"eventbus_dead_letters_total", []string{"handler", ""}, 1},
		{"eventbus_redrives_total", nil, 1},
		{"eventbus_replay_copies_total", nil, 6},
	}
	for _, w := range want {
		got, ok := metricValue(fams, w.name, w.labels...)
		if !ok || got != w.value {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
	if t.Failed() {
		for _, name := range []string{"eventbus_handler_runs_total", "eventbus_events_published_total"} {
			t.Logf("%s: %v", name, series(fams, name))
		}
	}
}

func TestMetricsTypeCap(t *testing.T) {
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	reg := prometheus.NewRegistry()
	b := newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Registerer = reg; cfg.MetricsMaxTypes = 3 })
	for i := range 5 {
		for range 2 {
			if _, err := b.Publish(ctx, eventbus.Event{Type: fmt.Sprintf("kind.t%d", i), TenantID: "t", UserID: "u"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	evs := []eventbus.Event{{Type: "kind.t0", TenantID: "t", UserID: "u"}, {Type: "kind.t9", TenantID: "t", UserID: "u"}}
	if _, err := b.PublishBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	fams := scrape(t, reg)
	got := series(fams, "eventbus_events_published_total")
	var types []string
	for _, s := range got {
		if strings.HasPrefix(s, "outcome=written,") {
			types = append(types, s)
		}
	}
	wantTypes := []string{"outcome=written,type=kind.t0", "outcome=written,type=kind.t1", "outcome=written,type=kind.t2", "outcome=written,type=other"}
	if fmt.Sprint(types) != fmt.Sprint(wantTypes) {
		t.Fatalf("written series %v, want %v", types, wantTypes)
	}
	for typ, n := range map[string]float64{"kind.t0": 3, "kind.t1": 2, "kind.t2": 2, eventbus.MetricsOtherType: 5} {
		if v, _ := metricValue(fams, "eventbus_events_published_total", "type", typ, "outcome", "written"); v != n {
			t.Errorf("type %s: %v written, want %v", typ, v, n)
		}
	}
}

func TestMetricsOffWithoutRegisterer(t *testing.T) {
	c, prefix := redistest.Shared(t)
	reg := prometheus.NewRegistry()
	// One bus registers; a second on the same registry must fail clearly.
	newBus(t, c, prefix, func(cfg *eventbus.Config) { cfg.Registerer = reg })
	_, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix, Registerer: reg})
	if err == nil || !strings.Contains(err.Error(), "WrapRegistererWith") {
		t.Fatalf("second bus on one registry: %v, want an AlreadyRegistered error naming the way out", err)
	}
	// Registerers wrapped with distinct values of one label take two
	// buses.
	wrapped := prometheus.NewRegistry()
	for _, name := range []string{"a", "b"} {
		if _, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix, Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"bus": name}, wrapped)}); err != nil {
			t.Fatal(err)
		}
	}
	// No Registerer: New succeeds and nothing is registered anywhere.
	if _, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix}); err != nil {
		t.Fatal(err)
	}
	if _, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix, MetricsMaxTypes: -1}); !errors.Is(err, eventbus.ErrConfig) {
		t.Fatalf("MetricsMaxTypes -1: %v, want ErrConfig", err)
	}
}

func TestMetricsCollectorReadsRedis(t *testing.T) {
	ctx := context.Background()
	shared, prefix := redistest.Shared(t)
	b := newBus(t, shared, prefix, nil)
	if err := b.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	k := testKeys(prefix)
	group := b.Config().Group
	// A known state: 5 events, 2 of them delivered and not acknowledged
	// (3 undelivered), 3 dead letters, 2 retries waiting, 1 replayed
	// copy, 1 live consumer.
	for range 5 {
		if _, err := b.Publish(ctx, eventbus.Event{Type: "x.y", TenantID: "t", UserID: "u"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := shared.XReadGroup(ctx, &redis.XReadGroupArgs{Group: group, Consumer: "manual", Streams: []string{k.Main(), ">"}, Count: 2}).Err(); err != nil {
		t.Fatal(err)
	}
	seedDLQ(t, shared, prefix, []dlqSeed{
		{dl: deadLetterOf("t", "e1", "x.y", "h1", "boom")},
		{dl: deadLetterOf("t", "e2", "x.y", "h1", "boom")},
		{dl: deadLetterOf("t", "e3", "x.y", "h1", "boom")},
	})
	due := float64(time.Now().Add(time.Hour).UnixMilli())
	if err := shared.ZAdd(ctx, k.Partition(0).RetrySchedule(group), redis.Z{Score: due, Member: "r1"}, redis.Z{Score: due, Member: "r2"}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := shared.XAdd(ctx, &redis.XAddArgs{Stream: k.Replay(), Values: []string{rdb.FieldEvent, "{}"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.New(shared, k, rdb.Options{}).Heartbeat(ctx, group, "c1", []byte(`["h1"]`), time.Hour); err != nil {
		t.Fatal(err)
	}

	// The collector's bus reads through a client that counts commands.
	cmds := &countingHook{}
	client := redis.NewClient(&redis.Options{Addr: shared.Options().Addr, DB: shared.Options().DB})
	t.Cleanup(func() { client.Close() })
	client.AddHook(cmds)
	cb := newBus(t, client, prefix, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(cb.Inspector().Collector(eventbus.CollectorOptions{TTL: time.Hour}))

	fams := scrape(t, reg)
	first := cmds.n.Load()
	if first == 0 {
		t.Fatal("the first scrape sent no command")
	}
	for _, w := range []struct {
		name   string
		labels []string
		value  float64
	}{
		{"eventbus_redis_up", nil, 1},
		{"eventbus_stream_length", []string{"stream", "main"}, 5},
		{"eventbus_stream_length", []string{"stream", "dlq"}, 3},
		{"eventbus_stream_length", []string{"stream", "replay"}, 1},
		{"eventbus_group_pending", []string{"group", group}, 2},
		{"eventbus_group_lag", []string{"group", group}, 3},
		{"eventbus_retries_waiting", []string{"group", group}, 2},
		{"eventbus_consumers", []string{"group", group}, 1},
	} {
		if got, ok := metricValue(fams, w.name, w.labels...); !ok || got != w.value {
			t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.value)
		}
	}
	if age, ok := metricValue(fams, "eventbus_group_oldest_pending_age_seconds", "group", group); !ok || age < 0 || age > 600 {
		t.Errorf("oldest pending age %v (present %v), want a few seconds at most", age, ok)
	}

	// Within the TTL, scrapes cost no Redis call.
	for range 3 {
		scrape(t, reg)
	}
	if n := cmds.n.Load(); n != first {
		t.Errorf("three scrapes within the TTL sent %d commands, want 0", n-first)
	}
}

func TestMetricsCollectorRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	client := failFastClient(t, srv.Addr())
	b := newBus(t, client, redistest.Prefix(t), nil)
	if err := b.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(b.Inspector().Collector(eventbus.CollectorOptions{TTL: time.Nanosecond, Timeout: 300 * time.Millisecond}))
	if v, _ := metricValue(scrape(t, reg), "eventbus_redis_up"); v != 1 {
		t.Fatalf("redis_up %v with Redis up", v)
	}
	for _, down := range []struct {
		name       string
		stop, back func()
	}{
		{"paused (no reply)", srv.Pause, srv.Resume},
		{"stopped (connection refused)", srv.Stop, srv.Restart},
	} {
		down.stop()
		done := make(chan map[string]*dto.MetricFamily, 1)
		go func() { done <- scrape(t, reg) }()
		select {
		case fams := <-done:
			if v, ok := metricValue(fams, "eventbus_redis_up"); !ok || v != 0 {
				t.Errorf("%s: redis_up %v (present %v), want 0", down.name, v, ok)
			}
			if _, ok := fams["eventbus_stream_length"]; ok {
				t.Errorf("%s: stream lengths reported while Redis is down", down.name)
			}
		case <-time.After(30 * time.Second): // a hang guard, not a speed target
			t.Fatalf("%s: the scrape did not answer", down.name)
		}
		down.back()
		waitFor(t, 30*time.Second, "redis_up 1 once Redis is back", func() bool {
			v, _ := metricValue(scrape(t, reg), "eventbus_redis_up")
			return v == 1
		})
	}
}
