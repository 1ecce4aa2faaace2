package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/auth"
	"github.com/hyvve/eventbus/internal/httpapi"
	"github.com/hyvve/eventbus/internal/rdb"
	"github.com/hyvve/eventbus/internal/redistest"
)

// The API keys of the test server.
const (
	platformKey = "platform-admin-key-0001"
	tenantKey   = "tenant-a-admin-key-0001"
	viewerKey   = "tenant-a-viewer-key-001"
)

// waitTimeout bounds every polled condition: generous, for a loaded
// 2-core machine.
const waitTimeout = 60 * time.Second

// The one browser of the package: started on first use, stopped in
// TestMain.
var (
	browserOnce   sync.Once
	browserCtx    context.Context
	browserErr    error
	stopBrowser   = func() {}
	screensOnce   sync.Once
	screensDir    string
	screensDirErr error
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopBrowser()
	os.Exit(code)
}

// chromiumPath finds the browser: $EVENTBUS_CHROMIUM, else chromium or
// chromium-browser or google-chrome on the PATH.
func chromiumPath() (string, error) {
	if p := os.Getenv("EVENTBUS_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on the PATH (install Debian's chromium package, or set EVENTBUS_CHROMIUM)")
}

// newTab opens a tab of the shared browser for t; a missing browser fails
// the test (it skips only under -short).
func newTab(t *testing.T) context.Context {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests skipped under -short")
	}
	browserOnce.Do(func() {
		path, err := chromiumPath()
		if err != nil {
			browserErr = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
			chromedp.WindowSize(1280, 900))
		alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelCtx := chromedp.NewContext(alloc)
		if err := chromedp.Do(ctx); err != nil { // starts the browser, no timeout
			cancelCtx()
			cancelAlloc()
			browserErr = fmt.Errorf("starting %s: %w", path, err)
			return
		}
		browserCtx = ctx
		stopBrowser = func() { cancelCtx(); cancelAlloc() }
	})
	if browserErr != nil {
		t.Fatalf("browser: %v", browserErr)
	}
	ctx, cancel := chromedp.NewContext(browserCtx)
	t.Cleanup(cancel)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelT)
	return ctx
}

// fixture is a real API server (httpapi over a bus on the shared Redis)
// with a consumer: handler "billing" on ops.* fails permanently while
// failing is set and counts its successful runs; handler "audit" on every
// event succeeds. bus.Run runs the replay runner.
type fixture struct {
	srv     *httptest.Server
	failing atomic.Bool
	billed  atomic.Int64
}

