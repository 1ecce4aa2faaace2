package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hyvve/eventbus"
	"github.com/hyvve/eventbus/internal/redistest"
)

func TestMetricsRoute(t *testing.T) {
	c, prefix := redistest.Shared(t)
	reg := prometheus.NewRegistry()
	bus, err := eventbus.New(eventbus.Config{Redis: c, Prefix: prefix, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.SetUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(bus.Inspector().Collector(eventbus.CollectorOptions{}))
	if _, err := bus.Publish(context.Background(), eventbus.Event{Type: "order.created", TenantID: "tenant-a", UserID: "u"}); err != nil {
		t.Fatal(err)
	}
	scrape := func(url, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name   string
		public bool
		token  string
		want   int
	}{
		{"no token", false, "", http.StatusUnauthorized},
		{"bad token", false, "nope", http.StatusUnauthorized},
		{"viewer token", false, keyViewer, http.StatusOK},
		{"platform token", false, keyPlatform, http.StatusOK},
		{"public, no token", true, "", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(New(bus, Options{Auth: testAuth(), Metrics: reg, MetricsPublic: tc.public}))
			defer srv.Close()
			code, body := scrape(srv.URL, tc.token)
			if code != tc.want {
				t.Fatalf("GET /metrics = %d %s, want %d", code, body, tc.want)
			}
			if code != http.StatusOK {
				return
			}
			p := expfmt.NewTextParser(model.UTF8Validation)
			fams, err := p.TextToMetricFamilies(strings.NewReader(body))
			if err != nil {
				t.Fatalf("the exposition does not parse: %v", err)
			}
			for _, name := range []string{"eventbus_events_published_total", "eventbus_redis_up", "eventbus_stream_length"} {
				if fams[name] == nil {
					t.Errorf("%s missing from the exposition", name)
				}
			}
			if up := fams["eventbus_redis_up"].GetMetric(); len(up) != 1 || up[0].GetGauge().GetValue() != 1 {
				t.Errorf("eventbus_redis_up = %v, want 1", up)
			}
		})
	}
	// Without a registry there is no /metrics route.
	srv := httptest.NewServer(New(bus, Options{Auth: testAuth()}))
	defer srv.Close()
	if code, _ := scrape(srv.URL, keyPlatform); code != http.StatusNotFound {
		t.Errorf("GET /metrics without Options.Metrics = %d, want 404", code)
	}
}
