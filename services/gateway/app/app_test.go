package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"shop/services/gateway/app"
	"shop/services/gateway/internal/authtest"
	"shop/services/gateway/internal/upstreamtest"
	"shop/services/platform/authtoken"
	"shop/services/platform/web"
)

func TestMain(m *testing.M) {
	// The failures these tests provoke are logged as warnings; keep the
	// output for real trouble.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	os.Exit(m.Run())
}

// testConfig is the gateway's configuration with its defaults, listening on
// a free loopback port.
func testConfig(ordersURL, paymentsURL string) app.Config {
	return app.Config{
		HTTPAddr:        "127.0.0.1:0",
		OrdersURL:       ordersURL,
		PaymentsURL:     paymentsURL,
		UpstreamTimeout: 10 * time.Second,
		MaxBodyBytes:    1 << 20,
		ShutdownTimeout: 5 * time.Second,
		LogLevel:        slog.LevelInfo,
		Auth:            app.AuthJWT,
		OIDCAudience:    authtoken.Audience,
		OIDCUserClaim:   "sub",
		JWTHS256Secret:  authtest.Secret,
		RedisURL:        "redis://localhost:6379/0",
		RateLimit:       0, // the rate limit tests turn it on
		RateLimitBurst:  200,
	}
}

// testUser is the user of the token do sends unless told otherwise.
const testUser = 7

// noToken as do's header sends no Authorization.
func noToken() http.Header { return http.Header{"Authorization": nil} }

type gateway struct {
	URL    string
	stop   context.CancelFunc
	errc   chan error
	client *http.Client
}