func newFixture(t *testing.T) *fixture { t.Helper(); return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with the bus's Config changed by mutate.
func newFixtureWith(t *testing.T, mutate func(*eventbus.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	c, prefix := redistest.Shared(t)
	cfg := eventbus.Config{Redis: c, Prefix: prefix, Block: 100 * time.Millisecond}
	if mutate != nil {
		mutate(&cfg)
	}
	bus, err := eventbus.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.SetUp(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{}
	cons, err := bus.NewConsumer(eventbus.ConsumerConfig{
		RetryPollInterval: 20 * time.Millisecond, ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Handle("billing", "ops.*", eventbus.HandlerFunc(func(context.Context, eventbus.Event) error {
		if f.failing.Load() {
			return eventbus.Permanent(errors.New("card declined: insufficient funds"))
		}
		f.billed.Add(1)
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	if err := cons.Handle("audit", "*", eventbus.HandlerFunc(func(context.Context, eventbus.Event) error { return nil })); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = cons.Run(runCtx) }()
	go func() { defer wg.Done(); _ = bus.Run(runCtx) }()
	keys, err := auth.ParseAPIKeys(platformKey + "=*:admin," + tenantKey + "=tenant-a:admin," + viewerKey + "=tenant-a:viewer")
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(httpapi.New(bus, httpapi.Options{Auth: auth.New("", keys)}))
	t.Cleanup(func() {
		f.srv.CloseClientConnections()
		f.srv.Close()
		stop()
		wg.Wait()
	})
	waitFor(t, "the consumer registered", func() bool {
		var res struct{ Items []json.RawMessage }
		return f.call(t, platformKey, "GET", "/admin/consumers", nil, &res) == http.StatusOK && len(res.Items) > 0
	})
	return f
}

// call sends one API request and decodes the JSON answer into out.
func (f *fixture) call(t *testing.T, token, method, path string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, res.StatusCode, raw, err)
		}
	}
	return res.StatusCode
}

// publish publishes one event through the API and returns its id.
func (f *fixture) publish(t *testing.T, typ, tenant string) string {
	t.Helper()
	var res struct{ ID string }
	ev := map[string]any{"type": typ, "tenantId": tenant, "userId": "u1", "data": map[string]any{"amount": 12}}
	if code := f.call(t, platformKey, "POST", "/v1/events", ev, &res); code != http.StatusCreated || res.ID == "" {
		t.Fatalf("publishing %s for %s: status %d, id %q", typ, tenant, code, res.ID)
	}
	return res.ID
}

// deadLettered waits until the DLQ holds event id.
func (f *fixture) deadLettered(t *testing.T, id string) {
	t.Helper()
	waitFor(t, "event "+id+" dead-lettered", func() bool {
		var res struct{ EventID string }
		return f.call(t, platformKey, "GET", "/admin/events/dlq/"+id, nil, &res) == http.StatusOK
	})
}

// waitFor polls cond every 50 ms until it holds or waitTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run runs browser actions, failing t with what on error.
func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS polls a JavaScript predicate in the page until it is truthy.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+expr+")",
		chromedp.WithPollingTimeout(waitTimeout), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		errText, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[data-testid=error]')?.textContent || ''`))
		screenshot(t, ctx, "failed")
		t.Fatalf("waiting for %s: %v (page error region: %q)", what, err, errText)
	}
}

// login opens the dashboard at page and logs in with token.
func login(t *testing.T, ctx context.Context, f *fixture, token, page string) {
	t.Helper()
	run(t, ctx, "logging in",
		chromedp.Navigate(f.srv.URL+"/#/"+page),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=login-token]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=login-token]`), token),
		chromedp.Click(chromedp.CSS(`[data-testid=login-submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=whoami]`)))
}

// gotoPage switches the dashboard to page by its hash route.
func gotoPage(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	run(t, ctx, "opening "+page, chromedp.Click(chromedp.CSS(`[data-testid=nav-`+page+`]`)))
}

// screenshot saves the viewport as <test>-<name>.png in the package's
// screenshot directory, printed with t.Log.
func screenshot(t *testing.T, ctx context.Context, name string) []byte {
	t.Helper()
	screensOnce.Do(func() { screensDir, screensDirErr = os.MkdirTemp("", "eventbus-screens-") })
	if screensDirErr != nil {
		t.Fatal(screensDirErr)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return nil
	}
	file := filepath.Join(screensDir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name+".png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", file)
	return png
}

func TestOverviewCountsChange(t *testing.T) {
	f := newFixture(t)
	ctx := newTab(t)
	login(t, ctx, f, platformKey, "overview")
	waitJS(t, ctx, "the health badge", `document.querySelector('[data-testid=health-badge]')?.textContent === 'healthy'`)
	waitJS(t, ctx, "the last-hour card", `/^\d+$/.test(document.querySelector('[data-testid=card-last-hour]')?.textContent)`)
	before := eval[string](t, ctx, `document.querySelector('[data-testid=card-last-hour]').textContent`)
	var n0 int
	fmt.Sscan(before, &n0)
	for range 3 {
		f.publish(t, "shop.order.created", "tenant-a")
	}
	waitJS(t, ctx, "the last-hour card to count 3 more events (the page refreshes every 5 s)",
		fmt.Sprintf(`Number(document.querySelector('[data-testid=card-last-hour]').textContent) >= %d`, n0+3))
	waitJS(t, ctx, "the stream length card", `Number(document.querySelector('[data-testid=card-stream]').textContent) >= 3`)
	// The chart: 60 bars per minute, the minute of the publishes not
	// empty: the last bar, or the one before when a minute has begun
	// since; the toggle switches to 24 bars per hour.
	waitJS(t, ctx, "60 bars per minute, the minute of the publishes counting", `(() => { const r = document.querySelectorAll('[data-testid=chart-svg] rect'); return r.length === 60 && (Number(r[59].getAttribute('height')) > 0 || Number(r[58].getAttribute('height')) > 0); })()`)
	run(t, ctx, "toggling the chart", chromedp.Click(chromedp.CSS(`[data-testid=chart-toggle]`)))
	waitJS(t, ctx, "24 bars per hour", `document.querySelectorAll('[data-testid=chart-svg] rect').length === 24`)
	run(t, ctx, "toggling back", chromedp.Click(chromedp.CSS(`[data-testid=chart-toggle]`)))
	waitJS(t, ctx, "60 bars again", `document.querySelectorAll('[data-testid=chart-svg] rect').length === 60`)
	if eval[bool](t, ctx, `!document.querySelector('[data-testid=partitions]').hidden || !!document.querySelector('[data-testid=card-partitions]')`) {
		t.Fatal("one partition, yet the overview shows partitions")
	}
	png := screenshot(t, ctx, "overview")
	if os.Getenv("EVENTBUS_SCREENSHOT_DOC") == "1" && png != nil {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "dashboard.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeadLetterRetryFromPage(t *testing.T) {
	f := newFixture(t)
	f.failing.Store(true)
	id := f.publish(t, "ops.invoice.failed", "tenant-a")
	f.deadLettered(t, id)
	ctx := newTab(t)
	login(t, ctx, f, platformKey, "dlq")
	row := fmt.Sprintf(`tr[data-testid=dlq-row][data-event-id=%q]`, id)
	waitJS(t, ctx, "the dead letter in the table", `document.querySelector('`+row+`')`)
	// Its detail: the error history and the envelope.
	run(t, ctx, "opening the detail", chromedp.Click(chromedp.CSS(row+` [data-testid=dlq-open]`)))
	waitJS(t, ctx, "the error history", `document.querySelector('[data-testid=dlq-error]')?.textContent.includes('card declined')`)
	waitJS(t, ctx, "the envelope", `document.querySelector('[data-testid=dlq-envelope]')?.textContent.includes(`+fmt.Sprintf("%q", id)+`)`)
	screenshot(t, ctx, "dlq")

	f.failing.Store(false)
	run(t, ctx, "retrying", chromedp.Click(chromedp.CSS(row+` [data-testid=dlq-retry]`)))
	waitJS(t, ctx, "the dead letter to leave the table", `!document.querySelector('`+row+`')`)
	waitJS(t, ctx, "the retry notice", `document.querySelector('[data-testid=dlq-notice]')?.textContent.includes('Retried')`)
	waitFor(t, "the billing handler to run again", func() bool { return f.billed.Load() >= 1 })
	screenshot(t, ctx, "retried")
}

func TestDeadLetterBulkPurgeConfirms(t *testing.T) {
	f := newFixture(t)
	f.failing.Store(true)
	keep := f.publish(t, "ops.keep.failed", "tenant-a")
	gone := []string{f.publish(t, "ops.purge.failed", "tenant-a"), f.publish(t, "ops.purge.failed", "tenant-a")}
	for _, id := range append([]string{keep}, gone...) {
		f.deadLettered(t, id)
	}
	ctx := newTab(t)
	login(t, ctx, f, platformKey, "dlq")
	waitJS(t, ctx, "three dead letters", `document.querySelectorAll('[data-testid=dlq-row]').length === 3`)
	run(t, ctx, "filtering by type",
		chromedp.SendKeys(chromedp.CSS(`[data-testid=dlq-filter-type]`), "ops.purge.*"),
		chromedp.Click(chromedp.CSS(`[data-testid=dlq-apply]`)))
	waitJS(t, ctx, "two matching rows", `document.querySelectorAll('[data-testid=dlq-row]').length === 2`)
	run(t, ctx, "bulk purge", chromedp.Click(chromedp.CSS(`[data-testid=dlq-bulk-purge]`)))
	waitJS(t, ctx, "the confirmation dialog with the dry-run count",
		`document.querySelector('dialog[open] [data-testid=confirm-text]')?.textContent.includes('2 dead letter(s)')`)
	screenshot(t, ctx, "confirm")
	run(t, ctx, "confirming", chromedp.Click(chromedp.CSS(`[data-testid=confirm-ok]`)))
	waitJS(t, ctx, "the purge notice", `document.querySelector('[data-testid=dlq-notice]')?.textContent.includes('Purged 2')`)
	waitJS(t, ctx, "the rows gone", `document.querySelectorAll('[data-testid=dlq-row]').length === 0`)
	var res struct{ Items []struct{ EventID string } }
	f.call(t, platformKey, "GET", "/admin/events/dlq", nil, &res)
	if len(res.Items) != 1 || res.Items[0].EventID != keep {
		t.Fatalf("after the purge the DLQ holds %+v, want only %s", res.Items, keep)
	}
}

func TestReplayFromForm(t *testing.T) {
	f := newFixture(t)
	for range 5 {
		f.publish(t, "shop.order.created", "tenant-a")
	}
	ctx := newTab(t)
	login(t, ctx, f, platformKey, "replay")
	run(t, ctx, "filling the replay form",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=replay-form]`)),
		chromedp.SetValue(chromedp.CSS(`[data-testid=replay-to]`), time.Now().Add(time.Minute).UTC().Format(time.RFC3339)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=replay-types]`), "shop.*"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=replay-handlers]`), "audit"),
		chromedp.Click(chromedp.CSS(`[data-testid=replay-submit]`)))
	waitJS(t, ctx, "the job started", `document.querySelector('[data-testid=replay-notice]')?.textContent.startsWith('Started job')`)
	waitJS(t, ctx, "the job to reach 100 %",
		`[...document.querySelectorAll('[data-testid=replay-row]')].some(r => r.dataset.status === 'completed' && r.querySelector('[data-testid=replay-progress]').textContent === '100 %')`)
	screenshot(t, ctx, "replay")
}

