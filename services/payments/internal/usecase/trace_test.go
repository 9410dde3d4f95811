package usecase_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"shop/services/contract/shopattr"
	"shop/services/payments/internal/payment"
	"shop/services/payments/internal/usecase"
	"shop/services/platform/messaging"
	"shop/services/platform/stream"
	"shop/services/platform/telemetry"
)

// handleTraced runs the stream handler on msgs as one batch, each under a
// process span of its own, and returns the ended spans in message order.
func handleTraced(t *testing.T, p *usecase.Payments, msgs ...messaging.Message) []sdktrace.ReadOnlySpan {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	batch := make([]stream.Delivery, len(msgs))
	spans := make([]trace.Span, len(msgs))
	for i, msg := range msgs {
		_, spans[i] = tracer.Start(context.Background(), "payments.requests process")
		batch[i] = stream.NewDelivery(spans[i], msg)
	}
	if err := p.HandleRequests(context.Background(), bun.Tx{}, batch); err != nil {
		t.Fatal(err)
	}
	for _, s := range spans {
		s.End()
	}
	return rec.Ended()
}

func attrs(kvs []attribute.KeyValue) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.Emit()
	}
	return m
}

func wantAttrs(t *testing.T, what string, got []attribute.KeyValue, want map[attribute.Key]string) {
	t.Helper()
	m := attrs(got)
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s: %s = %q, want %q (all: %v)", what, k, m[k], v, m)
		}
	}
}

// Each message's process span says whose order it paid, how much, and
// what became of it, with a "payment decided" event carrying the
// balances; a declined payment leaves the span's status unset.
func TestHandleRequestsRecordsEachDecisionOnItsOwnSpan(t *testing.T) {
	var logs bytes.Buffer
	p := usecase.New(usecase.Deps{Ledger: &fakeLedger{balance: 1000}, Outbox: &fakeOutbox{}},
		usecase.Config{Logger: slog.New(telemetry.LogHandler(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))})
	paid, declined := uuid.New(), uuid.New()
	spans := handleTraced(t, p,
		request(`{"order_id":"`+paid.String()+`","user_id":3,"amount":"2.50"}`),
		request(`{"order_id":"`+declined.String()+`","user_id":4,"amount":"12.30"}`))
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2", len(spans))
	}
	cases := []struct {
		span   sdktrace.ReadOnlySpan
		attrs  map[attribute.Key]string
		event  map[attribute.Key]string
		reason bool
	}{
		{spans[0], map[attribute.Key]string{
			shopattr.OrderID: paid.String(), shopattr.UserID: "3", shopattr.Amount: "2.50", shopattr.PaymentStatus: "FINISHED",
		}, map[attribute.Key]string{
			shopattr.PaymentStatus: "FINISHED", shopattr.BalanceBefore: "10.00", shopattr.BalanceAfter: "7.50",
		}, false},
		{spans[1], map[attribute.Key]string{
			shopattr.OrderID: declined.String(), shopattr.UserID: "4", shopattr.Amount: "12.30",
			shopattr.PaymentStatus: "CANCELLED", shopattr.PaymentReason: payment.ReasonInsufficientFunds,
		}, map[attribute.Key]string{
			shopattr.PaymentStatus: "CANCELLED", shopattr.PaymentReason: payment.ReasonInsufficientFunds,
			shopattr.BalanceBefore: "10.00", shopattr.BalanceAfter: "10.00",
		}, true},
	}
	for i, c := range cases {
		wantAttrs(t, "span", c.span.Attributes(), c.attrs)
		if _, ok := attrs(c.span.Attributes())[shopattr.PaymentReason]; ok != c.reason {
			t.Errorf("span %d: has a reason %v, want %v", i, ok, c.reason)
		}
		if _, ok := attrs(c.span.Attributes())[shopattr.PaymentDuplicate]; ok {
			t.Errorf("span %d: marked duplicate", i)
		}
		events := c.span.Events()
		if len(events) != 1 || events[0].Name != shopattr.PaymentDecided {
			t.Fatalf("span %d: events %v, want one %q", i, events, shopattr.PaymentDecided)
		}
		wantAttrs(t, "event", events[0].Attributes, c.event)
		if c.span.Status().Code != codes.Unset {
			t.Errorf("span %d: status %v, want unset (a decline is no error)", i, c.span.Status())
		}
	}

	// The decline is logged in its order's trace, with the ids.
	var line map[string]any
	for l := range bytes.Lines(logs.Bytes()) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil && m["msg"] == "payment decided" && m[shopattr.LogOrderID] == declined.String() {
			line = m
		}
	}
	if line == nil {
		t.Fatalf("no decision log line for order %s:\n%s", declined, logs.String())
	}
	if line[shopattr.LogUserID] != float64(4) || line["trace_id"] != spans[1].SpanContext().TraceID().String() || line["level"] != "INFO" {
		t.Errorf("decision log line %v: want user_id 4, level INFO and trace_id %s", line, spans[1].SpanContext().TraceID())
	}
}

// A request for an order decided before is marked a duplicate, with the
// recorded outcome and no new decision: its result is resent.
func TestHandleRequestsMarksADuplicate(t *testing.T) {
	p := newPayments(&fakeLedger{existing: true}, &fakeOutbox{})
	orderID := uuid.New()
	spans := handleTraced(t, p, request(`{"order_id":"`+orderID.String()+`","user_id":3,"amount":"1.00"}`))
	wantAttrs(t, "span", spans[0].Attributes(), map[attribute.Key]string{
		shopattr.OrderID: orderID.String(), shopattr.PaymentStatus: "FINISHED", shopattr.PaymentDuplicate: "true",
		shopattr.PaymentResent: "true",
	})
	if ev := spans[0].Events(); len(ev) != 1 || ev[0].Name != shopattr.PaymentResultResent {
		t.Errorf("events %v, want only %q: nothing was decided", ev, shopattr.PaymentResultResent)
	}
}
