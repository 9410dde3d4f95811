package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"shop/services/platform/telemetry"
	"shop/services/platform/web"
)

// A request's duration carries an exemplar naming its trace, so a slow
// bucket of http.server.request.duration leads to a request's trace.
func TestObserveDurationNamesTheTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	reader := sdkmetric.NewManualReader()
	tel := telemetry.Providers{
		Tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)),
		Meter:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
	web.Observe(mux, mux, tel).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/orders", nil))

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	want := rec.Ended()[0].SpanContext().TraceID()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == "http.server.request.duration" {
				for _, dp := range h.DataPoints {
					for _, ex := range dp.Exemplars {
						if string(ex.TraceID) == string(want[:]) {
							return
						}
					}
				}
			}
		}
	}
	t.Errorf("no http.server.request.duration exemplar in trace %s: %+v", want, rm)
}
