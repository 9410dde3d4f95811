package usecase_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"shop/services/contract"
	"shop/services/contract/shopattr"
	"shop/services/orders/internal/order"
	"shop/services/orders/internal/store"
	"shop/services/orders/internal/usecase"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/idempotency"
	"shop/services/platform/money"
	"shop/services/platform/outbox"
	"shop/services/platform/stream"
	"shop/services/platform/telemetry"
)

// observed are use cases whose spans, counts and log lines a test reads.
type observed struct {
	uc      *usecase.Orders
	spans   *tracetest.SpanRecorder
	metrics *sdkmetric.ManualReader
	log     *bytes.Buffer
}

// observedUseCases returns use cases on d whose telemetry a test reads;
// with a database, its outbox reports to the same tracer.
func observedUseCases(d usecase.Deps, after time.Duration) observed {
	o := observed{spans: tracetest.NewSpanRecorder(), metrics: sdkmetric.NewManualReader(), log: &bytes.Buffer{}}
	tel := telemetry.Providers{
		Tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans)),
		Meter:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.metrics)),
	}
	if d.DB != nil {
		d.Outbox = outbox.New(d.DB, outbox.Config{Telemetry: tel})
	}
	o.uc = usecase.New(d, usecase.Config{ReconcileAfter: after, Telemetry: tel, Logger: slog.New(slog.NewJSONHandler(o.log, nil))})
	return o
}

// count is the sum of the counter name.
func (o observed) count(t *testing.T, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := o.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				for _, dp := range sum.DataPoints {
					n += dp.Value
				}
			}
		}
	}
	return n
}

// requests returns the payment requests in the outbox, oldest first.
func requests(t *testing.T, db *bun.DB) []outbox.Row {
	t.Helper()
	var rows []outbox.Row
	if err := db.NewSelect().Model(&rows).Where("stream = ?", contract.PaymentRequestsStream).OrderExpr("id").Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	return rows
}

// An order still NEW RECONCILE_AFTER after its request is requested again
// with a new message id, then after twice as long, and so on; a settled
// order never is. Each re-request is a span of its own, counted and logged
// with its attempt.
func TestReconcileRequestsPaymentAgainWithGrowingSpacing(t *testing.T) {
	// The outbox stores each message's trace context as the services do.
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		obs := observedUseCases(usecase.Deps{DB: db, Orders: s}, time.Minute)
		uc := obs.uc
		stuck, paid := newOrder(t, 7, 1230), newOrder(t, 8, 500)
		for _, o := range []order.Order{stuck, paid} {
			if _, err := uc.Create(ctx, o, idempotency.Request{}, nil); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := uc.Settle(ctx, uuid.New(), usecase.Result{OrderID: paid.ID, Status: order.Finished}); err != nil {
			t.Fatal(err)
		}
		created := stuck.CreatedAt

		reconcile := func(at time.Time) []order.Order {
			t.Helper()
			due, err := uc.Reconcile(ctx, at, 100)
			if err != nil {
				t.Fatal(err)
			}
			return due
		}
		if due := reconcile(created.Add(59 * time.Second)); len(due) != 0 {
			t.Fatalf("requested again before RECONCILE_AFTER: %v", due)
		}
		// Due after 1m, then 2m later, then 4m later.
		at := created
		for attempt, wait := 2, time.Minute; attempt <= 4; attempt, wait = attempt+1, 2*wait {
			if due := reconcile(at.Add(wait - time.Second)); len(due) != 0 {
				t.Fatalf("attempt %d: requested %v early", attempt, wait-time.Second)
			}
			at = at.Add(wait)
			due := reconcile(at)
			if len(due) != 1 || due[0].ID != stuck.ID || due[0].PaymentRequests != attempt {
				t.Fatalf("attempt %d at +%v: %+v", attempt, at.Sub(created), due)
			}
		}

		rows := requests(t, db)
		if len(rows) != 5 { // two with the orders, three again
			t.Fatalf("%d payment requests in the outbox, want 5", len(rows))
		}
		var first contract.PaymentRequested
		seen := map[uuid.UUID]bool{}
		for i, r := range rows {
			var p contract.PaymentRequested
			if err := json.Unmarshal([]byte(r.Payload), &p); err != nil {
				t.Fatal(err)
			}
			if i >= 2 && p != (contract.PaymentRequested{OrderID: stuck.ID, UserID: 7, Amount: 1230}) {
				t.Fatalf("re-request %d = %+v", i, p)
			}
			if p.OrderID == stuck.ID && i < 2 {
				first = p
			}
			if seen[r.ID] {
				t.Fatalf("message id %s sent twice", r.ID)
			}
			seen[r.ID] = true
		}
		if first.OrderID != stuck.ID {
			t.Fatal("the first request is missing")
		}
		if n := obs.count(t, "orders.reconcile.requests"); n != 3 {
			t.Errorf("orders.reconcile.requests = %d, want 3", n)
		}
		if lines := strings.Count(obs.log.String(), `"msg":"payment requested again"`); lines != 3 {
			t.Errorf("%d log lines, want 3:\n%s", lines, obs.log)
		}
		if !strings.Contains(obs.log.String(), `"`+shopattr.LogAttempt+`":4`) || !strings.Contains(obs.log.String(), stuck.ID.String()) {
			t.Errorf("log lines lack the order id or attempt:\n%s", obs.log)
		}
		// The re-requests continue the trace of the order's first request,
		// as do the messages they write.
		firstTrace := strings.Split(rows[0].Traceparent, "-")[1]
		if rows[0].Traceparent == "" || strings.Split(rows[1].Traceparent, "-")[1] == firstTrace {
			t.Fatalf("the two orders' requests are not in traces of their own: %q, %q", rows[0].Traceparent, rows[1].Traceparent)
		}
		if p := payloadOf(t, rows[0]); p.OrderID != stuck.ID {
			firstTrace = strings.Split(rows[1].Traceparent, "-")[1]
		}
		for _, r := range rows[2:] {
			if got := strings.Split(r.Traceparent, "-")[1]; got != firstTrace {
				t.Errorf("re-request in trace %s, the order's is %s", got, firstTrace)
			}
		}
		var reconcileSpans int
		for _, span := range obs.spans.Ended() {
			if span.Name() != "reconcile payment request" {
				continue
			}
			reconcileSpans++
			attrs := attrMap(span.Attributes())
			if attrs[shopattr.OrderID] != stuck.ID.String() || attrs[shopattr.PaymentAttempt] == "" {
				t.Errorf("span attributes %v", attrs)
			}
			if got := span.SpanContext().TraceID().String(); got != firstTrace || !span.Parent().IsRemote() {
				t.Errorf("reconcile span in trace %s (parent remote %v), want the order's %s", got, span.Parent().IsRemote(), firstTrace)
			}
		}
		if reconcileSpans != 3 {
			t.Errorf("%d reconcile spans, want 3", reconcileSpans)
		}

		// Settled at last: never requested again.
		if _, err := uc.Settle(ctx, uuid.New(), usecase.Result{OrderID: stuck.ID, Status: order.Cancelled, Reason: "insufficient funds"}); err != nil {
			t.Fatal(err)
		}
		if due := reconcile(at.Add(24 * time.Hour)); len(due) != 0 {
			t.Fatalf("a settled order was requested again: %v", due)
		}
	})
}

