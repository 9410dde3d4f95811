package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

// The log line tells the final status and the body's size however the
// handler wrote them, and the handler can still flush and reach the
// connection underneath.
func TestObserveLogsStatusAndSize(t *testing.T) {
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	mux := http.NewServeMux()
	mux.HandleFunc("POST /things", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints) // informational: not the status
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, "abc")
		_, _ = io.Copy(w, strings.NewReader("defg"))
		f, ok := w.(http.Flusher)
		if !ok {
			t.Error("the handler's writer is no http.Flusher")
			return
		}
		f.Flush()
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			t.Errorf("the connection underneath is out of reach: %v", err)
		}
	})
	srv := httptest.NewServer(web.Observe(mux, mux, telemetry.Providers{Tracer: sdktrace.NewTracerProvider()}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/things", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || string(body) != "abcdefg" {
		t.Fatalf("%d %q, want 201 abcdefg", resp.StatusCode, body)
	}
	var line struct {
		Status int
		Bytes  int64
	}
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil || line.Status != http.StatusCreated || line.Bytes != 7 {
		t.Errorf("log line %s, want status 201 and bytes 7", logs.String())
	}
}
