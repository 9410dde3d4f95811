package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"shop/services/devstack/stack"
	"shop/services/platform/authtoken"
	"shop/services/platform/telemetry"
)

func TestMain(m *testing.M) {
	// The in-process services log through slog's default logger.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	os.Exit(m.Run())
}

// testSecret is the gateway's JWT_HS256_SECRET in these tests.
const testSecret = "loadgen-test-secret-for-the-gateway-tokens"

// startShop runs the three services in this process, as devstack does, on
// SQLite files and an embedded Redis, with authentication by testSecret,
// and returns the gateway's URL.
func startShop(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	shop, err := stack.Start(ctx, stack.Options{
		DataDir: t.TempDir(), LogLevel: 8, ConsumerName: "test", ShutdownTimeout: 5 * time.Second, // 8: errors only
		Telemetry: func(context.Context, string) (telemetry.Providers, error) { return telemetry.Providers{}, nil },
		Gateway:   map[string]string{"AUTH": "jwt", "JWT_HS256_SECRET": testSecret},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := shop.Wait(); err != nil {
			t.Errorf("shop: %v", err)
		}
	})
	return shop.GatewayURL
}

// report is the JSON the command prints, decoded loosely: a test of the
// contract's keys, not of the Go struct.
func runJSON(t *testing.T, args ...string) (int, map[string]any, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"-json"}, args...), &stdout, &stderr)
	var rep map[string]any
	if stdout.Len() > 0 {
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("stdout is not one JSON object: %v\n%s", err, stdout.String())
		}
	}
	return code, rep, stderr.String()
}

// contractKeys are the JSON keys DESIGN.md's load generator contract lists.
var contractKeys = []string{
	"orders_created", "orders_settled", "settled_per_sec", "create_p50_ms", "create_p99_ms",
	"settle_p50_ms", "settle_p95_ms", "settle_p99_ms", "errors", "invariants_ok",
}

// 200 orders against a real shop all settle, 10% of them declined, and the
// money adds up.
func TestLoadRealShop(t *testing.T) {
	gw := startShop(t)
	code, rep, stderr := runJSON(t, "-gateway", gw, "-jwt-secret", testSecret, "-users", "10", "-orders", "200", "-workers", "8",
		"-unaffordable", "0.1", "-settle-timeout", "30s")
	if code != 0 {
		t.Fatalf("exit status %d, want 0\nreport %v\nstderr:\n%s", code, rep, stderr)
	}
	for _, k := range contractKeys {
		if _, ok := rep[k]; !ok {
			t.Errorf("JSON report lacks %q", k)
		}
	}
	if rep["orders_created"] != 200.0 || rep["orders_settled"] != 200.0 || rep["invariants_ok"] != true {
		t.Fatalf("report %v, want 200 created and settled and invariants_ok", rep)
	}
	if rep["orders_finished"].(float64) == 0 || rep["orders_cancelled"].(float64) == 0 {
		t.Errorf("want both paid and declined orders: %v", rep)
	}
	if rep["settled_per_sec"].(float64) <= 0 || rep["settle_p50_ms"].(float64) <= 0 {
		t.Errorf("no throughput or latency measured: %v", rep)
	}
	if !strings.Contains(stderr, "settled") {
		t.Errorf("no progress line on stderr:\n%s", stderr)
	}
}

// A -rate run with -duration paces the orders, and the same users (a fixed
// -user-base) loaded twice still check out: the second run counts from the
// balance it found.
func TestLoadRateDurationAndReusedUsers(t *testing.T) {
	gw := startShop(t)
	args := []string{"-gateway", gw, "-jwt-secret", testSecret, "-users", "3", "-workers", "4", "-user-base", "7000", "-settle-timeout", "30s"}
	for i := range 2 {
		start := time.Now()
		code, rep, stderr := runJSON(t, append(args, "-rate", "50", "-duration", "1s")...)
		if code != 0 || rep["invariants_ok"] != true {
			t.Fatalf("run %d: exit %d, report %v\n%s", i, code, rep, stderr)
		}
		n := rep["orders_created"].(float64)
		if n < 10 || n > 51 { // at most 50: the rate caps; at least some, even under -race
			t.Errorf("run %d: %v orders in 1s at 50/s", i, n)
		}
		if time.Since(start) > 20*time.Second {
			t.Errorf("run %d took %s", i, time.Since(start))
		}
	}
}

// fakeShop is a gateway that settles every order at once and keeps balances,
// except that it reports user 102's balance one cent too high.
type fakeShop struct {
	mu       sync.Mutex
	balances map[int64]int64
	orders   map[int64][]map[string]any
	n        int
}