// A result naming another user or amount than its order's is refused for
// good (dead-lettered), counted and logged, and the order stays NEW.
func TestHandleResultsRefusesAMismatch(t *testing.T) {
	o, _ := order.NewOrder(7, 1230, "", timeZero)
	st := &memStore{orders: map[uuid.UUID]order.Order{o.ID: o}}
	obs := observedUseCases(usecase.Deps{Orders: st}, 0)
	withPayer := func(userID int64, amount int64) stream.Delivery {
		payload, _ := json.Marshal(contract.PaymentCompleted{OrderID: o.ID, Status: contract.PaymentFinished, UserID: userID, Amount: moneyOf(amount)})
		return delivery(contract.PaymentCompletedType, string(payload))
	}
	for name, bad := range map[string]stream.Delivery{"another amount": withPayer(7, 9999), "another user": withPayer(8, 1230)} {
		err := obs.uc.HandleResults(context.Background(), bun.Tx{}, []stream.Delivery{bad})
		if !stream.IsPermanent(err) || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("%s: HandleResults = %v, want a permanent mismatch", name, err)
		}
	}
	if st.orders[o.ID].Status != order.New {
		t.Fatalf("a refused result changed the order: %+v", st.orders[o.ID])
	}
	if n := obs.count(t, "orders.results.mismatched"); n != 2 {
		t.Errorf("orders.results.mismatched = %d, want 2", n)
	}
	if !strings.Contains(obs.log.String(), `"msg":"payment result refused"`) {
		t.Errorf("no log line:\n%s", obs.log)
	}
	// The true result applies.
	if err := obs.uc.HandleResults(context.Background(), bun.Tx{}, []stream.Delivery{withPayer(7, 1230)}); err != nil {
		t.Fatal(err)
	}
	if st.orders[o.ID].Status != order.Finished {
		t.Fatalf("the matching result did not settle the order: %+v", st.orders[o.ID])
	}
}

func moneyOf(cents int64) money.Amount { return money.Amount(cents) }

func payloadOf(t *testing.T, r outbox.Row) contract.PaymentRequested {
	t.Helper()
	var p contract.PaymentRequested
	if err := json.Unmarshal([]byte(r.Payload), &p); err != nil {
		t.Fatal(err)
	}
	return p
}
