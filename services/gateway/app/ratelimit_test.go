package app_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"shop/services/gateway/internal/authtest"
	"shop/services/platform/service/servicetest"
	"shop/services/platform/telemetry"
)

func intHeader(t *testing.T, r response, name string) int {
	t.Helper()
	v, err := strconv.Atoi(r.header.Get(name))
	if err != nil {
		t.Fatalf("%s %q: %v", name, r.header.Get(name), err)
	}
	return v
}

// TestRateLimitSharedAcrossGateways runs two gateways on one Redis: what a
// caller spends at one, the other knows.
func TestRateLimitSharedAcrossGateways(t *testing.T) {
	services := newFakes(t)
	cfg := services.config()
	cfg.RedisURL = servicetest.RedisURL(t)
	cfg.RateLimit, cfg.RateLimitBurst = 1, 3
	a, b := start(t, cfg), start(t, cfg)
	user7 := http.Header{"Authorization": {authtest.Bearer(authtest.Token(t, 7))}}

	// User 7 spends the burst at gateway a; the headers count down.
	for i := range 3 {
		resp := a.do(t, http.MethodGet, "/accounts/7/balance", nil, user7)
		if resp.status != http.StatusOK {
			t.Fatalf("request %d at a: %d %s", i+1, resp.status, resp.body)
		}
		if got := intHeader(t, resp, "RateLimit-Limit"); got != 3 {
			t.Errorf("RateLimit-Limit %d, want 3", got)
		}
		if got := intHeader(t, resp, "RateLimit-Remaining"); got != 2-i {
			t.Errorf("request %d: RateLimit-Remaining %d, want %d", i+1, got, 2-i)
		}
	}
	// Gateway b, asked for the first time, refuses the fourth.
	before := services.received()
	resp := b.do(t, http.MethodGet, "/accounts/7/balance", nil, user7)
	p := problem(t, resp, http.StatusTooManyRequests)
	if services.received() != before {
		t.Error("a refused request reached the service")
	}
	if retry := intHeader(t, resp, "Retry-After"); retry < 1 {
		t.Errorf("Retry-After %d, want whole seconds >= 1", retry)
	}
	if got := intHeader(t, resp, "RateLimit-Remaining"); got != 0 {
		t.Errorf("RateLimit-Remaining %d on a 429", got)
	}
	if got := intHeader(t, resp, "RateLimit-Reset"); got < 1 {
		t.Errorf("RateLimit-Reset %d on a 429", got)
	}
	if p["detail"] == "" {
		t.Error("429 without detail")
	}

	// Another user has an allowance of its own.
	if resp := b.do(t, http.MethodGet, "/accounts/8/balance", nil, http.Header{"Authorization": {authtest.Bearer(authtest.Token(t, 8))}}); resp.status != http.StatusOK {
		t.Errorf("user 8: %d %s", resp.status, resp.body)
	}

	// Callers without a good token are limited by address, before they are
	// told 401: a stream of bad tokens is held back like any other.
	statuses := map[int]int{}
	for range 4 {
		resp := a.do(t, http.MethodGet, "/accounts/7/balance", nil, http.Header{"Authorization": {"Bearer garbage"}})
		statuses[resp.status]++
		if resp.status == http.StatusUnauthorized && resp.header.Get("RateLimit-Remaining") == "" {
			t.Error("401 without RateLimit-Remaining")
		}
	}
	if statuses[http.StatusUnauthorized] != 3 || statuses[http.StatusTooManyRequests] != 1 {
		t.Errorf("4 bad tokens from one address: %v, want three 401 and one 429", statuses)
	}
}

// closedRedisURL is a Redis URL where nothing listens.
func closedRedisURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "redis://" + ln.Addr().String() + "/0"
}

func TestRateLimitFailsOpen(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	services := newFakes(t)
	cfg := services.config()
	cfg.RedisURL = closedRedisURL(t)
	cfg.RateLimit, cfg.RateLimitBurst = 1, 1
	cfg.Telemetry = telemetry.Providers{Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}
	g := start(t, cfg) // ready without Redis

	for i := range 5 {
		resp := g.do(t, http.MethodGet, "/accounts/7/balance", nil, nil)
		if resp.status != http.StatusOK {
			t.Fatalf("request %d with Redis down: %d %s", i+1, resp.status, resp.body)
		}
		if resp.header.Get("RateLimit-Remaining") != "" {
			t.Error("RateLimit headers without a rate limit")
		}
	}
	if got := counter(t, reader, "gateway.ratelimit.unavailable"); got != 5 {
		t.Errorf("gateway.ratelimit.unavailable = %d, want 5", got)
	}

	// /health tells, and the gateway stays ready.
	resp := g.do(t, http.MethodGet, "/health", nil, nil)
	var health struct {
		Status string
		Checks map[string]string
	}
	if err := json.Unmarshal(resp.body, &health); err != nil || resp.status != http.StatusOK {
		t.Fatalf("/health: %d %s", resp.status, resp.body)
	}
	if health.Checks["redis"] != "unavailable" || health.Status != "degraded" {
		t.Errorf("/health = %+v, want 200 degraded with redis unavailable", health)
	}
}

// counter returns the sum of the Int64 counter name.
func counter(t *testing.T, reader sdkmetric.Reader, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s is %T", name, m.Data)
			}
			var n int64
			for _, dp := range sum.DataPoints {
				n += dp.Value
			}
			return n
		}
	}
	return 0
}
