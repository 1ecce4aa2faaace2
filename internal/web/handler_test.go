package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hyvve/eventbus/internal/web"
)

func TestHandlerServesEmbeddedFiles(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		path, method string
		status       int
		ctype, body  string
	}{
		{"/", "GET", 200, "text/html; charset=utf-8", `<script type="module" src="/assets/app.js">`},
		{"/assets/app.js", "GET", 200, "text/javascript; charset=utf-8", "import"},
		{"/assets/lib.js", "GET", 200, "text/javascript; charset=utf-8", "export async function api"},
		{"/assets/app.css", "GET", 200, "text/css; charset=utf-8", "prefers-color-scheme"},
		{"/assets/dlq.js", "HEAD", 200, "text/javascript; charset=utf-8", ""},
		{"/assets/nope.js", "GET", 404, "", ""},
		{"/assets/../web.go", "GET", 404, "", ""},
		{"/web.go", "GET", 404, "", ""},
		{"/", "POST", 405, "", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if tc.status != 200 {
				return
			}
			if got := res.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if got := res.Header.Get("Content-Security-Policy"); !strings.HasPrefix(got, "default-src 'self'") {
				t.Errorf("Content-Security-Policy %q, want default-src 'self'", got)
			}
			if got := res.Header.Get("Cache-Control"); got != "max-age=60" {
				t.Errorf("Cache-Control %q", got)
			}
			if !strings.Contains(string(body), tc.body) {
				t.Errorf("body lacks %q", tc.body)
			}
		})
	}
}