func TestTenantAndViewerScoping(t *testing.T) {
	f := newFixture(t)
	for _, tenant := range []string{"tenant-a", "tenant-b"} {
		f.publish(t, "shop.order.created", tenant)
	}
	f.failing.Store(true)
	a := f.publish(t, "ops.a.failed", "tenant-a")
	b := f.publish(t, "ops.b.failed", "tenant-b")
	f.deadLettered(t, a)
	f.deadLettered(t, b)

	onlyA := func(rows string) string {
		return `(() => { const r = [...document.querySelectorAll('[data-testid=` + rows + `]')]; return r.length > 0 && r.every(x => x.dataset.tenant === 'tenant-a'); })()`
	}
	t.Run("tenant admin", func(t *testing.T) {
		ctx := newTab(t)
		login(t, ctx, f, tenantKey, "events")
		waitJS(t, ctx, "tenant-a events only", onlyA("event-row"))
		gotoPage(t, ctx, "dlq")
		waitJS(t, ctx, "tenant-a dead letters only", onlyA("dlq-row"))
		if n := eval[int](t, ctx, `document.querySelectorAll('[data-testid=dlq-row]').length`); n != 1 {
			t.Fatalf("tenant-a admin sees %d dead letters, want 1", n)
		}
		waitJS(t, ctx, "the admin's retry button", `document.querySelector('[data-testid=dlq-retry]')`)
		screenshot(t, ctx, "tenant-dlq")
	})
	t.Run("viewer", func(t *testing.T) {
		ctx := newTab(t)
		login(t, ctx, f, viewerKey, "events")
		waitJS(t, ctx, "tenant-a events only", onlyA("event-row"))
		waitJS(t, ctx, "the read-only mark", `document.querySelector('[data-testid=whoami]').textContent.includes('read only')`)
		actions := `document.querySelectorAll('[data-testid=dlq-retry],[data-testid=dlq-delete],[data-testid=dlq-bulk-retry],[data-testid=dlq-bulk-purge],[data-testid=replay-submit],[data-testid=replay-cancel]').length`
		for _, page := range []string{"overview", "dlq", "replay", "tail"} {
			gotoPage(t, ctx, page)
			waitJS(t, ctx, page+" rendered", `document.querySelector('#page h2')?.textContent && document.querySelector('nav a[aria-current=page]')?.dataset.testid === 'nav-`+page+`'`)
			if n := eval[int](t, ctx, actions); n != 0 {
				screenshot(t, ctx, page)
				t.Fatalf("viewer sees %d action buttons on %s", n, page)
			}
		}
		gotoPage(t, ctx, "overview")
		waitJS(t, ctx, "the overview note for non-admins", `document.querySelector('[data-testid=overview-note]')`)
		screenshot(t, ctx, "viewer")
	})
}

