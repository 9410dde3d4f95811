package web

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/felixge/httpsnoop"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"shop/services/platform/telemetry"
)

// Observe wraps a service's whole handler h: each request but the health
// routes gets a server span (continuing the caller's trace), the HTTP
// metrics (rate, errors and duration by route) and one log line. Spans and
// metrics are named by the route template of routes that matches, such as
// "GET /orders/{order_id}", never by the raw path, which would make one name
// per order.
func Observe(h http.Handler, routes *http.ServeMux, tel telemetry.Providers) http.Handler {
	route := func(r *http.Request) string {
		if _, pattern := routes.Handler(r); pattern != "" {
			return pattern
		}
		return r.Method
	}
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		rt := route(r)
		if l, ok := otelhttp.LabelerFromContext(ctx); ok {
			l.Add(semconv.HTTPRoute(rt))
		}
		trace.SpanFromContext(ctx).SetAttributes(semconv.HTTPRoute(rt))
		m := httpsnoop.CaptureMetrics(h, w, r)
		level := slog.LevelInfo
		if m.Code >= http.StatusInternalServerError {
			level = slog.LevelWarn
		}
		// Attrs rather than key-value pairs: every request logs this line,
		// and boxing each value into an any would allocate.
		slog.LogAttrs(ctx, level, "request", slog.String("method", r.Method), slog.String("route", rt),
			slog.String("path", r.URL.Path), slog.Int("status", m.Code),
			slog.Float64("duration_ms", float64(m.Duration)/float64(time.Millisecond)), slog.Int64("bytes", m.Written),
			slog.String("request_id", w.Header().Get(RequestIDHeader)))
	})
	return otelhttp.NewHandler(skipHealth(logged, h), "http",
		otelhttp.WithTracerProvider(tel.TracerProvider()),
		otelhttp.WithMeterProvider(tel.MeterProvider()),
		otelhttp.WithFilter(func(r *http.Request) bool { return !IsHealthPath(r.URL.Path) }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return route(r) }),
	)
}

// skipHealth sends health probes straight to plain, without a log line:
// probes come every few seconds and say nothing about the traffic.
func skipHealth(observed, plain http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsHealthPath(r.URL.Path) {
			plain.ServeHTTP(w, r)
			return
		}
		observed.ServeHTTP(w, r)
	})
}
