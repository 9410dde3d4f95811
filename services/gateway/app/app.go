// Package app is the gateway, the shop's one public HTTP entry point: it
// routes the public operations to the orders and payments services, answers
// every error as problem+json, and serves the merged public OpenAPI with its
// docs. The gateway binary (main.go) and the all-in-one devstack run it.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"shop/services/gateway/internal/access"
	"shop/services/gateway/internal/apispec"
	"shop/services/gateway/internal/proxy"
	"shop/services/gateway/internal/ratelimit"
	"shop/services/platform/telemetry"
	"shop/services/platform/web"
)

const (
	title       = "Shop API"
	description = "The public API of the shop: accounts and their balances, and orders, which are paid " +
		"for automatically. Every error is an RFC 9457 problem (application/problem+json)."
)

// Run runs the gateway until ctx ends, then stops taking requests and lets
// those in flight finish within cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg Config) error {
	// 1. Check the configuration. cli.Main has done it for the binary, but
	// devstack and tests call Run directly.
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if cfg.PprofAddr != "" {
		web.ServePprof(cfg.PprofAddr)
	}
	orders, _ := upstreamURL(cfg.OrdersURL)
	payments, _ := upstreamURL(cfg.PaymentsURL)
	upstreams := map[string]*url.URL{proxy.Orders: orders, proxy.Payments: payments}

	// 2. One connection pool to the services, for the proxied requests and
	// the spec fetches alike; otelhttp makes each call a client span and
	// carries the trace context to the service.
	transport := proxy.NewTransport(cfg.UpstreamTimeout)
	defer transport.CloseIdleConnections()
	client := otelhttp.NewTransport(transport,
		otelhttp.WithTracerProvider(cfg.Telemetry.TracerProvider()),
		otelhttp.WithMeterProvider(cfg.Telemetry.MeterProvider()))

	// 3. Authentication and rate limits, which stand before every public
	// operation.
	health := web.NewHealth()
	g, closeGuard, err := newGuard(cfg, health)
	if err != nil {
		return err
	}
	defer closeGuard()
	bgCtx, stopBackground := context.WithCancel(ctx)
	defer stopBackground()
	if g.auth != nil {
		go g.auth.Run(bgCtx)
	}

	// 4. The HTTP handler: routes, the gateway's own API and the merged
	// spec, which fetches the services' descriptions in the background
	// until it has them all.
	handler, spec, err := newHandler(health, upstreams, client, cfg.MaxBodyBytes, g, cfg.Telemetry)
	if err != nil {
		return err
	}
	go spec.Run(bgCtx)

	// 5. Health. Readiness waits, once, for the complete API description:
	// a gateway that cannot yet describe its whole API is not ready.
	// Afterwards it checks no upstream on purpose: with a service down, the
	// gateway still serves the other service's operations, the docs, and a
	// clear 502 for the rest. Were it unready, the load balancer would drop
	// every gateway replica at once and turn one service's outage into the
	// whole shop's, with connection errors instead of problem answers. Each
	// service's own readiness takes its replicas out of its Service instead.
	health.Add(web.Check{Name: "openapi", Check: spec.Check})

	// 6. Serve until ctx ends. Then readiness fails first, and only after
	// that does the server stop accepting and drain what it has.
	onListen := func(addr net.Addr) {
		slog.InfoContext(ctx, "gateway listening", "addr", addr.String(),
			"orders", cfg.OrdersURL, "payments", cfg.PaymentsURL)
		if cfg.OnListen != nil {
			cfg.OnListen(addr)
		}
	}
	return web.Serve(ctx, web.NewServer(cfg.HTTPAddr, handler), cfg.ShutdownTimeout, onListen, health.Drain)
}