func TestLiveTailShowsNewEvent(t *testing.T) {
	f := newFixture(t)
	ctx := newTab(t)
	login(t, ctx, f, platformKey, "tail")
	waitJS(t, ctx, "the tail connected", `document.querySelector('[data-testid=tail-status]')?.textContent === 'connected'`)
	id := f.publish(t, "shop.order.created", "tenant-a")
	waitJS(t, ctx, "the new event in the tail", fmt.Sprintf(`document.querySelector('tr[data-testid=tail-row][data-event-id=%q]')`, id))

	// Paused, new events are held; resumed, they show.
	run(t, ctx, "pausing", chromedp.Click(chromedp.CSS(`[data-testid=tail-pause]`)))
	held := f.publish(t, "shop.order.shipped", "tenant-a")
	waitJS(t, ctx, "the held count", `document.querySelector('[data-testid=tail-count]').textContent.includes('1 held')`)
	if eval[bool](t, ctx, fmt.Sprintf(`!!document.querySelector('tr[data-event-id=%q]')`, held)) {
		t.Fatal("a paused tail showed a new event")
	}
	run(t, ctx, "resuming", chromedp.Click(chromedp.CSS(`[data-testid=tail-pause]`)))
	waitJS(t, ctx, "the held event shown", fmt.Sprintf(`document.querySelector('tr[data-event-id=%q]')`, held))
	screenshot(t, ctx, "tail")
	run(t, ctx, "clearing", chromedp.Click(chromedp.CSS(`[data-testid=tail-clear]`)))
	waitJS(t, ctx, "the tail cleared", `document.querySelectorAll('[data-testid=tail-row]').length === 0`)
}

