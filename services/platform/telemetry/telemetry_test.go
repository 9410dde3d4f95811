package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"shop/services/platform/telemetry"
)

// clearEnv unsets the variables that turn telemetry on, for one test.
func clearEnv(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"} {
		t.Setenv(k, "")
	}
}

func TestEnabled(t *testing.T) {
	tests := []struct {
		name            string
		env             map[string]string
		traces, metrics bool
	}{
		{"nothing set", nil, false, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"}, true, true},
		{"traces endpoint only", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://jaeger:4318/v1/traces"}, true, false},
		{"prometheus only", map[string]string{"OTEL_METRICS_EXPORTER": "prometheus"}, false, true},
		{"exporters none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}, false, false},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			traces, metrics := telemetry.Enabled()
			if traces != tt.traces || metrics != tt.metrics {
				t.Errorf("Enabled() = %v, %v; want %v, %v", traces, metrics, tt.traces, tt.metrics)
			}
		})
	}
}

// With nothing configured, Setup installs no SDK and the shutdown is quiet;
// the propagator is W3C trace context and baggage all the same.
func TestSetupOffByDefault(t *testing.T) {
	clearEnv(t)
	shutdown, err := telemetry.Setup(context.Background(), "test", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); ok {
		t.Error("an SDK tracer provider with telemetry off")
	}
	fields := otel.GetTextMapPropagator().Fields()
	if !strings.Contains(strings.Join(fields, ","), "traceparent") || !strings.Contains(strings.Join(fields, ","), "baggage") {
		t.Errorf("propagator fields %v, want traceparent and baggage", fields)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSetupRejectsABadProtocol(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
	if _, err := telemetry.Setup(context.Background(), "test", "1.0.0"); err == nil {
		t.Fatal("Setup accepted OTEL_EXPORTER_OTLP_PROTOCOL=carrier-pigeon")
	}
}

// OTEL_METRICS_EXPORTER=prometheus serves /metrics for every service of the
// process, each series labelled with its service.
func TestPrometheusEndpoint(t *testing.T) {
	ctx := context.Background()
	port := setupPrometheus(t)
	for _, svc := range []string{"orders", "payments"} {
		p, err := telemetry.ForService(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := p.MeterProvider().Meter("test").Int64Counter("test.things")
		c.Add(ctx, 3)
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`test_things_total{otel_scope_name="test"`, `service_name="orders"`, `service_name="payments"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
}

func TestLogHandlerAddsTraceIDs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))).With("service", "test")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	log.InfoContext(ctx, "inside")
	span.End()
	log.InfoContext(context.Background(), "outside")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var inside, outside map[string]any
	json.Unmarshal([]byte(lines[0]), &inside)
	json.Unmarshal([]byte(lines[1]), &outside)
	if inside["trace_id"] != span.SpanContext().TraceID().String() || inside["span_id"] != span.SpanContext().SpanID().String() {
		t.Errorf("line inside the span: %s", lines[0])
	}
	if _, ok := outside["trace_id"]; ok {
		t.Errorf("line outside any span has a trace_id: %s", lines[1])
	}
}

func TestChildrenOnly(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	children := telemetry.ChildrenOnly(tp).Tracer("db")
	_, orphan := children.Start(context.Background(), "SELECT")
	orphan.End()
	ctx, parent := tp.Tracer("app").Start(context.Background(), "request")
	_, child := children.Start(ctx, "INSERT")
	child.End()
	parent.End()
	var names []string
	for _, s := range rec.Ended() {
		names = append(names, s.Name())
	}
	if strings.Join(names, ",") != "INSERT,request" {
		t.Errorf("spans %v, want INSERT (child of request) and request only", names)
	}
}

// A histogram measured inside a sampled span carries that span's trace id
// as an exemplar on /metrics, in the OpenMetrics format Prometheus asks
// for: a slow bucket leads to a trace.
func TestPrometheusExemplarsNameTheTrace(t *testing.T) {
	ctx := context.Background()
	port := setupPrometheus(t)
	p, err := telemetry.ForService(ctx, "payments")
	if err != nil {
		t.Fatal(err)
	}
	h, _ := p.MeterProvider().Meter("test").Float64Histogram("test.duration")
	sctx, span := sdktrace.NewTracerProvider().Tracer("test").Start(ctx, "work")
	h.Record(sctx, 0.042)
	span.End()

	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+port+"/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `trace_id="` + span.SpanContext().TraceID().String() + `"`
	var found bool
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "test_duration_bucket{") && strings.Contains(line, "# {") && strings.Contains(line, want) {
			found = true
		}
	}
	if !found {
		t.Errorf("no test_duration bucket with an exemplar %s on /metrics (%s):\n%s", want, resp.Header.Get("Content-Type"), body)
	}
}

// setupPrometheus sets telemetry up with OTEL_METRICS_EXPORTER=prometheus on
// a free loopback port, shut down when t ends, and returns the port.
func setupPrometheus(t *testing.T) string {
	t.Helper()
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	t.Setenv("OTEL_METRICS_EXPORTER", "prometheus")
	t.Setenv("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
	t.Setenv("OTEL_EXPORTER_PROMETHEUS_PORT", port)
	ctx := context.Background()
	shutdown, err := telemetry.Setup(ctx, "shop", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(ctx) })
	return port
}
