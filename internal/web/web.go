// Package web serves the dashboard: plain HTML, CSS and JavaScript
// embedded in the binary.
//
// This file is a placeholder so that internal/httpapi compiles before the
// dashboard exists; the dashboard's own web.go replaces it.
package web

import "net/http"

const placeholder = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>eventbus</title></head>
<body><h1>eventbus</h1><p>The dashboard is not built into this binary yet.</p></body></html>
`

// Handler serves the dashboard: GET / (the page) and GET /assets/ (its
// files). The page holds no data: every data call it makes goes through
// the authenticated HTTP API.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(placeholder))
	})
}