func TestEventDetailConsumersAndErrors(t *testing.T) {
	f := newFixture(t)
	f.failing.Store(true)
	id := f.publish(t, "ops.order.paid", "tenant-a")
	f.deadLettered(t, id)
	ctx := newTab(t)
	login(t, ctx, f, platformKey, "events")
	row := fmt.Sprintf(`tr[data-testid=event-row][data-event-id=%q]`, id)
	waitJS(t, ctx, "the event in the list", `document.querySelector('`+row+`')`)
	run(t, ctx, "opening the event", chromedp.Click(chromedp.CSS(row+` [data-testid=event-open]`)))
	waitJS(t, ctx, "the envelope", fmt.Sprintf(`document.querySelector('[data-testid=event-envelope]')?.textContent.includes(%q)`, id))
	waitJS(t, ctx, "the state", `document.querySelector('[data-testid=event-state]')?.textContent.includes('DLQ')`)
	waitJS(t, ctx, "the failed handler's status", `[...document.querySelectorAll('[data-testid=event-handler]')].some(r => r.textContent.includes('billing') && r.textContent.includes('dlq') && r.textContent.includes('card declined'))`)
	screenshot(t, ctx, "event")

	// A filter the API refuses: its message shows in the error region.
	run(t, ctx, "a bad time filter",
		chromedp.SendKeys(chromedp.CSS(`#ev-from`), "not a time"),
		chromedp.Click(chromedp.CSS(`[data-testid=events-apply]`)))
	waitJS(t, ctx, "the API's error in the page", `(() => { const e = document.querySelector('[data-testid=error]'); return !e.hidden && e.textContent.includes('400'); })()`)
	screenshot(t, ctx, "error")

	gotoPage(t, ctx, "consumers")
	waitJS(t, ctx, "the consumer with its handlers", `[...document.querySelectorAll('[data-testid=consumer-row]')].some(r => r.textContent.includes('billing') && r.textContent.includes('audit'))`)
	screenshot(t, ctx, "consumers")
}