// newHandler builds the gateway's HTTP handler.
func newHandler(health *web.Health, upstreams map[string]*url.URL, rt http.RoundTripper, maxBody int64, g guard, tel telemetry.Providers) (http.Handler, *apispec.Spec, error) {
	mux := http.NewServeMux()

	// The gateway's own Huma API (health routes and docs UI) lives on a mux
	// of its own, because Huma serves the gateway's own spec at
	// /openapi.json and /openapi.yaml, where this gateway serves the merged
	// one; registering both on one mux would panic. The merged spec takes
	// the gateway's own operations from api.OpenAPI() instead.
	own := http.NewServeMux()
	api := web.NewAPI(own, title, description)
	health.Register(api)
	for _, pattern := range []string{"GET /health", "GET /livez", "GET /readyz", "GET /docs", "GET /docs/"} {
		mux.Handle(pattern, own)
	}

	var sources []apispec.Source
	for _, name := range []string{proxy.Orders, proxy.Payments} {
		sources = append(sources, apispec.Source{Name: name, URL: upstreams[name].JoinPath("openapi.json").String()})
	}
	spec, err := apispec.New(api.OpenAPI(), sources, proxy.Routed, apispec.Options{Client: &http.Client{Transport: rt}})
	if err != nil {
		return nil, nil, err
	}
	mux.HandleFunc("GET /openapi.json", spec.ServeJSON)
	mux.HandleFunc("GET /openapi.yaml", spec.ServeYAML)
	mux.HandleFunc("GET /openapi-3.0.json", spec.ServeJSON30)
	mux.HandleFunc("GET /openapi-3.0.yaml", spec.ServeYAML30)

	if err := proxy.Register(mux, proxy.Config{Upstreams: upstreams, Transport: rt, MaxBodyBytes: maxBody, Guard: g.wrap}); err != nil {
		return nil, nil, err
	}

	var h http.Handler = web.WithProblems(mux)
	h = proxy.HideInternal(h)
	h = web.WithRequestID(h)
	h = withOrderID(h)
	// A server span per request (health probes aside), named by route,
	// whose context otelhttp's transport carries to the service.
	h = web.Observe(h, mux, tel)
	return h, spec, nil
}

// newGuard builds the authentication and the rate limits cfg asks for, and
// adds their health checks: the issuer's discovery to readiness, Redis as a
// detail that never makes the gateway unready. release closes Redis.
func newGuard(cfg Config, health *web.Health) (g guard, release func(), err error) {
	release = func() {}
	if cfg.Auth == AuthOff {
		slog.Warn("AUTH=off: the gateway authenticates no one; every public operation is open to anyone who reaches it")
	} else {
		g.auth, err = access.New(access.Config{
			IssuerURL: cfg.OIDCIssuerURL, Audience: cfg.OIDCAudience, UserClaim: cfg.OIDCUserClaim, Secret: []byte(cfg.JWTHS256Secret),
		})
		if err != nil {
			return g, release, err
		}
		if cfg.OIDCIssuerURL != "" {
			health.Add(web.Check{Name: "oidc-issuer", Check: g.auth.Check})
		}
	}
	if cfg.RateLimit == 0 {
		slog.Info("RATE_LIMIT=0: rate limits are off")
		return g, release, nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return g, release, fmt.Errorf("REDIS_URL: %w", err)
	}
	// A rate limit is asked on every request: a Redis that is slow to
	// answer is given up on quickly, and the request passes.
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = 500*time.Millisecond, 250*time.Millisecond, 250*time.Millisecond, 250*time.Millisecond
	opts.MaxRetries, opts.DialerRetries = 0, 1
	rdb := redis.NewClient(opts)
	g.limiter, err = ratelimit.New(rdb, ratelimit.Config{Rate: cfg.RateLimit, Burst: cfg.RateLimitBurst}, cfg.Telemetry)
	if err != nil {
		rdb.Close()
		return g, release, err
	}
	health.Add(web.Check{Name: "redis", Check: g.limiter.Check, Optional: true})
	return g, func() { rdb.Close() }, nil
}