// start runs the gateway with cfg until the test ends, and checks that it
// then stops cleanly. It returns once the gateway is ready: it has fetched
// the services' API descriptions, so the services' request logs hold only
// the test's requests from then on.
func start(t *testing.T, cfg app.Config) *gateway {
	t.Helper()
	g := startUnready(t, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for g.do(t, http.MethodGet, "/readyz", nil, nil).status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("gateway not ready within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return g
}

// startUnready is start without waiting for readiness.
func startUnready(t *testing.T, cfg app.Config) *gateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	cfg.OnListen = func(a net.Addr) { addrs <- a }
	g := &gateway{stop: cancel, errc: make(chan error, 1), client: &http.Client{Timeout: 30 * time.Second}}
	go func() { g.errc <- app.Run(ctx, cfg) }()
	select {
	case a := <-addrs:
		g.URL = "http://" + a.String()
	case err := <-g.errc:
		cancel()
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("gateway did not listen within 10s")
	}
	t.Cleanup(func() {
		if err := g.shutdown(); err != nil {
			t.Errorf("gateway stopped with %v", err)
		}
	})
	return g
}

func (g *gateway) shutdown() error {
	g.stop()
	select {
	case err := <-g.errc:
		g.errc <- err // cleanup may ask again
		return err
	case <-time.After(15 * time.Second):
		return errors.New("gateway did not stop within 15s")
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with header, and a good token for testUser unless
// header has an Authorization entry (noToken for none).
func (g *gateway) do(t *testing.T, method, path string, body io.Reader, header http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, g.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := header["Authorization"]; !ok {
		req.Header.Set("Authorization", authtest.Bearer(authtest.Token(t, testUser)))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := g.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// problem checks that r is a problem+json answer with status and returns
// its detail.
func problem(t *testing.T, r response, status int) map[string]any {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type %q, want application/problem+json; body %s", ct, r.body)
	}
	var p map[string]any
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body does not decode: %v: %s", err, r.body)
	}
	if p["status"] != float64(status) {
		t.Errorf("problem status %v, want %d", p["status"], status)
	}
	return p
}

// internalDetail are strings that would show a 5xx leaking what went wrong
// inside.
var internalDetail = []string{"dial", "refused", "127.0.0.1", "timeout awaiting", "EOF", "panic", "password", "net/http", "tcp"}

func assertNoInternalDetail(t *testing.T, body []byte) {
	t.Helper()
	for _, s := range internalDetail {
		if bytes.Contains(bytes.ToLower(body), []byte(strings.ToLower(s))) {
			t.Errorf("5xx body carries internal detail %q: %s", s, body)
		}
	}
}

func TestRouting(t *testing.T) {
	orders := upstreamtest.NewOrders(t)
	payments := upstreamtest.NewPayments(t)
	g := start(t, testConfig(orders.URL, payments.URL))
	services := map[string]*upstreamtest.Server{"orders": orders, "payments": payments}

	tests := []struct {
		method, path, body string
		service            string
		wantPath           string // as the service receives it; the same path if empty
		wantStatus         int
	}{
		{"POST", "/orders", `{"user_id":7,"amount":"12.30","description":"book"}`, "orders", "", 201},
		{"GET", "/orders?user_id=7", "", "orders", "", 200},
		{"GET", "/orders?user_id=7&user_id=8&note=a%20b", "", "orders", "", 200},
		{"GET", "/orders/0193a0b4-0000-7000-8000-000000000001", "", "orders", "", 200},
		{"GET", "/orders/missing", "", "orders", "", 404},
		{"GET", "/orders/a%2Fb", "", "orders", "", 200},
		// Not the internal operation: an order id that happens to read so.
		{"GET", "/orders/payment-status", "", "orders", "", 200},
		{"HEAD", "/orders/42", "", "orders", "", 200},
		{"POST", "/accounts", `{"user_id":7}`, "payments", "", 201},
		{"POST", "/accounts/top-up", `{"user_id":7,"amount":"100.00"}`, "payments", "", 200},
		{"POST", "/accounts/top-up", `{"user_id":0,"amount":"100.00"}`, "payments", "", 422},
		{"GET", "/accounts/7/balance", "", "payments", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			// A client's own X-Forwarded-For is not trusted.
			resp := g.do(t, tt.method, tt.path, body, http.Header{"Content-Type": {"application/json"}, "X-Forwarded-For": {"203.0.113.9"}})
			if resp.status != tt.wantStatus {
				t.Errorf("status %d, want %d; body %s", resp.status, tt.wantStatus, resp.body)
			}
			got, ok := services[tt.service].Last()
			if !ok {
				t.Fatalf("%s received nothing", tt.service)
			}
			path, query, _ := strings.Cut(tt.path, "?")
			if tt.wantPath != "" {
				path = tt.wantPath
			}
			if got.Method != tt.method || got.Path != path || got.RawQuery != query || got.Body != tt.body {
				t.Errorf("%s received %s %s?%s %q, want %s %s?%s %q",
					tt.service, got.Method, got.Path, got.RawQuery, got.Body, tt.method, path, query, tt.body)
			}
			for other, s := range services {
				if other == tt.service {
					continue
				}
				if r, ok := s.Last(); ok && r.Header.Get(web.RequestIDHeader) == got.Header.Get(web.RequestIDHeader) {
					t.Errorf("%s received the request too", other)
				}
			}
			if fwd := got.Header.Get("X-Forwarded-For"); fwd != "127.0.0.1" {
				t.Errorf("X-Forwarded-For %q, want the client's address", fwd)
			}
			if host := got.Header.Get("X-Forwarded-Host"); host != strings.TrimPrefix(g.URL, "http://") {
				t.Errorf("X-Forwarded-Host %q, want the gateway's host", host)
			}
			if proto := got.Header.Get("X-Forwarded-Proto"); proto != "http" {
				t.Errorf("X-Forwarded-Proto %q", proto)
			}
			if user := got.Header.Values(web.UserHeader); !slices.Equal(user, []string{"7"}) {
				t.Errorf("%s %v, want the token's user 7", web.UserHeader, user)
			}
		})
	}
}

func TestNotRouted(t *testing.T) {
	orders := upstreamtest.NewOrders(t)
	payments := upstreamtest.NewPayments(t)
	g := start(t, testConfig(orders.URL, payments.URL))

	tests := []struct {
		method, path string
		wantStatus   int
		wantAllow    []string
	}{
		{"POST", "/orders/payment-status", 404, nil},
		{"POST", "/payments/process", 404, nil},
		{"GET", "/payments/process", 404, nil},
		{"POST", "/payments/process/", 404, nil},
		{"GET", "/", 404, nil},
		{"GET", "/nothing/here", 404, nil},
		{"GET", "/orders/1/extra", 404, nil},
		{"DELETE", "/orders", 405, []string{"GET", "HEAD", "POST"}},
		{"PUT", "/orders/1", 405, []string{"GET", "HEAD"}},
		{"DELETE", "/orders/payment-status", 405, []string{"GET", "HEAD"}},
		{"GET", "/accounts", 405, []string{"POST"}},
		{"GET", "/accounts/top-up", 405, []string{"POST"}},
		{"POST", "/accounts/7/balance", 405, []string{"GET", "HEAD"}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			before := len(orders.Requests()) + len(payments.Requests())
			resp := g.do(t, tt.method, tt.path, strings.NewReader(`{"order_id":"x"}`), nil)
			problem(t, resp, tt.wantStatus)
			if tt.wantAllow != nil {
				allow := strings.Split(resp.header.Get("Allow"), ", ")
				slices.Sort(allow)
				if !slices.Equal(allow, tt.wantAllow) {
					t.Errorf("Allow %v, want %v", allow, tt.wantAllow)
				}
			}
			if after := len(orders.Requests()) + len(payments.Requests()); after != before {
				t.Errorf("a service received %s %s", tt.method, tt.path)
			}
		})
	}
}

// unsized hides a reader's length, so the client sends it chunked.
type unsized struct{ io.Reader }

func TestBodyLimit(t *testing.T) {
	orders := upstreamtest.NewOrders(t)
	payments := upstreamtest.NewPayments(t)
	cfg := testConfig(orders.URL, payments.URL)
	cfg.MaxBodyBytes = 64
	g := start(t, cfg)

	body := func(n int) string {
		s := `{"user_id":7,"amount":"1.00","description":"`
		return s + strings.Repeat("x", n-len(s)-2) + `"}`
	}
	tests := []struct {
		name       string
		body       io.Reader
		wantStatus int
	}{
		{"at the limit", strings.NewReader(body(64)), 201},
		{"one byte over", strings.NewReader(body(65)), 413},
		{"far over", strings.NewReader(body(10 << 20)), 413},
		{"at the limit, chunked", unsized{strings.NewReader(body(64))}, 201},
		{"over, chunked", unsized{strings.NewReader(body(65))}, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(orders.Requests())
			resp := g.do(t, http.MethodPost, "/orders", tt.body, http.Header{"Content-Type": {"application/json"}})
			if tt.wantStatus == 413 {
				problem(t, resp, 413)
				if n := len(orders.Requests()); n != before {
					t.Error("the oversized body reached the service")
				}
				return
			}
			if resp.status != tt.wantStatus {
				t.Errorf("status %d, want %d: %s", resp.status, tt.wantStatus, resp.body)
			}
		})
	}
}