func TestOverviewPartitions(t *testing.T) {
	f := newFixtureWith(t, func(cfg *eventbus.Config) { cfg.Partitions = 8 })
	tenants := []string{"tenant-a", "tenant-b", "tenant-c", "tenant-d", "tenant-e"}
	for _, tn := range tenants {
		f.publish(t, "shop.order.created", tn)
	}
	ctx := newTab(t)
	login(t, ctx, f, platformKey, "overview")
	// 8 partitions and the shared one (the un-partitioned legacy stream).
	waitJS(t, ctx, "the partitions card", `document.querySelector('[data-testid=card-partitions]')?.textContent === '9'`)
	waitJS(t, ctx, "nine partition rows", `document.querySelectorAll('[data-testid=partitions-table] [data-testid=partition-row]').length === 9`)
	// Each row: index, role, stream, length, lag, pending, DLQ; the
	// lengths sum to the stream-length card and to the events published.
	sum := `[...document.querySelectorAll('[data-testid=partition-row]')].reduce((s, r) => s + Number(r.children[3].textContent), 0)`
	waitJS(t, ctx, "the partition lengths summing to the stream length card",
		fmt.Sprintf(`%s === %d && Number(document.querySelector('[data-testid=card-stream]').textContent) === %d`, sum, len(tenants), len(tenants)))
	rows := eval[[]string](t, ctx, `[...document.querySelectorAll('[data-testid=partition-row]')].map(r => [...r.children].map(c => c.textContent).join('|'))`)
	if !strings.HasPrefix(rows[0], "0|write|") || !strings.Contains(rows[0], ":p0:events:main") || !strings.HasPrefix(rows[8], "8|shared|") {
		t.Fatalf("partition rows %q", rows)
	}
	screenshot(t, ctx, "partitions")
}

// TestOverviewUnreadablePartition: a partition whose stream cannot be read
// (here a key of the wrong type in its place, as a master away would
// answer with an error) is drawn with its error, and the partitions card
// says the totals leave it out.
func TestOverviewUnreadablePartition(t *testing.T) {
	var rc redis.UniversalClient
	var prefix string
	f := newFixtureWith(t, func(cfg *eventbus.Config) { cfg.Partitions = 4; rc, prefix = cfg.Redis, cfg.Prefix })
	main2 := rdb.NewPartitionedKeys(prefix, false, 4, 0).Partition(2).Main()
	if err := rc.Del(context.Background(), main2).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Set(context.Background(), main2, "not a stream", 0).Err(); err != nil {
		t.Fatal(err)
	}
	ctx := newTab(t)
	login(t, ctx, f, platformKey, "overview")
	waitJS(t, ctx, "partition 2 drawn with its error",
		`document.querySelector('[data-testid=partition-row][data-index="2"] [data-testid=partition-error]')?.textContent.includes('could not be read')`)
	waitJS(t, ctx, "the partitions card saying the totals leave it out",
		`document.querySelector('[data-testid=card-partitions]')?.parentElement.textContent.includes('could not be read')`)
	if n := eval[int](t, ctx, `document.querySelectorAll('[data-testid=partition-error]').length`); n != 1 {
		t.Errorf("%d partitions drawn with an error, want 1", n)
	}
	screenshot(t, ctx, "unreadable-partition")
}
