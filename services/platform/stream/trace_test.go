package stream_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"shop/services/platform/messaging"
	mt "shop/services/platform/messaging/messagingtest"
	"shop/services/platform/stream"
	"shop/services/platform/telemetry"
)

// Each message of a batch hands the handler its own process span, which
// keeps what the handler records there; the run's duration carries an
// exemplar naming the trace of the batch's first message.
func TestHandlerRecordsOnEachProcessSpanAndDurationNamesTheTrace(t *testing.T) {
	e := env{Database: mt.Databases(t, effects)[0], Broker: mt.Miniredis(t)}
	e.stream = e.Broker.Stream(t)
	var ids []string
	for range 3 {
		m, _ := e.publish(t, messaging.Message{})
		ids = append(ids, m.ID.String())
	}
	reader := sdkmetric.NewManualReader()
	cfg := e.fast("c")
	cfg.Telemetry = telemetry.Providers{Tracer: otel.GetTracerProvider(), Meter: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}
	var mu sync.Mutex
	var batches [][]string
	run(t, stream.NewConsumer(e.DB, e.Client, cfg, func(ctx context.Context, tx bun.IDB, batch []stream.Delivery) error {
		var got []string
		for _, d := range batch {
			d.Span().SetAttributes(attribute.String("test.message", d.ID.String()))
			got = append(got, d.ID.String())
		}
		mu.Lock()
		defer mu.Unlock()
		batches = append(batches, got)
		return nil
	}))
	mt.Eventually(t, 5*time.Second, "delivered", func() bool { return e.delivered(t) && e.pending(t) == 0 })

	process := map[string]sdktrace.ReadOnlySpan{}
	mt.Eventually(t, time.Second, "process spans ended", func() bool {
		for _, s := range spans.Ended() {
			for _, a := range s.Attributes() {
				if a.Key == "messaging.message.id" && slices.Contains(ids, a.Value.AsString()) {
					process[a.Value.AsString()] = s
				}
			}
		}
		return len(process) == len(ids)
	})
	for id, s := range process {
		var marked string
		for _, a := range s.Attributes() {
			if a.Key == "test.message" {
				marked = a.Value.AsString()
			}
		}
		if marked != id {
			t.Errorf("process span of %s carries the handler's attribute for %q", id, marked)
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var exemplars []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == "messaging.process.duration" {
				for _, dp := range h.DataPoints {
					for _, ex := range dp.Exemplars {
						exemplars = append(exemplars, string(ex.TraceID))
					}
				}
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	first := process[batches[0][0]].SpanContext().TraceID()
	if !slices.Contains(exemplars, string(first[:])) {
		t.Errorf("messaging.process.duration exemplars %x, want one in trace %s", exemplars, first)
	}
}
