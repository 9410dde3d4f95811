package docsui_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"shop/services/platform/docsui"
	"shop/services/platform/docsui/browsertest"
)

// operation is what the docs page shows for one OpenAPI operation.
type operation struct {
	Method  string `json:"method"`
	Path    string `json:"path"`
	Summary string `json:"summary"`
}

// TestBrowserRendersSpec opens the docs page in a real Chromium and checks
// that it renders the operations of a Huma spec with nothing loaded from
// another host. Set DOCSUI_SCREENSHOT to a file name to keep a screenshot.
func TestBrowserRendersSpec(t *testing.T) {
	chromium := browsertest.Chromium(t)

	mux := http.NewServeMux()
	registerWidgetsAPI(mux)
	h := docsui.Handler("Widgets API", "/openapi.json")
	mux.Handle("GET /docs", h)
	mux.Handle("GET /docs/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	want := specOperations(t, srv.URL+"/openapi.json")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ctx = browsertest.New(ctx, t, chromium)

	var (
		mu       sync.Mutex
		requests []string
		errs     []string
	)
	err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			requests = append(requests, ev.Request.URL)
		case *log.EventEntryAdded:
			// CSP violations and failed loads arrive here.
			if ev.Entry.Level == log.EntryLevelError {
				errs = append(errs, string(ev.Entry.Source)+": "+ev.Entry.Text)
			}
		case *runtime.EventExceptionThrown:
			errs = append(errs, "exception: "+ev.ExceptionDetails.Text)
		}
	})
	if err != nil {
		t.Fatalf("start browser: %v", err)
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/docs")); err != nil {
		t.Fatalf("open docs page: %v", err)
	}
	// The operations render once Swagger UI has fetched and parsed the spec;
	// the context's deadline bounds the wait.
	waitFor := `document.querySelectorAll(".opblock").length >= ` + strconv.Itoa(len(want))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](waitFor)); err != nil {
		t.Fatalf("wait for %d operations: %v", len(want), err)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]operation](`[...document.querySelectorAll(".opblock")].map(op => ({
		method: op.querySelector(".opblock-summary-method").textContent.toLowerCase(),
		path: op.querySelector(".opblock-summary-path").dataset.path,
		summary: op.querySelector(".opblock-summary-description").textContent,
	}))`))
	if err != nil {
		t.Fatalf("read operations: %v", err)
	}
	sortOperations(got)
	if !slices.Equal(got, want) {
		t.Errorf("page shows operations\n%v\nwant, as in the spec,\n%v", got, want)
	}

	if name := os.Getenv("DOCSUI_SCREENSHOT"); name != "" {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(name, png, 0o644); err != nil {
			t.Fatalf("save screenshot: %v", err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	for _, u := range requests {
		// data: URLs are the icons inlined in swagger-ui.css.
		if !strings.HasPrefix(u, srv.URL+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("page requested %s, which is not on the test server %s", u, srv.URL)
		}
	}
	if len(requests) == 0 {
		t.Error("saw no network request: the listener is not working")
	}
	for _, e := range errs {
		t.Errorf("browser reported %s", e)
	}
}

// registerWidgetsAPI serves a small OpenAPI 3.1 spec at /openapi.json, built
// by Huma from dummy operations.
func registerWidgetsAPI(mux *http.ServeMux) {
	config := huma.DefaultConfig("Widgets API", "1.0.0")
	config.DocsPath = "" // Huma's own page loads Swagger UI from a CDN.
	api := humago.New(mux, config)

	type widget struct {
		ID   string `json:"id"`
		Name string `json:"name" maxLength:"80"`
	}
	type widgetOutput struct{ Body widget }

	huma.Register(api, huma.Operation{
		OperationID: "list-widgets", Method: http.MethodGet, Path: "/widgets",
		Summary: "List widgets", Tags: []string{"widgets"},
	}, func(context.Context, *struct{}) (*struct{ Body []widget }, error) {
		return &struct{ Body []widget }{}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "get-widget", Method: http.MethodGet, Path: "/widgets/{id}",
		Summary: "Get a widget", Tags: []string{"widgets"},
	}, func(_ context.Context, in *struct {
		ID string `path:"id"`
	}) (*widgetOutput, error) {
		return &widgetOutput{Body: widget{ID: in.ID}}, nil
	})
	huma.Register(api, huma.Operation{
		OperationID: "create-widget", Method: http.MethodPost, Path: "/widgets",
		Summary: "Create a widget", Tags: []string{"widgets"}, DefaultStatus: http.StatusCreated,
	}, func(_ context.Context, in *struct{ Body widget }) (*widgetOutput, error) {
		return &widgetOutput{Body: in.Body}, nil
	})
}

// specOperations reads the operations from the spec the server serves, so
// the browser's view is checked against the spec rather than a copy of it.
func specOperations(t *testing.T, url string) []operation {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("get spec: %v", err)
	}
	defer res.Body.Close()
	var spec struct {
		OpenAPI string                                         `json:"openapi"`
		Paths   map[string]map[string]struct{ Summary string } `json:"paths"`
	}
	if err := json.NewDecoder(res.Body).Decode(&spec); err != nil {
		t.Fatalf("decode spec: %v", err)
	}
	if !strings.HasPrefix(spec.OpenAPI, "3.1") {
		t.Fatalf("spec is OpenAPI %q, want 3.1", spec.OpenAPI)
	}
	var ops []operation
	for path, methods := range spec.Paths {
		for method, op := range methods {
			ops = append(ops, operation{Method: method, Path: path, Summary: op.Summary})
		}
	}
	if len(ops) != 3 {
		t.Fatalf("spec has %d operations, want 3: %v", len(ops), ops)
	}
	sortOperations(ops)
	return ops
}

func sortOperations(ops []operation) {
	slices.SortFunc(ops, func(a, b operation) int {
		return strings.Compare(a.Method+" "+a.Path, b.Method+" "+b.Path)
	})
}