// closedURL returns the URL of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	return url
}

func TestUpstreamFailures(t *testing.T) {
	orders := upstreamtest.NewOrders(t)
	cfg := testConfig(orders.URL, closedURL(t)) // payments is down
	cfg.UpstreamTimeout = 300 * time.Millisecond
	g := startUnready(t, cfg)

	tests := []struct {
		name         string
		method, path string
		wantStatus   int
		min, max     time.Duration
	}{
		{"service down", "POST", "/accounts", 502, 0, 500 * time.Millisecond},
		{"service down, GET", "GET", "/accounts/7/balance", 502, 0, 500 * time.Millisecond},
		{"service too slow", "GET", "/orders/slow", 504, 300 * time.Millisecond, 5 * time.Second},
		{"service crashes with plain text", "GET", "/orders/crash", 500, 0, 5 * time.Second},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("failure-%d", i)
			start := time.Now()
			resp := g.do(t, tt.method, tt.path, strings.NewReader(`{"user_id":7}`), http.Header{web.RequestIDHeader: {id}})
			took := time.Since(start)
			p := problem(t, resp, tt.wantStatus)
			if took < tt.min || took > tt.max {
				t.Errorf("answered after %s, want between %s and %s", took, tt.min, tt.max)
			}
			assertNoInternalDetail(t, resp.body)
			if want := "urn:request:" + id; p["instance"] != want {
				t.Errorf("instance %v, want %s", p["instance"], want)
			}
		})
	}

	// It lives and serves its docs page, but it cannot describe its whole
	// API: not ready, and no partial description that looks complete.
	for _, path := range []string{"/livez", "/docs"} {
		if resp := g.do(t, http.MethodGet, path, nil, nil); resp.status != http.StatusOK {
			t.Errorf("GET %s with payments down: %d %s", path, resp.status, resp.body)
		}
	}
	for _, path := range []string{"/readyz", "/health", "/openapi.json", "/openapi.yaml", "/openapi-3.0.json", "/openapi-3.0.yaml"} {
		problem(t, g.do(t, http.MethodGet, path, nil, nil), http.StatusServiceUnavailable)
	}
}

