package docsui_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"shop/services/platform/docsui"
)

const wantCSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"

// newMux mounts the handler the way the package comment tells callers to.
func newMux(title, specURL string) *http.ServeMux {
	h := docsui.Handler(title, specURL)
	mux := http.NewServeMux()
	mux.Handle("GET /docs", h)
	mux.Handle("GET /docs/", h)
	return mux
}

func serve(t *testing.T, h http.Handler, method, target string, header http.Header) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return res, string(body)
}

func TestPage(t *testing.T) {
	res, body := serve(t, newMux("Orders API", "/openapi.json"), http.MethodGet, "/docs", nil)

	if res.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", res.StatusCode)
	}
	for name, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": wantCSP,
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-cache",
	} {
		if got := res.Header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	for _, want := range []string{
		"<title>Orders API</title>",
		`data-spec-url="/openapi.json"`,
		`<link rel="stylesheet" href="/docs/swagger-ui.css?v=`,
		`<script src="/docs/swagger-ui-bundle.js?v=`,
		`<script src="/docs/init.js?v=`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	// The CSP forbids inline scripts, so the page must not rely on one.
	if n := strings.Count(body, "<script"); n != strings.Count(body, "<script src=") {
		t.Errorf("page has an inline script:\n%s", body)
	}
}

func TestPageEscapes(t *testing.T) {
	_, body := serve(t, newMux(`<script>alert(1)</script> & "Co"`, `/spec.json?a=1&b="x"`), http.MethodGet, "/docs", nil)

	if strings.Contains(body, "<script>alert") {
		t.Fatalf("title not escaped:\n%s", body)
	}
	for _, want := range []string{
		"<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#34;Co&#34;</title>",
		// html/template treats a data-*-url attribute as a URL.
		`data-spec-url="/spec.json?a=1&amp;b=%22x%22"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
}

// assetURLs returns the asset URLs that the page links, so the test checks
// that what the page asks for is what the handler serves.
func assetURLs(t *testing.T, h http.Handler) []string {
	t.Helper()
	_, body := serve(t, h, http.MethodGet, "/docs", nil)
	var urls []string
	for _, m := range regexp.MustCompile(`(?:href|src)="(/docs/[^"]+)"`).FindAllStringSubmatch(body, -1) {
		urls = append(urls, strings.ReplaceAll(m[1], "&amp;", "&"))
	}
	if len(urls) != 3 {
		t.Fatalf("page links %d assets, want 3: %q", len(urls), urls)
	}
	return urls
}

func TestAssets(t *testing.T) {
	h := newMux("API", "/openapi.json")
	wantType := map[string]string{
		"/docs/swagger-ui.css":       "text/css; charset=utf-8",
		"/docs/swagger-ui-bundle.js": "text/javascript; charset=utf-8",
		"/docs/init.js":              "text/javascript; charset=utf-8",
	}

	for _, url := range assetURLs(t, h) {
		path, _, _ := strings.Cut(url, "?")
		t.Run(path, func(t *testing.T) {
			res, body := serve(t, h, http.MethodGet, url, nil)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200", res.StatusCode)
			}
			if got, want := res.Header.Get("Content-Type"), wantType[path]; got != want {
				t.Errorf("Content-Type = %q, want %q", got, want)
			}
			if got, want := res.Header.Get("Cache-Control"), "public, max-age=31536000, immutable"; got != want {
				t.Errorf("Cache-Control = %q, want %q", got, want)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if len(body) == 0 {
				t.Error("empty body")
			}

			// Without the version the page names, the content may be another
			// binary's: the browser must check again.
			res, _ = serve(t, h, http.MethodGet, path+"?v=old", nil)
			if got := res.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("stale version: Cache-Control = %q, want no-cache", got)
			}

			etag := res.Header.Get("ETag")
			res, _ = serve(t, h, http.MethodGet, path, http.Header{"If-None-Match": {etag}})
			if etag == "" || res.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match %q: status = %d, want 304", etag, res.StatusCode)
			}

			res, body = serve(t, h, http.MethodHead, url, nil)
			if res.StatusCode != http.StatusOK || body != "" {
				t.Errorf("HEAD: status = %d, body %d bytes; want 200 and no body", res.StatusCode, len(body))
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	h := newMux("API", "/openapi.json")
	for _, path := range []string{
		"/docs/",
		"/docs/nope.js",
		"/docs/swagger-ui-bundle.js.map",
		"/docs/swagger-ui/LICENSE",
		"/docs/init.js/x",
		"/docs/swagger-ui/swagger-ui.css",
	} {
		t.Run(path, func(t *testing.T) {
			res, _ := serve(t, h, http.MethodGet, path, nil)
			if res.StatusCode != http.StatusNotFound {
				t.Errorf("status = %d, want 404", res.StatusCode)
			}
		})
	}
}

func TestMethodNotAllowed(t *testing.T) {
	for name, h := range map[string]http.Handler{
		"mounted": newMux("API", "/openapi.json"),
		"bare":    docsui.Handler("API", "/openapi.json"),
	} {
		for _, path := range []string{"/docs", "/docs/init.js"} {
			t.Run(name+path, func(t *testing.T) {
				res, _ := serve(t, h, http.MethodPost, path, nil)
				if res.StatusCode != http.StatusMethodNotAllowed {
					t.Errorf("status = %d, want 405", res.StatusCode)
				}
				if allow := res.Header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "HEAD") {
					t.Errorf("Allow = %q, want GET and HEAD", allow)
				}
			})
		}
	}
}
