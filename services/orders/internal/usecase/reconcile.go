package usecase

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"shop/services/contract"
	"shop/services/contract/shopattr"
	"shop/services/orders/internal/order"
	"shop/services/platform/messaging"
	"shop/services/platform/outbox"
)

// Reconcile requests payment again for up to limit orders still NEW whose
// retry time has come (order.PaymentDue), in one transaction: it claims
// them (on PostgreSQL skipping those another replica or a result holds),
// writes a payment request with a new message id for each to the outbox,
// and schedules each one's next request further out (order.RetryDelay).
// A request or result the broker lost is so sent again; payments answers an
// order it decided before with the result it recorded, never a second
// debit. Each re-request is a span in the order's trace (of its first
// request), and is counted and logged. It returns the orders it
// requested again.
func (u *Orders) Reconcile(ctx context.Context, now time.Time, limit int) ([]order.Order, error) {
	var due []order.Order
	var spans []trace.Span
	defer func() {
		for _, span := range spans {
			span.End()
		}
	}()
	err := u.d.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		spans = endAll(spans)
		var err error
		if due, err = u.d.Orders.DuePayments(ctx, tx, now, limit); err != nil || len(due) == 0 {
			return err
		}
		msgs := make([]outbox.Pending, len(due))
		for i := range due {
			o := &due[i]
			o.RequestPayment(now, u.cfg.ReconcileAfter)
			_, span := u.tracer.Start(orderTrace(ctx, o.PaymentTrace), "reconcile payment request",
				trace.WithSpanKind(trace.SpanKindInternal),
				trace.WithAttributes(
					shopattr.OrderID.String(o.ID.String()),
					shopattr.UserID.Int64(o.UserID),
					shopattr.Amount.String(o.Amount.String()),
					shopattr.OrderStatus.String(string(o.Status)),
					shopattr.PaymentAttempt.Int(o.PaymentRequests),
				))
			spans = append(spans, span)
			payload, err := json.Marshal(contract.PaymentRequested{OrderID: o.ID, UserID: o.UserID, Amount: o.Amount})
			if err != nil {
				return err
			}
			// No message id: the outbox gives it a new one, so the payments
			// inbox, which has seen the first, takes it.
			msgs[i] = outbox.Pending{Trace: span.SpanContext(), Message: messaging.Message{
				Stream: contract.PaymentRequestsStream, Type: contract.PaymentRequestedType, Payload: payload,
			}}
		}
		if err := u.d.Orders.SavePaymentRequests(ctx, tx, due); err != nil {
			return err
		}
		_, err = u.d.Outbox.AddAll(ctx, tx, msgs)
		return err
	})
	if err != nil {
		for _, span := range spans {
			span.RecordError(err)
			span.SetStatus(codes.Error, "reconcile failed")
		}
		return nil, fmt.Errorf("reconcile payments: %w", err)
	}
	if len(due) == 0 {
		return nil, nil
	}
	u.d.Outbox.Notify(ctx)
	for i, o := range due {
		sctx := trace.ContextWithSpan(ctx, spans[i])
		spans[i].AddEvent(shopattr.PaymentRequestedAgain, trace.WithAttributes(shopattr.PaymentAttempt.Int(o.PaymentRequests)))
		u.rerequests.Add(sctx, 1)
		u.cfg.Logger.InfoContext(sctx, "payment requested again", shopattr.LogOrderID, o.ID, shopattr.LogUserID, o.UserID,
			shopattr.LogAttempt, o.PaymentRequests, "requested_before", o.PaymentRequestedAt.Sub(o.CreatedAt).Round(time.Millisecond),
			"next_at", o.PaymentRetryAt)
	}
	return due, nil
}

// orderTrace is ctx continuing the trace of traceparent, the order's first
// payment request, so that the order's story stays one trace; with none
// (an order from before the column), ctx starts a new trace.
func orderTrace(ctx context.Context, traceparent string) context.Context {
	ctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{})
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// endAll ends spans of a transaction that is being retried.
func endAll(spans []trace.Span) []trace.Span {
	for _, span := range spans {
		span.End()
	}
	return spans[:0]
}

// ReconcilerConfig configures a Reconciler. The zero value is sensible.
type ReconcilerConfig struct {
	// Interval is how often the reconciler looks for orders due (default
	// a quarter of the use cases' ReconcileAfter, at least 100ms and at
	// most 10s): an order lost with the broker's data is requested again
	// within ReconcileAfter plus Interval.
	Interval time.Duration
	// Batch bounds the orders one transaction requests again (default
	// 500); the reconciler goes on at once while batches come back full.
	Batch int
	// Logger receives errors (default slog.Default()).
	Logger *slog.Logger
}

func (c ReconcilerConfig) withDefaults(after time.Duration) ReconcilerConfig {
	c.Interval = cmp.Or(c.Interval, min(max(after/4, 100*time.Millisecond), 10*time.Second))
	c.Batch = cmp.Or(c.Batch, 500)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

// Reconciler runs Reconcile every Interval: the background loop of
// reconciliation. Any number of replicas may run one.
type Reconciler struct {
	orders *Orders
	cfg    ReconcilerConfig
}

// NewReconciler returns a reconciler of u's orders.
func NewReconciler(u *Orders, cfg ReconcilerConfig) *Reconciler {
	return &Reconciler{orders: u, cfg: cfg.withDefaults(u.cfg.ReconcileAfter)}
}

// Run reconciles until ctx ends, then returns nil. Errors (the database
// unreachable) are logged and retried at the next interval.
func (r *Reconciler) Run(ctx context.Context) error {
	messaging.Every(ctx, r.cfg.Interval, func(ctx context.Context) {
		for ctx.Err() == nil {
			due, err := r.orders.Reconcile(ctx, time.Now(), r.cfg.Batch)
			if err != nil {
				if ctx.Err() == nil {
					r.cfg.Logger.WarnContext(ctx, "reconcile payments", "error", err)
				}
				return
			}
			if len(due) < r.cfg.Batch {
				return
			}
		}
	})
	return nil
}
