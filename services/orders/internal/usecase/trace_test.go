package usecase_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"shop/services/contract"
	"shop/services/contract/shopattr"
	"shop/services/orders/internal/order"
	"shop/services/orders/internal/store"
	"shop/services/orders/internal/usecase"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/idempotency"
	"shop/services/platform/outbox"
	"shop/services/platform/stream"
)

func recorder() (*tracetest.SpanRecorder, trace.Tracer) {
	rec := tracetest.NewSpanRecorder()
	return rec, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
}

func attrMap(kvs []attribute.KeyValue) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.Emit()
	}
	return m
}

// Each result's process span says what became of its order: the status it
// moved to, with an "order settled" event, or that it changed nothing.
func TestHandleResultsRecordsEachSettlementOnItsOwnSpan(t *testing.T) {
	a, _ := order.NewOrder(1, 500, "", timeZero)
	b, _ := order.NewOrder(2, 700, "", timeZero)
	s := &memStore{orders: map[uuid.UUID]order.Order{a.ID: a, b.ID: b}}
	rec, tracer := recorder()
	batch := []stream.Delivery{
		result(t, a.ID, contract.PaymentCancelled, "insufficient funds"),
		result(t, b.ID, contract.PaymentFinished, ""),
		result(t, a.ID, contract.PaymentFinished, ""), // late: a is cancelled already
	}
	spans := make([]trace.Span, len(batch))
	for i := range batch {
		_, spans[i] = tracer.Start(context.Background(), "payments.results process")
		batch[i] = stream.NewDelivery(spans[i], batch[i].Message)
	}
	if err := memUseCases(s).HandleResults(context.Background(), bun.Tx{}, batch); err != nil {
		t.Fatal(err)
	}
	for _, span := range spans {
		span.End()
	}
	ended := rec.Ended()
	want := []struct {
		attrs     map[attribute.Key]string
		settled   bool
		reason    bool
		duplicate bool
	}{
		{map[attribute.Key]string{shopattr.OrderID: a.ID.String(), shopattr.UserID: "1", shopattr.Amount: "5.00",
			shopattr.OrderStatus: "CANCELLED", shopattr.PaymentStatus: "CANCELLED", shopattr.PaymentReason: "insufficient funds"}, true, true, false},
		{map[attribute.Key]string{shopattr.OrderID: b.ID.String(), shopattr.UserID: "2", shopattr.Amount: "7.00",
			shopattr.OrderStatus: "FINISHED", shopattr.PaymentStatus: "FINISHED"}, true, false, false},
		{map[attribute.Key]string{shopattr.OrderID: a.ID.String(), shopattr.OrderStatus: "CANCELLED",
			shopattr.PaymentStatus: "FINISHED", shopattr.PaymentDuplicate: "true"}, false, false, true},
	}
	for i, w := range want {
		got := attrMap(ended[i].Attributes())
		for k, v := range w.attrs {
			if got[k] != v {
				t.Errorf("span %d: %s = %q, want %q (all: %v)", i, k, got[k], v, got)
			}
		}
		if _, ok := got[shopattr.PaymentReason]; ok != w.reason {
			t.Errorf("span %d: has a reason %v, want %v", i, ok, w.reason)
		}
		if _, ok := got[shopattr.PaymentDuplicate]; ok != w.duplicate {
			t.Errorf("span %d: duplicate %v, want %v", i, ok, w.duplicate)
		}
		events := ended[i].Events()
		if settled := len(events) == 1 && events[0].Name == shopattr.OrderSettled; settled != w.settled {
			t.Errorf("span %d: events %v, want an %q event: %v", i, events, shopattr.OrderSettled, w.settled)
		} else if settled && attrMap(events[0].Attributes)[shopattr.OrderStatus] != w.attrs[shopattr.OrderStatus] {
			t.Errorf("span %d: event %v, want status %s", i, events[0].Attributes, w.attrs[shopattr.OrderStatus])
		}
	}
}

// The request that creates an order carries its id, user and amount.
func TestCreateRecordsTheOrderOnTheRequestSpan(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		uc := usecase.New(usecase.Deps{DB: db, Orders: store.New(db), Outbox: outbox.New(db, outbox.Config{})}, usecase.Config{})
		rec, tracer := recorder()
		ctx, span := tracer.Start(context.Background(), "POST /orders")
		o := newOrder(t, 7, 1230)
		if _, err := uc.Create(ctx, o, idempotency.Request{}, nil); err != nil {
			t.Fatal(err)
		}
		span.End()
		got := attrMap(rec.Ended()[0].Attributes())
		want := map[attribute.Key]string{shopattr.OrderID: o.ID.String(), shopattr.UserID: "7", shopattr.Amount: "12.30", shopattr.OrderStatus: "NEW"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
			}
		}
	})
}
