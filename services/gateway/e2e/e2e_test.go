// Package e2e_test runs the gateway in front of the real orders and payments
// binaries (SQLite files, an in-process miniredis) and drives the shop
// through it.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"shop/services/gateway/app"
	"shop/services/gateway/internal/authtest"
	"shop/services/platform/authtoken"
	"shop/services/platform/service/servicetest"
	"shop/services/platform/web"
)

// startService runs the built service on a free port with its own SQLite
// file and waits until it is ready.
func startService(t *testing.T, name, redisAddr string) *servicetest.Process {
	t.Helper()
	return servicetest.Start(t, name, servicetest.Build(t, name),
		"DATABASE_URL=sqlite:"+filepath.Join(t.TempDir(), name+".db"),
		"REDIS_URL=redis://"+redisAddr,
		"SHUTDOWN_TIMEOUT=5s",
	)
}

// startGateway runs the gateway in this process, in front of orders and
// payments, until the test ends: authentication on (tokens of issuer, or
// HS256 with authtest.Secret), rate limits kept in the Redis at redisAddr.
func startGateway(t *testing.T, ordersURL, paymentsURL, issuer, redisAddr string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	cfg := app.Config{
		HTTPAddr: "127.0.0.1:0", OrdersURL: ordersURL, PaymentsURL: paymentsURL,
		UpstreamTimeout: 10 * time.Second, MaxBodyBytes: 1 << 20, ShutdownTimeout: 5 * time.Second,
		Auth: app.AuthJWT, OIDCIssuerURL: issuer, OIDCAudience: authtoken.Audience, OIDCUserClaim: "sub",
		JWTHS256Secret: authtest.Secret,
		RedisURL:       "redis://" + redisAddr, RateLimit: 100, RateLimitBurst: 200,
		OnListen: func(a net.Addr) { addrs <- a },
	}
	go func() { errc <- app.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	select {
	case a := <-addrs:
		// Ready once it holds the services' whole API description.
		url := "http://" + a.String()
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get(url + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return url
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("gateway not ready within 30s: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	case err := <-errc:
		errc <- err
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not listen within 10s")
	}
	return ""
}

type client struct {
	t     *testing.T
	base  string
	token string // sent as a bearer token unless empty
}

// call sends a JSON request and decodes the answer into out (if not nil).
// It returns the status and the raw answer.
func (c client) call(method, path string, body any, out any) (int, http.Header, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", authtest.Bearer(c.token))
	}
	req.Header.Set(web.RequestIDHeader, "e2e-"+strings.ReplaceAll(strings.Trim(path, "/"), "/", "-"))
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, resp.Header, raw
}

func (c client) must(method, path string, body any, want int, out any) http.Header {
	c.t.Helper()
	status, header, raw := c.call(method, path, body, out)
	if status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	return header
}

type account struct {
	UserID  int64  `json:"user_id"`
	Balance string `json:"balance"`
}

type order struct {
	ID           string `json:"id"`
	UserID       int64  `json:"user_id"`
	Amount       string `json:"amount"`
	Description  string `json:"description"`
	Status       string `json:"status"`
	CancelReason string `json:"cancel_reason"`
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
}

func TestShopThroughGateway(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the services")
	}
	redis := miniredis.RunT(t)
	orders := startService(t, "orders", redis.Addr())
	payments := startService(t, "payments", redis.Addr())
	iss := authtest.NewIssuer(t)
	const user = 4242
	c := client{t, startGateway(t, orders.URL, payments.URL, iss.URL, redis.Addr()), iss.Token(t, user)}

	// Without a token nothing happens; with a shared-secret token as well
	// as with the issuer's, the shop answers.
	anonymous := client{t, c.base, ""}
	if status, h, raw := anonymous.call("POST", "/accounts", map[string]any{"user_id": user}, nil); status != http.StatusUnauthorized ||
		!strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("POST /accounts without a token: %d %q %s, want 401 with a Bearer challenge", status, h.Get("WWW-Authenticate"), raw)
	}
	shared := client{t, c.base, authtest.Token(t, user)}
	shared.must("GET", fmt.Sprintf("/orders?user_id=%d", user), nil, http.StatusOK, nil)

	var acc account
	c.must("POST", "/accounts", map[string]any{"user_id": user}, http.StatusCreated, &acc)
	if acc.UserID != user || acc.Balance != "0.00" {
		t.Fatalf("new account = %+v", acc)
	}
	if status, h, raw := c.call("POST", "/accounts", map[string]any{"user_id": user}, nil); status != http.StatusConflict ||
		h.Get("Content-Type") != "application/problem+json" {
		t.Errorf("second POST /accounts: %d %s %s, want 409 problem+json", status, h.Get("Content-Type"), raw)
	}
	c.must("POST", "/accounts/top-up", map[string]any{"user_id": user, "amount": "100.00"}, http.StatusOK, &acc)
	if acc.Balance != "100.00" {
		t.Fatalf("balance after top-up = %q, want 100.00", acc.Balance)
	}

	var created order
	h := c.must("POST", "/orders", map[string]any{"user_id": user, "amount": "30.00", "description": "e2e book"}, http.StatusCreated, &created)
	if created.ID == "" || created.UserID != user || created.Amount != "30.00" || created.Description != "e2e book" ||
		!slices.Contains([]string{"NEW", "FINISHED"}, created.Status) || created.CreatedAt == "" {
		t.Fatalf("created order = %+v", created)
	}
	if id := h.Values(web.RequestIDHeader); len(id) != 1 || id[0] != "e2e-orders" {
		t.Errorf("X-Request-Id echoed as %q, want [e2e-orders]", id)
	}
	if status, h, raw := c.call("POST", "/orders", map[string]any{"user_id": user, "amount": "0", "description": "x"}, nil); status != http.StatusUnprocessableEntity ||
		h.Get("Content-Type") != "application/problem+json" {
		t.Errorf("POST /orders with amount 0: %d %s %s, want 422 problem+json", status, h.Get("Content-Type"), raw)
	}

	var list []order
	c.must("GET", fmt.Sprintf("/orders?user_id=%d", user), nil, http.StatusOK, &list)
	if len(list) != 1 || list[0].ID != created.ID {
		t.Fatalf("GET /orders?user_id = %+v, want the one order", list)
	}

	// The payment travels orders → Redis → payments → Redis → orders.
	var got order
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.must("GET", "/orders/"+created.ID, nil, http.StatusOK, &got)
		if got.Status != "NEW" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got.ID != created.ID || got.UserID != user || got.Amount != "30.00" {
		t.Fatalf("GET /orders/{id} = %+v, want the created order", got)
	}
	c.must("GET", fmt.Sprintf("/accounts/%d/balance", user), nil, http.StatusOK, &acc)
	if got.Status != "FINISHED" || acc.Balance != "70.00" {
		t.Errorf("order %s (%q), balance %s; want FINISHED and 70.00", got.Status, got.CancelReason, acc.Balance)
	}

	// The docs describe exactly the public operations.
	var spec struct {
		Paths map[string]map[string]json.RawMessage
	}
	c.must("GET", "/openapi.json", nil, http.StatusOK, &spec)
	var ops []string
	for path, item := range spec.Paths {
		for method := range item {
			ops = append(ops, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(ops)
	want := []string{
		"GET /accounts/{user_id}/balance", "GET /health", "GET /orders", "GET /orders/{order_id}",
		"POST /accounts", "POST /accounts/top-up", "POST /orders",
	}
	if !slices.Equal(ops, want) {
		t.Errorf("merged spec operations = %v, want %v", ops, want)
	}
	for _, internal := range []string{"/orders/payment-status", "/payments/process"} {
		if _, ok := spec.Paths[internal]; ok {
			t.Errorf("merged spec has internal path %s", internal)
		}
	}
	for _, internal := range []struct{ method, path string }{{"POST", "/orders/payment-status"}, {"POST", "/payments/process"}} {
		if status, _, raw := c.call(internal.method, internal.path, map[string]any{}, nil); status != http.StatusNotFound {
			t.Errorf("%s %s through the gateway: %d %s, want 404", internal.method, internal.path, status, raw)
		}
	}

	// With orders gone, its operations fail fast with 502; payments' work.
	orders.Kill()
	start := time.Now()
	status, hdr, raw := c.call("POST", "/orders", map[string]any{"user_id": user, "amount": "1.00", "description": "x"}, nil)
	if status != http.StatusBadGateway || hdr.Get("Content-Type") != "application/problem+json" {
		t.Errorf("POST /orders with orders down: %d %s %s, want 502 problem+json", status, hdr.Get("Content-Type"), raw)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("502 took %s", took)
	}
	if bytes.Contains(raw, []byte("refused")) || bytes.Contains(raw, []byte("127.0.0.1")) {
		t.Errorf("502 body carries internal detail: %s", raw)
	}
	c.must("GET", fmt.Sprintf("/accounts/%d/balance", user), nil, http.StatusOK, &acc)
	c.must("GET", "/readyz", nil, http.StatusOK, nil)
	c.must("GET", "/openapi.json", nil, http.StatusOK, nil)
}