func (f *fakeShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var body struct {
		UserID int64  `json:"user_id"`
		Amount string `json:"amount"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	money := func(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }
	parse := func(s string) int64 {
		var w, c int64
		fmt.Sscanf(s, "%d.%d", &w, &c)
		return w*100 + c
	}
	switch {
	case r.Method == "POST" && r.URL.Path == "/accounts":
		f.balances[body.UserID] = 0
		reply(201, map[string]any{"user_id": body.UserID, "balance": "0.00"})
	case r.Method == "POST" && r.URL.Path == "/accounts/top-up":
		f.balances[body.UserID] += parse(body.Amount)
		reply(200, map[string]any{"user_id": body.UserID, "balance": money(f.balances[body.UserID])})
	case r.Method == "POST" && r.URL.Path == "/orders":
		amt, status := parse(body.Amount), "CANCELLED"
		if amt <= f.balances[body.UserID] {
			f.balances[body.UserID] -= amt
			status = "FINISHED"
		}
		f.n++
		now := time.Now().UTC()
		o := map[string]any{"id": fmt.Sprint(f.n), "user_id": body.UserID, "amount": body.Amount, "status": "NEW",
			"created_at": now, "updated_at": now}
		reply(201, o)
		settled := map[string]any{"id": o["id"], "user_id": body.UserID, "amount": body.Amount, "status": status,
			"created_at": now, "updated_at": now.Add(time.Millisecond)}
		f.orders[body.UserID] = append([]map[string]any{settled}, f.orders[body.UserID]...)
	case r.Method == "GET" && r.URL.Path == "/orders":
		var id int64
		fmt.Sscan(r.URL.Query().Get("user_id"), &id)
		reply(200, f.orders[id])
	case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/balance"):
		var id int64
		fmt.Sscanf(r.URL.Path, "/accounts/%d/balance", &id)
		b := f.balances[id]
		if id == 102 {
			b++ // the broken invariant
		}
		reply(200, map[string]any{"user_id": id, "balance": money(b)})
	default:
		http.NotFound(w, r)
	}
}

// A balance that does not add up fails the run: exit status 1 and
// invariants_ok false, naming the user.
func TestBrokenInvariantIsDetected(t *testing.T) {
	srv := httptest.NewServer(&fakeShop{balances: map[int64]int64{}, orders: map[int64][]map[string]any{}})
	t.Cleanup(srv.Close)
	code, rep, stderr := runJSON(t, "-gateway", srv.URL, "-users", "3", "-orders", "60", "-user-base", "100",
		"-workers", "4", "-settle-timeout", "5s")
	if code != 1 {
		t.Fatalf("exit status %d, want 1\nreport %v\n%s", code, rep, stderr)
	}
	if rep["invariants_ok"] != false || rep["orders_settled"] != 60.0 {
		t.Fatalf("report %v, want 60 settled and invariants_ok false", rep)
	}
	if v := fmt.Sprint(rep["violations"]); !strings.Contains(v, "user 102: balance") {
		t.Errorf("violations %s do not name user 102's balance", v)
	}
}

// Orders that never settle fail the run once the deadline passes.
func TestUnsettledOrdersFailTheRun(t *testing.T) {
	f := &fakeShop{balances: map[int64]int64{}, orders: map[int64][]map[string]any{}}
	stuck := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "GET" && r.URL.Path == "/orders":
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("[]"))
			return
		case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/orders/"):
			http.NotFound(w, r)
			return
		}
		f.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(stuck)
	t.Cleanup(srv.Close)
	start := time.Now()
	code, rep, stderr := runJSON(t, "-gateway", srv.URL, "-users", "2", "-orders", "10", "-settle-timeout", "300ms")
	if code != 1 || rep["orders_settled"] != 0.0 || rep["invariants_ok"] != false {
		t.Fatalf("exit %d, report %v, want 1 with nothing settled\n%s", code, rep, stderr)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %s with a 300ms deadline", time.Since(start))
	}
}

// Bad flags are a usage error (status 2), before anything is sent.
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-workers", "0"}, {"-unaffordable", "1.5"}, {"-jwt-secret", "too-short"}, {"-gateway", "localhost:8000"}, {"-orders", "0"}, {"extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
}

// tokenChecker is a gateway in front of next that counts requests whose
// bearer token is missing, invalid, or for another user than the one the
// request names (user_id in the body or query, or the balance path).
type tokenChecker struct {
	next   http.Handler
	secret string

	mu                        sync.Mutex
	requests, missing, others int
}

func (c *tokenChecker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	named := r.URL.Query().Get("user_id")
	var in struct {
		UserID *int64 `json:"user_id"`
	}
	if json.Unmarshal(body, &in) == nil && in.UserID != nil {
		named = strconv.FormatInt(*in.UserID, 10)
	}
	if id, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/accounts/"), "/balance"); ok {
		named = id
	}
	var claims jwt.RegisteredClaims
	tok, hasToken := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return []byte(c.secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(authtoken.Issuer), jwt.WithAudience(authtoken.Audience))
	c.mu.Lock()
	c.requests++
	switch {
	case !hasToken || err != nil:
		c.missing++
	case named != "" && claims.Subject != named:
		c.others++
	}
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

// With -jwt-secret every request carries a valid token of the user it is
// about; without it, none carries one.
func TestEachUserSendsItsOwnToken(t *testing.T) {
	check := &tokenChecker{next: &fakeShop{balances: map[int64]int64{}, orders: map[int64][]map[string]any{}}, secret: testSecret}
	srv := httptest.NewServer(check)
	t.Cleanup(srv.Close)
	code, rep, stderr := runJSON(t, "-gateway", srv.URL, "-jwt-secret", testSecret, "-users", "4", "-orders", "40",
		"-user-base", "500", "-workers", "4", "-settle-timeout", "5s")
	if code != 0 {
		t.Fatalf("exit %d, report %v\n%s", code, rep, stderr)
	}
	if check.requests == 0 || check.missing != 0 || check.others != 0 {
		t.Fatalf("%d requests: %d without a valid token, %d with another user's", check.requests, check.missing, check.others)
	}

	t.Setenv("JWT_HS256_SECRET", "")
	check.requests, check.missing = 0, 0
	if code, rep, stderr := runJSON(t, "-gateway", srv.URL, "-users", "2", "-orders", "10", "-user-base", "600",
		"-settle-timeout", "5s"); code != 0 {
		t.Fatalf("without a secret: exit %d, report %v\n%s", code, rep, stderr)
	}
	if check.missing != check.requests {
		t.Fatalf("without -jwt-secret, %d of %d requests carried a valid token", check.requests-check.missing, check.requests)
	}
}
