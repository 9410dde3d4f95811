// Package docsui serves a Swagger UI page for an OpenAPI spec with every
// asset embedded in the binary, so API docs work on a cluster with no way to
// a CDN.
//
// Mount the handler for the page and its assets on an http.ServeMux:
//
//	h := docsui.Handler("Orders API", "/openapi.json")
//	mux.Handle("GET /docs", h)
//	mux.Handle("GET /docs/", h)
package docsui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// The Swagger UI files come from the npm package swagger-ui-dist; update.sh
// refreshes them and swagger-ui/VERSION records which version they are.
//
//go:embed init.js swagger-ui/swagger-ui-bundle.js swagger-ui/swagger-ui.css
var files embed.FS

// Inline styles stay allowed because Swagger UI sets style attributes from
// React; scripts come only from this origin, so the page has no inline script.
const contentSecurityPolicy = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"

type asset struct {
	body        []byte
	contentType string
	// hash names this content: the page asks for the asset with ?v=hash, so
	// a response can be cached for good without outliving a new binary.
	hash string
}

var assets = map[string]asset{
	"swagger-ui-bundle.js": load("swagger-ui/swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
	"swagger-ui.css":       load("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
	"init.js":              load("init.js", "text/javascript; charset=utf-8"),
}

func load(name, contentType string) asset {
	body, err := files.ReadFile(name)
	if err != nil {
		panic("docsui: embedded file missing: " + name)
	}
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: contentType, hash: hex.EncodeToString(sum[:8])}
}

var page = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/docs/swagger-ui.css?v={{.CSS}}">
</head>
<body>
<div id="swagger-ui" data-spec-url="{{.SpecURL}}"></div>
<script src="/docs/swagger-ui-bundle.js?v={{.Bundle}}"></script>
<script src="/docs/init.js?v={{.Init}}"></script>
</body>
</html>
`))

// Handler serves the docs page at /docs, showing the OpenAPI spec found at
// specURL under the given title, and its assets under /docs/. Any other path
// under /docs/ is not found; methods other than GET and HEAD are refused.
func Handler(title, specURL string) http.Handler {
	var buf bytes.Buffer
	err := page.Execute(&buf, map[string]string{
		"Title":   title,
		"SpecURL": specURL,
		"CSS":     assets["swagger-ui.css"].hash,
		"Bundle":  assets["swagger-ui-bundle.js"].hash,
		"Init":    assets["init.js"].hash,
	})
	if err != nil {
		// The template is fixed and its data are strings: this cannot fail
		// unless the template itself is broken.
		panic("docsui: render page: " + err.Error())
	}
	html := buf.Bytes()

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")

		if r.URL.Path == "/docs" {
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Cache-Control", "no-cache")
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(html))
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, "/docs/")
		a, found := assets[name]
		if !ok || !found {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", a.contentType)
		h.Set("ETag", `"`+a.hash+`"`)
		// During a rolling update a page from a new binary may ask an old one
		// for an asset; only the content the URL names may be kept for good.
		if r.URL.Query().Get("v") == a.hash {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}
