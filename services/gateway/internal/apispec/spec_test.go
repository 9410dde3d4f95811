package apispec_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"shop/services/gateway/internal/apispec"
	"shop/services/gateway/internal/proxy"
	"shop/services/gateway/internal/upstreamtest"
	"shop/services/platform/web"
)

// specServer serves a spec that a test can change, break or slow down, and
// counts the fetches.
type specServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	body    []byte
	status  int
	hang    bool
}

func newSpecServer(t *testing.T, doc map[string]any) *specServer {
	s := &specServer{status: http.StatusOK}
	s.set(t, doc)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, status, hang := s.body, s.status, s.hang
		s.mu.Unlock()
		if hang {
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/openapi+json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *specServer) set(t *testing.T, doc map[string]any) {
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body, s.status = b, http.StatusOK
	s.mu.Unlock()
}

func (s *specServer) fail(status int, body string) {
	s.mu.Lock()
	s.body, s.status = []byte(body), status
	s.mu.Unlock()
}

func newSpec(t *testing.T, opts apispec.Options, sources ...apispec.Source) *apispec.Spec {
	t.Helper()
	api := web.NewAPI(http.NewServeMux(), "Shop API", "The shop.")
	web.NewHealth().Register(api)
	s, err := apispec.New(api.OpenAPI(), sources, proxy.Routed, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// waitComplete polls until s serves its spec.
func waitComplete(t *testing.T, s *apispec.Spec) {
	t.Helper()
	eventually(t, 5*time.Second, func() bool { return s.Check(context.Background()) == nil }, "the spec never became complete")
}

func get(t *testing.T, h http.HandlerFunc, header http.Header) (*http.Response, []byte) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/openapi.json", nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h(w, r)
	resp := w.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func getDoc(t *testing.T, s *apispec.Spec) map[string]any {
	t.Helper()
	resp, body := get(t, s.ServeJSON, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("decode spec: %v\n%s", err, body)
	}
	return doc
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSpecServesMergedJSONAndYAML(t *testing.T) {
	orders := upstreamtest.NewOrders(t)
	payments := upstreamtest.NewPayments(t)
	s := newSpec(t, apispec.Options{},
		apispec.Source{Name: "orders", URL: orders.URL + "/openapi.json"},
		apispec.Source{Name: "payments", URL: payments.URL + "/openapi.json"})
	waitComplete(t, s)

	resp, js := get(t, s.ServeJSON, nil)
	if ct := resp.Header.Get("Content-Type"); ct != "application/openapi+json" {
		t.Errorf("JSON content type %q", ct)
	}
	var doc map[string]any
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	want := []string{"/accounts", "/accounts/top-up", "/accounts/{user_id}/balance", "/health", "/orders", "/orders/{order_id}"}
	if got := keys(doc["paths"]); !slices.Equal(got, want) {
		t.Errorf("paths = %v, want %v", got, want)
	}
	// Every routed operation documents the gateway's own answers.
	for _, code := range []string{"400", "413", "502", "504"} {
		if dig(doc, "paths", "/orders", "post", "responses", code, "content", "application/problem+json", "example", "status") != float64(mustAtoi(t, code)) {
			t.Errorf("POST /orders has no %s answer with an example of its own status", code)
		}
	}
	if dig(doc, "paths", "/orders/{order_id}", "get", "responses", "413") != nil {
		t.Error("GET /orders/{order_id} documents 413, but it takes no body")
	}

	// OpenAPI 3.0 for the tools that need it: the same operations.
	resp, js30 := get(t, s.ServeJSON30, nil)
	var doc30 map[string]any
	if err := json.Unmarshal(js30, &doc30); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("3.0 spec: %d, %v", resp.StatusCode, err)
	}
	if doc30["openapi"] != "3.0.3" || !slices.Equal(keys(doc30["paths"]), want) {
		t.Errorf("3.0 spec: openapi %v, paths %v", doc30["openapi"], keys(doc30["paths"]))
	}

	resp, y := get(t, s.ServeYAML, nil)
	if ct := resp.Header.Get("Content-Type"); ct != "application/openapi+yaml" {
		t.Errorf("YAML content type %q", ct)
	}
	fromYAML, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("YAML does not parse: %v", err)
	}
	var yamlDoc map[string]any
	if err := json.Unmarshal(fromYAML, &yamlDoc); err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(t, yamlDoc, doc) {
		t.Error("YAML and JSON specs differ")
	}

	// A client that has the current spec gets 304.
	resp, _ = get(t, s.ServeJSON, http.Header{"If-None-Match": {resp.Header.Get("ETag")}})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("If-None-Match with the YAML's ETag on JSON: status %d, want 200", resp.StatusCode)
	}
	resp, _ = get(t, s.ServeJSON, nil)
	resp, _ = get(t, s.ServeJSON, http.Header{"If-None-Match": {resp.Header.Get("ETag")}})
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d, want 304", resp.StatusCode)
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestSpecRefreshes(t *testing.T) {
	orders := newSpecServer(t, fetchSpec(t, upstreamtest.NewOrders(t)))
	s := newSpec(t, apispec.Options{TTL: 20 * time.Millisecond}, apispec.Source{Name: "orders", URL: orders.URL})
	waitComplete(t, s)
	if _, ok := dig(getDoc(t, s), "paths", "/orders").(map[string]any); !ok {
		t.Fatal("no /orders in the first spec")
	}
	// A change upstream shows soon, without a client waiting for it.
	changed := fetchSpec(t, upstreamtest.NewOrders(t))
	delete(changed["paths"].(map[string]any), "/orders")
	orders.set(t, changed)
	eventually(t, 5*time.Second, func() bool { return dig(getDoc(t, s), "paths", "/orders") == nil },
		"the spec never showed the upstream's change")
}

// TestSpecWaitsForEveryUpstream checks that the gateway never serves a
// partial description: 503 (and not ready) until every upstream's spec was
// fetched, retried in the background; afterwards an upstream that fails
// leaves the complete spec in place.
func TestSpecWaitsForEveryUpstream(t *testing.T) {
	good := fetchSpec(t, upstreamtest.NewOrders(t))
	tests := []struct {
		name    string
		breakIt func(s *specServer)
	}{
		{"answers 500", func(s *specServer) { s.fail(http.StatusInternalServerError, "boom") }},
		{"answers something not OpenAPI", func(s *specServer) { s.fail(http.StatusOK, `{"hello":"world"}`) }},
		{"hangs", func(s *specServer) { s.mu.Lock(); s.hang = true; s.mu.Unlock() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orders := newSpecServer(t, good)
			tt.breakIt(orders)
			payments := upstreamtest.NewPayments(t)
			s := newSpec(t, apispec.Options{TTL: 10 * time.Millisecond, RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond, FetchTimeout: 100 * time.Millisecond},
				apispec.Source{Name: "orders", URL: orders.URL},
				apispec.Source{Name: "payments", URL: payments.URL + "/openapi.json"})

			// Several attempts fail: still 503, still not ready.
			eventually(t, 5*time.Second, func() bool { return orders.fetches.Load() >= 3 }, "the spec is not retried")
			for _, serve := range []http.HandlerFunc{s.ServeJSON, s.ServeYAML, s.ServeJSON30, s.ServeYAML30} {
				resp, body := get(t, serve, nil)
				if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
					resp.Header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("with orders failing: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
				}
			}
			if s.Check(context.Background()) == nil {
				t.Error("ready without the orders spec")
			}

			// The upstream recovers: the complete spec is served.
			orders.mu.Lock()
			orders.hang = false
			orders.mu.Unlock()
			orders.set(t, good)
			waitComplete(t, s)
			want := []string{"/accounts", "/accounts/top-up", "/accounts/{user_id}/balance", "/health", "/orders", "/orders/{order_id}"}
			if got := keys(getDoc(t, s)["paths"]); !slices.Equal(got, want) {
				t.Errorf("paths = %v, want %v", got, want)
			}

			// It fails again: the complete spec stays.
			before := orders.fetches.Load()
			tt.breakIt(orders)
			eventually(t, 5*time.Second, func() bool { return orders.fetches.Load() >= before+2 }, "the spec is not refreshed")
			if got := keys(getDoc(t, s)["paths"]); !slices.Equal(got, want) {
				t.Errorf("after orders failed again: paths = %v, want %v", got, want)
			}
			if strings.Contains(mustJSON(t, getDoc(t, s)), "127.0.0.1") {
				t.Error("the spec names an upstream's address")
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustAtoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMain(m *testing.M) {
	// The upstreams these tests break make the spec log warnings; keep the
	// output for failures.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}
