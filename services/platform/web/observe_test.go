package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"shop/services/platform/telemetry"
	"shop/services/platform/web"
)

// Observe names spans by route, logs one line per request with its trace
// id, and leaves health probes alone.
func TestObserve(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(telemetry.LogHandler(slog.NewJSONHandler(&logs, nil))))
	t.Cleanup(func() { slog.SetDefault(prev) })

	mux := http.NewServeMux()
	api := web.NewAPI(mux, "Test", "")
	web.NewHealth().Register(api)
	huma.Get(api, "/things/{id}", func(ctx context.Context, in *struct {
		ID string `path:"id"`
	}) (*struct{}, error) {
		return nil, nil
	})
	h := web.Observe(web.WithRequestID(web.WithProblems(mux)), mux, telemetry.Providers{Tracer: tp})

	for _, path := range []string{"/things/42", "/health", "/readyz", "/livez"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code/100 != 2 {
			t.Fatalf("GET %s: %d", path, w.Code)
		}
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "GET /things/{id}" {
		var names []string
		for _, s := range spans {
			names = append(names, s.Name())
		}
		t.Fatalf("spans %v, want one named GET /things/{id}", names)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want one (none for health probes):\n%s", len(lines), logs.String())
	}
	var line map[string]any
	json.Unmarshal([]byte(lines[0]), &line)
	status, _ := line["status"].(float64)
	if line["msg"] != "request" || line["route"] != "GET /things/{id}" || status < 200 || status > 299 ||
		line["trace_id"] != spans[0].SpanContext().TraceID().String() || line["request_id"] == "" {
		t.Errorf("request log line %s", lines[0])
	}
}
