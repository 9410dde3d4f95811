package apispec_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
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
	api := web.NewAPI(http.NewServeMux(), "Shop API", "0.1.0", "The shop.")
	web.NewHealth().Register(api)
	s, err := apispec.New(api.OpenAPI(), sources, proxy.Routed, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
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
	if doc["x-unavailable"] != nil {
		t.Errorf("x-unavailable = %v with every upstream up", doc["x-unavailable"])
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

func TestSpecCachesAndRefreshes(t *testing.T) {
	orders := newSpecServer(t, fetchSpec(t, upstreamtest.NewOrders(t)))
	s := newSpec(t, apispec.Options{TTL: time.Hour}, apispec.Source{Name: "orders", URL: orders.URL})

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() { getDoc(t, s) })
	}
	wg.Wait()
	if n := orders.fetches.Load(); n != 1 {
		t.Errorf("%d fetches for 20 concurrent requests within the TTL, want 1", n)
	}

	// With a short TTL a change upstream shows soon, without a client ever
	// waiting for the upstream.
	s = newSpec(t, apispec.Options{TTL: 20 * time.Millisecond}, apispec.Source{Name: "orders", URL: orders.URL})
	if _, ok := dig(getDoc(t, s), "paths", "/orders").(map[string]any); !ok {
		t.Fatal("no /orders in the first spec")
	}
	changed := fetchSpec(t, upstreamtest.NewOrders(t))
	delete(changed["paths"].(map[string]any), "/orders")
	orders.set(t, changed)
	eventually(t, 5*time.Second, func() bool { return dig(getDoc(t, s), "paths", "/orders") == nil },
		"the spec never showed the upstream's change")
}

func TestSpecUnavailableUpstream(t *testing.T) {
	up := upstreamtest.NewOrders(t)
	good := fetchSpec(t, up)

	tests := []struct {
		name string
		// breakIt makes the orders source fail; seen says whether the
		// gateway fetched it once before.
		breakIt   func(s *specServer)
		seen      bool
		wantPaths []string
		wantStale bool
	}{
		{"down from the start", func(s *specServer) { s.Close() }, false, []string{"/accounts", "/accounts/top-up", "/accounts/{user_id}/balance", "/health"}, false},
		{"answers 500", func(s *specServer) { s.fail(http.StatusInternalServerError, "boom") }, false, []string{"/accounts", "/accounts/top-up", "/accounts/{user_id}/balance", "/health"}, false},
		{"answers something not OpenAPI", func(s *specServer) { s.fail(http.StatusOK, `{"hello":"world"}`) }, false, []string{"/accounts", "/accounts/top-up", "/accounts/{user_id}/balance", "/health"}, false},
		{"goes down after being seen", func(s *specServer) { s.Close() }, true, []string{"/accounts", "/accounts/top-up", "/accounts/{user_id}/balance", "/health", "/orders", "/orders/{order_id}"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orders := newSpecServer(t, good)
			payments := upstreamtest.NewPayments(t)
			s := newSpec(t, apispec.Options{TTL: time.Millisecond, RetryAfter: time.Millisecond},
				apispec.Source{Name: "orders", URL: orders.URL},
				apispec.Source{Name: "payments", URL: payments.URL + "/openapi.json"})
			if tt.seen {
				if dig(getDoc(t, s), "paths", "/orders") == nil {
					t.Fatal("orders missing while up")
				}
			}
			tt.breakIt(orders)
			var doc map[string]any
			eventually(t, 5*time.Second, func() bool {
				doc = getDoc(t, s)
				return doc["x-unavailable"] != nil
			}, "the spec never reported orders unavailable")

			if got := keys(doc["paths"]); !slices.Equal(got, tt.wantPaths) {
				t.Errorf("paths = %v, want %v", got, tt.wantPaths)
			}
			notes, _ := doc["x-unavailable"].([]any)
			if len(notes) != 1 || dig(notes[0], "service") != "orders" {
				t.Fatalf("x-unavailable = %v, want orders", doc["x-unavailable"])
			}
			if stale := dig(notes[0], "stale") == true; stale != tt.wantStale {
				t.Errorf("stale = %v, want %v", stale, tt.wantStale)
			}
			if desc, _ := dig(doc, "info", "description").(string); !strings.Contains(desc, "orders could not be fetched") {
				t.Errorf("description %q does not warn", desc)
			}
			if strings.Contains(mustJSON(t, doc), "127.0.0.1") {
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

func TestSpecSlowUpstreamDoesNotHoldTheDocs(t *testing.T) {
	orders := newSpecServer(t, fetchSpec(t, upstreamtest.NewOrders(t)))
	orders.mu.Lock()
	orders.hang = true
	orders.mu.Unlock()
	s := newSpec(t, apispec.Options{FetchTimeout: 100 * time.Millisecond}, apispec.Source{Name: "orders", URL: orders.URL})

	start := time.Now()
	doc := getDoc(t, s)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("first request took %s with a hanging upstream", took)
	}
	if doc["x-unavailable"] == nil || dig(doc, "paths", "/health") == nil {
		t.Errorf("want the gateway's own spec with x-unavailable, got paths %v, x-unavailable %v", keys(doc["paths"]), doc["x-unavailable"])
	}
}

func TestMain(m *testing.M) {
	// The upstreams these tests break make the spec log warnings; keep the
	// output for failures.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}
