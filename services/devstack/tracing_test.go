package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"shop/services/platform/authtoken"
	"shop/services/platform/polltest"
	"shop/services/platform/service/servicetest"
	"shop/services/platform/telemetry"
)

// TestOneTracePerOrder runs the shop in one process, each service with its
// own tracer provider recording in memory, and follows one order: its trace
// holds the gateway's and the orders service's server spans, the outbox
// insert, both relays' publish spans and both consumers' process spans, each
// the child of the one before, from the right service, with the messaging
// attributes. The log lines of the request carry its trace id.
func TestOneTracePerOrder(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	providers := map[string]*sdktrace.TracerProvider{}
	for _, name := range []string{"gateway", "orders", "payments"} {
		providers[name] = sdktrace.NewTracerProvider(
			sdktrace.WithSpanProcessor(rec),
			sdktrace.WithResource(sdkresource.NewSchemaless(semconv.ServiceName(name))),
		)
	}
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(telemetry.Propagator())
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	logs := &servicetest.Buffer{}
	prevLog := slog.Default()
	slog.SetDefault(slog.New(telemetry.LogHandler(slog.NewJSONHandler(logs, nil))))
	t.Cleanup(func() { slog.SetDefault(prevLog) })

	cfg := settings{
		GatewayAddr:  servicetest.FreeAddr(t),
		PaymentsAddr: servicetest.FreeAddr(t),
		OrdersAddr:   servicetest.FreeAddr(t),
		JWTSecret:    secret,
		telemetry: func(_ context.Context, name string) (telemetry.Providers, error) {
			return telemetry.Providers{Tracer: providers[name]}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("devstack stopped with %v", err)
		}
	})
	for _, addr := range []string{cfg.GatewayAddr, cfg.PaymentsAddr, cfg.OrdersAddr} {
		waitReady(t, "http://"+addr)
	}

	gw := "http://" + cfg.GatewayAddr
	token, err := authtoken.Mint([]byte(secret), 7, authtoken.Options{})
	if err != nil {
		t.Fatal(err)
	}
	post(t, gw+"/accounts", `{"user_id": 7}`, token)
	post(t, gw+"/accounts/top-up", `{"user_id": 7, "amount": "50.00"}`, token)
	var created struct{ ID string }
	json.Unmarshal(post(t, gw+"/orders", `{"user_id": 7, "amount": "20.00"}`, token), &created)

	// The order's trace is the one whose root is the gateway's POST /orders.
	var root sdktrace.ReadOnlySpan
	var spans []sdktrace.ReadOnlySpan
	polltest.Until(t, 10*time.Second, func() error {
		root, spans = orderTrace(rec.Ended())
		if find(spans, "orders", "payments.results process") == nil {
			return fmt.Errorf("the order's trace has no payments.results process span of orders yet (%d spans)", len(spans))
		}
		return nil
	})
	if root == nil {
		t.Fatal("no gateway span POST /orders")
	}

	// Each step: the service that makes it, its name, its kind, and the
	// step it is a child of.
	chain := []struct {
		service, name string
		kind          trace.SpanKind
	}{
		{"gateway", "POST /orders", trace.SpanKindServer},
		{"gateway", "", trace.SpanKindClient}, // otelhttp names client spans by method
		{"orders", "POST /orders", trace.SpanKindServer},
		{"orders", "outbox insert", trace.SpanKindInternal},
		{"orders", "payments.requests publish", trace.SpanKindProducer},
		{"payments", "payments.requests process", trace.SpanKindConsumer},
		{"payments", "outbox insert", trace.SpanKindInternal},
		{"payments", "payments.results publish", trace.SpanKindProducer},
		{"orders", "payments.results process", trace.SpanKindConsumer},
	}
	// A step hangs below the one before, directly or through database spans
	// (bunotel makes the transaction's BEGIN the parent of its statements).
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		byID[s.SpanContext().SpanID()] = s
	}
	below := func(s sdktrace.ReadOnlySpan, ancestor trace.SpanID) bool {
		for p := s.Parent().SpanID(); ; {
			if p == ancestor {
				return true
			}
			ps, ok := byID[p]
			if !ok || ps.SpanKind() != trace.SpanKindClient || serviceOf(ps) != serviceOf(s) {
				return false
			}
			p = ps.Parent().SpanID()
		}
	}
	parent := trace.SpanContext{}
	for i, step := range chain {
		var s sdktrace.ReadOnlySpan
		for _, c := range spans {
			if below(c, parent.SpanID()) && c.SpanKind() == step.kind &&
				serviceOf(c) == step.service && (step.name == "" || c.Name() == step.name) {
				s = c
				break
			}
		}
		if s == nil {
			t.Fatalf("step %d: no %s span %q (%s) under %s; the trace has:\n%s", i, step.service, step.name, step.kind, parent.SpanID(), describe(spans))
		}
		parent = s.SpanContext()
		if step.kind == trace.SpanKindProducer || step.kind == trace.SpanKindConsumer {
			stream, _, _ := strings.Cut(step.name, " ")
			want := map[attribute.Key]string{
				"messaging.system":           "redis",
				"messaging.destination.name": stream,
				"messaging.operation.name":   step.name[len(stream)+1:],
			}
			if step.kind == trace.SpanKindConsumer {
				want["messaging.consumer.group.name"] = map[string]string{"payments": "payments", "orders": "orders"}[step.service]
			}
			got := map[attribute.Key]string{}
			for _, a := range s.Attributes() {
				got[a.Key] = a.Value.Emit()
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: %s = %q, want %q", step.name, k, got[k], v)
				}
			}
			if got["messaging.message.id"] == "" {
				t.Errorf("%s: no messaging.message.id", step.name)
			}
		}
	}
	// Database statements are spans of the trace too, without argument values.
	var sawInsert bool
	for _, s := range spans {
		for _, a := range s.Attributes() {
			if a.Key == "db.statement" {
				if strings.Contains(a.Value.AsString(), created.ID) {
					t.Errorf("span %s carries an argument value: %s", s.Name(), a.Value.AsString())
				}
				sawInsert = sawInsert || strings.Contains(a.Value.AsString(), "INSERT INTO \"orders\"")
			}
		}
	}
	if !sawInsert {
		t.Errorf("no bunotel span for the order's INSERT; the trace has:\n%s", describe(spans))
	}

	// The request's log line carries the trace id.
	traceID := root.SpanContext().TraceID().String()
	var logged bool
	for line := range strings.Lines(logs.String()) {
		var entry map[string]any
		json.Unmarshal([]byte(line), &entry)
		if entry["msg"] == "request" && entry["route"] == "POST /orders" && entry["trace_id"] == traceID {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no request log line for POST /orders with trace_id %s in:\n%s", traceID, logs.String())
	}
}

// orderTrace returns the gateway's POST /orders span and every span of its
// trace.
func orderTrace(ended []sdktrace.ReadOnlySpan) (root sdktrace.ReadOnlySpan, spans []sdktrace.ReadOnlySpan) {
	for _, s := range ended {
		if serviceOf(s) == "gateway" && s.Name() == "POST /orders" && s.SpanKind() == trace.SpanKindServer {
			root = s
		}
	}
	if root == nil {
		return nil, nil
	}
	for _, s := range ended {
		if s.SpanContext().TraceID() == root.SpanContext().TraceID() {
			spans = append(spans, s)
		}
	}
	return root, spans
}

func find(spans []sdktrace.ReadOnlySpan, service, name string) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if serviceOf(s) == service && s.Name() == name {
			return s
		}
	}
	return nil
}

func serviceOf(s sdktrace.ReadOnlySpan) string {
	v, _ := s.Resource().Set().Value(semconv.ServiceNameKey)
	return v.AsString()
}

func describe(spans []sdktrace.ReadOnlySpan) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s %s %q (%s) parent %s\n", s.SpanContext().SpanID(), serviceOf(s), s.Name(), s.SpanKind(), s.Parent().SpanID())
	}
	return b.String()
}

// post sends body to url as JSON with token as the bearer credential.
func post(t *testing.T, url, body, token string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b.String())
	}
	return b.Bytes()
}
