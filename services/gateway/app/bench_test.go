package app

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"shop/services/gateway/internal/access"
	"shop/services/gateway/internal/authtest"
	"shop/services/gateway/internal/proxy"
	"shop/services/platform/service/servicetest"
	"shop/services/platform/telemetry"
	"shop/services/platform/web"
)

// BenchmarkPostOrder measures the gateway's whole work for one POST
// /orders, as a client creating an order causes it: server span, request
// id, bearer token, rate limit in Redis (TEST_REDIS_URL's, or miniredis
// without it), the proxied call over TCP to an orders service that answers
// 201, and the request's log line. Spans are recorded by a real SDK and
// exported in batches to nowhere, metrics aggregated by a real SDK.
func BenchmarkPostOrder(b *testing.B) { benchmarkPostOrder(b, false) }

// BenchmarkPostOrderH2C is BenchmarkPostOrder with HTTP/2 without TLS (h2c)
// between the gateway and the service, instead of HTTP/1.1 connections
// kept alive.
func BenchmarkPostOrderH2C(b *testing.B) { benchmarkPostOrder(b, true) }

func benchmarkPostOrder(b *testing.B, h2c bool) {
	h := benchGateway(b, h2c)
	token := authtest.Bearer(authtest.Token(b, 7))
	const body = `{"items":[{"sku":"sku-1","quantity":2}],"idempotency_key":"c0ffee"}`

	b.ReportAllocs()
	b.SetParallelism(4) // enough requests in flight to keep both the gateway's and Redis's side busy
	cpu := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(body))
			r.Header.Set("Authorization", token)
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != http.StatusCreated {
				b.Fatalf("POST /orders: %d %s", w.Code, w.Body)
			}
		}
	})
	b.StopTimer()
	// Wall time per request depends on the round trips; the CPU the
	// process spent (gateway and fake service, not Redis) is the cost.
	b.ReportMetric(float64(processCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time, user and system, the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchGateway is the gateway's handler as Run builds it, in front of a
// fake orders service, with authentication and a rate limit no benchmark
// reaches. With h2c, gateway and service speak HTTP/2 without TLS.
func benchGateway(b *testing.B, h2c bool) http.Handler {
	b.Helper()
	orders := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if h2c != (r.ProtoMajor == 2) {
			http.Error(w, "unexpected protocol "+r.Proto, http.StatusHTTPVersionNotSupported)
			return
		}
		if r.Header.Get(web.UserHeader) != "7" {
			http.Error(w, "no user", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", "/orders/01890a5d-ac96-774b-bcce-b302099a8057")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"01890a5d-ac96-774b-bcce-b302099a8057","status":"pending"}`)
	}))
	if h2c {
		orders.Config.Protocols = new(http.Protocols)
		orders.Config.Protocols.SetUnencryptedHTTP2(true)
	}
	orders.Start()
	b.Cleanup(orders.Close)
	target, err := url.Parse(orders.URL)
	if err != nil {
		b.Fatal(err)
	}

	// As in production: log lines at info (here to nowhere), W3C trace
	// context carried to the service.
	logger, propagator := slog.Default(), otel.GetTextMapPropagator()
	slog.SetDefault(slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})))
	otel.SetTextMapPropagator(telemetry.Propagator())
	b.Cleanup(func() { slog.SetDefault(logger); otel.SetTextMapPropagator(propagator) })
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardSpans{}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
	tel := telemetry.Providers{Tracer: tp, Meter: mp}

	cfg := Config{
		Auth: AuthJWT, OIDCAudience: "shop", OIDCUserClaim: access.DefaultUserClaim, JWTHS256Secret: authtest.Secret,
		RedisURL: benchRedisURL(b), RateLimit: 1_000_000_000, RateLimitBurst: 1_000_000_000, Telemetry: tel,
	}
	g, release, err := newGuard(cfg, web.NewHealth())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(release)

	transport := proxy.NewTransport(10 * time.Second)
	if h2c {
		transport.Protocols = new(http.Protocols)
		transport.Protocols.SetUnencryptedHTTP2(true)
	}
	b.Cleanup(transport.CloseIdleConnections)
	client := otelhttp.NewTransport(transport, otelhttp.WithTracerProvider(tp), otelhttp.WithMeterProvider(mp))
	upstreams := map[string]*url.URL{proxy.Orders: target, proxy.Payments: target}
	h, _, err := newHandler(web.NewHealth(), upstreams, client, 1<<20, g, tel)
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// benchRedisURL is TEST_REDIS_URL's Redis, or a miniredis without it.
func benchRedisURL(b *testing.B) string {
	if os.Getenv("TEST_REDIS_URL") != "" {
		return servicetest.RedisURL(b)
	}
	return "redis://" + miniredis.RunT(b).Addr() + "/0"
}

// discardSpans is an exporter that drops what it is given.
type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }
