package web

import (
	"log/slog"
	"net/http"
	"time"

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
		start := time.Now()
		m := &responseMetrics{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(m, r)
		duration := time.Since(start)
		level := slog.LevelInfo
		if m.code >= http.StatusInternalServerError {
			level = slog.LevelWarn
		}
		// Attrs rather than key-value pairs: every request logs this line,
		// and boxing each value into an any would allocate.
		slog.LogAttrs(ctx, level, "request", slog.String("method", r.Method), slog.String("route", rt),
			slog.String("path", r.URL.Path), slog.Int("status", m.code),
			slog.Float64("duration_ms", float64(duration)/float64(time.Millisecond)), slog.Int64("bytes", m.written),
			slog.String("request_id", w.Header().Get(RequestIDHeader)))
	})
	return otelhttp.NewHandler(skipHealth(logged, h), "http",
		otelhttp.WithTracerProvider(tel.TracerProvider()),
		otelhttp.WithMeterProvider(tel.MeterProvider()),
		otelhttp.WithFilter(func(r *http.Request) bool { return !IsHealthPath(r.URL.Path) }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return route(r) }),
	)
}

// responseMetrics learns the status and size of an answer for its log
// line. It costs one allocation per request, where a wrapper that
// re-creates every optional interface of the writer (httpsnoop's) costs
// a dozen or more. Flush is kept for handlers that ask for it directly; the
// rest (Hijack, deadlines, full duplex) http.ResponseController reaches
// through Unwrap, and io.Copy and io.WriteString fall back to Write.
type responseMetrics struct {
	http.ResponseWriter
	code        int   // the final status; informational (1xx) ones aside
	written     int64 // bytes of body
	wroteHeader bool
}

func (m *responseMetrics) WriteHeader(code int) {
	m.ResponseWriter.WriteHeader(code)
	if !m.wroteHeader && (code < 100 || code > 199) {
		m.code, m.wroteHeader = code, true
	}
}

func (m *responseMetrics) Write(p []byte) (int, error) {
	n, err := m.ResponseWriter.Write(p)
	m.written += int64(n)
	m.wroteHeader = true
	return n, err
}

// Flush sends what was written so far, when the writer underneath can.
func (m *responseMetrics) Flush() { _ = http.NewResponseController(m.ResponseWriter).Flush() }

// Unwrap is for http.ResponseController.
func (m *responseMetrics) Unwrap() http.ResponseWriter { return m.ResponseWriter }

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