// TestReadyOnceSpecComplete starts the gateway before payments listens:
// it turns ready, and serves the whole description, once payments is up.
func TestReadyOnceSpecComplete(t *testing.T) {
	orders := upstreamtest.NewOrders(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	paymentsURL := "http://" + ln.Addr().String()
	ln.Close()
	g := startUnready(t, testConfig(orders.URL, paymentsURL))
	if resp := g.do(t, http.MethodGet, "/readyz", nil, nil); resp.status != http.StatusServiceUnavailable {
		t.Fatalf("ready before payments is up: %d %s", resp.status, resp.body)
	}
	upstreamtest.NewPaymentsAt(t, ln.Addr().String())
	deadline := time.Now().Add(10 * time.Second)
	for g.do(t, http.MethodGet, "/readyz", nil, nil).status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("gateway not ready within 10s of payments coming up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp := g.do(t, http.MethodGet, "/openapi-3.0.json", nil, nil)
	if resp.status != http.StatusOK || !bytes.Contains(resp.body, []byte(`"/accounts/top-up"`)) || !bytes.Contains(resp.body, []byte(`"openapi":"3.0.3"`)) {
		t.Errorf("GET /openapi-3.0.json: %d %.300s", resp.status, resp.body)
	}
}

func TestRequestID(t *testing.T) {
	orders := upstreamtest.NewOrders(t)
	payments := upstreamtest.NewPayments(t)
	g := start(t, testConfig(orders.URL, payments.URL))

	tests := []struct {
		name string
		sent string
		keep bool // whether the gateway keeps the id the client sent
	}{
		{"client's id", "order-test-1", true},
		{"no id", "", false},
		{"invalid id", "bad id with spaces", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := http.Header{}
			if tt.sent != "" {
				header.Set(web.RequestIDHeader, tt.sent)
			}
			resp := g.do(t, http.MethodGet, "/orders/42", nil, header)
			echoed := resp.header.Values(web.RequestIDHeader)
			if len(echoed) != 1 || echoed[0] == "" {
				t.Fatalf("response X-Request-Id %q, want one id", echoed)
			}
			if tt.keep && echoed[0] != tt.sent {
				t.Errorf("response X-Request-Id %q, want %q", echoed[0], tt.sent)
			}
			if !tt.keep && echoed[0] == tt.sent {
				t.Errorf("kept the id %q", tt.sent)
			}
			got, _ := orders.Last()
			if id := got.Header.Get(web.RequestIDHeader); id != echoed[0] {
				t.Errorf("service received X-Request-Id %q, client got %q", id, echoed[0])
			}
		})
	}
}

func TestMergedSpec(t *testing.T) {
	orders := upstreamtest.NewOrders(t)
	payments := upstreamtest.NewPayments(t)
	g := start(t, testConfig(orders.URL, payments.URL))

	resp := g.do(t, http.MethodGet, "/openapi.json", nil, nil)
	if resp.status != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %s", resp.status, resp.body)
	}
	var doc struct {
		Info    struct{ Title string }
		Servers []struct{ URL string }
		Paths   map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal(resp.body, &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for path, item := range doc.Paths {
		for method := range item {
			got = append(got, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(got)
	want := []string{
		"GET /accounts/{user_id}/balance", "GET /health", "GET /orders", "GET /orders/{order_id}",
		"POST /accounts", "POST /accounts/top-up", "POST /orders",
	}
	if !slices.Equal(got, want) {
		t.Errorf("operations %v, want %v", got, want)
	}
	if doc.Info.Title != "Shop API" || len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Errorf("title %q, servers %v", doc.Info.Title, doc.Servers)
	}

	yaml := g.do(t, http.MethodGet, "/openapi.yaml", nil, nil)
	if yaml.status != http.StatusOK || !bytes.Contains(yaml.body, []byte("/accounts/top-up:")) || bytes.Contains(yaml.body, []byte("payment-status")) {
		t.Errorf("GET /openapi.yaml: %d\n%s", yaml.status, yaml.body)
	}
	docs := g.do(t, http.MethodGet, "/docs", nil, nil)
	if docs.status != http.StatusOK || !bytes.Contains(docs.body, []byte(`data-spec-url="/openapi.json"`)) {
		t.Errorf("GET /docs: %d\n%s", docs.status, docs.body)
	}
	asset := g.do(t, http.MethodGet, "/docs/swagger-ui-bundle.js", nil, nil)
	if asset.status != http.StatusOK || len(asset.body) < 1000 {
		t.Errorf("GET /docs/swagger-ui-bundle.js: %d, %d bytes", asset.status, len(asset.body))
	}
}

func TestShutdownDrains(t *testing.T) {
	orders := upstreamtest.NewOrders(t)
	payments := upstreamtest.NewPayments(t)
	cfg := testConfig(orders.URL, payments.URL)
	cfg.UpstreamTimeout = time.Second
	g := start(t, cfg)

	// A request in flight when shutdown begins still gets its answer.
	done := make(chan response, 1)
	go func() { done <- g.do(t, http.MethodGet, "/orders/slow", nil, nil) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r, ok := orders.Last(); ok && r.Path == "/orders/slow" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow request never reached orders")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := g.shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	select {
	case r := <-done:
		problem(t, r, http.StatusGatewayTimeout)
	case <-time.After(5 * time.Second):
		t.Fatal("the request in flight got no answer")
	}
	if _, err := http.Get(g.URL + "/livez"); err == nil {
		t.Error("the gateway still answers after Run returned")
	}
}

func TestConfigValidate(t *testing.T) {
	valid := testConfig("http://orders:8002", "https://payments.shop.svc:8001/base")
	tests := []struct {
		name    string
		edit    func(c *app.Config)
		wantErr string
	}{
		{"valid", func(*app.Config) {}, ""},
		{"relative orders URL", func(c *app.Config) { c.OrdersURL = "orders:8002" }, "ORDERS_URL"},
		{"no scheme", func(c *app.Config) { c.PaymentsURL = "//payments" }, "PAYMENTS_URL"},
		{"ftp", func(c *app.Config) { c.OrdersURL = "ftp://orders" }, "ORDERS_URL"},
		{"no host", func(c *app.Config) { c.OrdersURL = "http://" }, "ORDERS_URL"},
		{"query", func(c *app.Config) { c.OrdersURL = "http://orders?x=1" }, "ORDERS_URL"},
		{"zero timeout", func(c *app.Config) { c.UpstreamTimeout = 0 }, "UPSTREAM_TIMEOUT"},
		{"negative shutdown", func(c *app.Config) { c.ShutdownTimeout = -time.Second }, "SHUTDOWN_TIMEOUT"},
		{"zero body", func(c *app.Config) { c.MaxBodyBytes = 0 }, "MAX_BODY_BYTES"},
		{"bad address", func(c *app.Config) { c.HTTPAddr = "8000" }, "HTTP_ADDR"},
		{"AUTH=off", func(c *app.Config) { c.Auth, c.JWTHS256Secret = app.AuthOff, "" }, ""},
		{"issuer only", func(c *app.Config) { c.OIDCIssuerURL, c.JWTHS256Secret = "https://dex.shop.svc:5556/dex", "" }, ""},
		{"unknown AUTH", func(c *app.Config) { c.Auth = "basic" }, "AUTH"},
		{"empty AUTH", func(c *app.Config) { c.Auth = "" }, "AUTH"},
		{"jwt with nothing to check tokens with", func(c *app.Config) { c.JWTHS256Secret = "" }, "AUTH=jwt needs OIDC_ISSUER_URL"},
		{"short secret", func(c *app.Config) { c.JWTHS256Secret = strings.Repeat("k", 31) }, "JWT_HS256_SECRET"},
		{"relative issuer", func(c *app.Config) { c.OIDCIssuerURL = "dex:5556" }, "OIDC_ISSUER_URL"},
		{"empty audience", func(c *app.Config) { c.OIDCAudience = "" }, "OIDC_AUDIENCE"},
		{"nested user claim", func(c *app.Config) { c.OIDCUserClaim = "federated_claims.user_id" }, ""},
		{"empty user claim", func(c *app.Config) { c.OIDCUserClaim = "" }, "OIDC_USER_CLAIM"},
		{"user claim with an empty segment", func(c *app.Config) { c.OIDCUserClaim = "federated_claims..user_id" }, "OIDC_USER_CLAIM"},
		{"user claim ending in a dot", func(c *app.Config) { c.OIDCUserClaim = "federated_claims." }, "OIDC_USER_CLAIM"},
		{"negative rate", func(c *app.Config) { c.RateLimit = -1 }, "RATE_LIMIT"},
		{"zero burst", func(c *app.Config) { c.RateLimit, c.RateLimitBurst = 10, 0 }, "RATE_LIMIT_BURST"},
		{"bad Redis URL", func(c *app.Config) { c.RateLimit, c.RedisURL = 10, "http://redis" }, "REDIS_URL"},
		{"bad Redis URL, rate limits off", func(c *app.Config) { c.RateLimit, c.RedisURL = 0, "http://redis" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.wantErr)
			}
			if runErr := app.Run(context.Background(), c); runErr == nil || !strings.Contains(runErr.Error(), tt.wantErr) {
				t.Errorf("Run = %v, want the configuration error", runErr)
			}
		})
	}
}

// One trace follows an order across the services: the gateway passes the
// client's trace context on (as a child span when tracing is set up).
func TestTraceContextPropagated(t *testing.T) {
	orders := upstreamtest.NewOrders(t)
	payments := upstreamtest.NewPayments(t)
	g := start(t, testConfig(orders.URL, payments.URL))

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	g.do(t, http.MethodGet, "/orders/42", nil, http.Header{"Traceparent": {"00-" + traceID + "-00f067aa0ba902b7-01"}})
	got, _ := orders.Last()
	parts := strings.Split(got.Header.Get("Traceparent"), "-")
	if len(parts) != 4 || parts[1] != traceID {
		t.Errorf("orders received traceparent %q, want trace %s", got.Header.Get("Traceparent"), traceID)
	}
}
