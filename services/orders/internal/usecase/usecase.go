// Package usecase is the orders service's application layer: one method per
// use case (create an order, settle a batch of payment results, settle one
// through the internal endpoint, read orders, request again the payment of
// orders left NEW). Each owns its transaction, the inbox record of the
// message it applies, the outbox rows it writes and the wake-up of the
// relay after the commit; the status transition is order.ApplyPayment, the
// schedule of requests order.RequestPayment, and the store only loads,
// locks and saves. The stream
// consumer and the HTTP handlers both call these methods.
package usecase

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"shop/services/contract"
	"shop/services/contract/shopattr"
	"shop/services/orders/internal/order"
	"shop/services/platform/database"
	"shop/services/platform/idempotency"
	"shop/services/platform/inbox"
	"shop/services/platform/messaging"
	"shop/services/platform/money"
	"shop/services/platform/outbox"
	"shop/services/platform/stream"
	"shop/services/platform/telemetry"
)

// Store loads, locks and saves orders (store.Store).
type Store interface {
	InsertAll(ctx context.Context, tx bun.IDB, orders []order.Order, announce *outbox.Insert) error
	Get(ctx context.Context, id uuid.UUID) (order.Order, error)
	ListByUser(ctx context.Context, userID int64, limit int) ([]order.Order, error)
	UpdateAll(ctx context.Context, tx bun.IDB, ids []uuid.UUID, fn func(i int, o *order.Order) (bool, error)) ([]order.Order, error)
	DuePayments(ctx context.Context, tx bun.IDB, now time.Time, limit int) ([]order.Order, error)
	SavePaymentRequests(ctx context.Context, tx bun.IDB, orders []order.Order) error
}

// Outbox writes messages in the caller's transaction, or prepares their
// insert for the statement that writes what they announce, and is told when
// they are committed (outbox.Outbox).
type Outbox interface {
	AddAll(ctx context.Context, tx bun.IDB, msgs []outbox.Pending) ([]messaging.Message, error)
	Insert(ctx context.Context, tx bun.IDB, msgs []outbox.Pending) (*outbox.Insert, error)
	Notify(ctx context.Context)
}

// Keys record the answers to requests with an idempotency key in the
// transaction of their effect, and find them again (idempotency.Keys).
type Keys interface {
	Begin(req idempotency.Request) (release func(), err error)
	Find(ctx context.Context, req idempotency.Request) (idempotency.Response, bool, error)
	Taken(ctx context.Context, req idempotency.Request) (idempotency.Response, error)
	SaveAll(ctx context.Context, tx bun.IDB, records []idempotency.Record) ([]bool, error)
}

// Deps are what the use cases work on.
type Deps struct {
	DB     *bun.DB
	Orders Store
	Outbox Outbox
	// Keys are needed only for creates with an idempotency key.
	Keys Keys
}

// Config configures the use cases. The zero value is sensible.
type Config struct {
	// Creates tunes the group commit of new orders.
	Creates database.GroupCommitConfig
	// ReconcileAfter is how long an order may stay NEW after a payment
	// request before Reconcile requests it again (RECONCILE_AFTER, default
	// 1m); the spacing then grows (order.RetryDelay).
	ReconcileAfter time.Duration
	// Telemetry receives the re-request spans and counts, and the count of
	// refused results (default: the global providers).
	Telemetry telemetry.Providers
	// Logger logs each re-request and each refused result (default
	// slog.Default()).
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	c.ReconcileAfter = cmp.Or(c.ReconcileAfter, time.Minute)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

// Orders are the orders service's use cases.
type Orders struct {
	d       Deps
	cfg     Config
	creates *database.GroupCommit[newOrder]
	tracer  trace.Tracer
	// rerequests counts payment requests sent again by Reconcile,
	// mismatches the results refused for naming another user or amount.
	rerequests metric.Int64Counter
	mismatches metric.Int64Counter
}

// newOrder is an order to create, with the answer to record for its
// idempotency key, if it has one.
type newOrder struct {
	order  order.Order
	answer *idempotency.Record
	// taken is set when another request recorded the key first: the
	// order was then left out of its batch.
	taken *bool
}

// New returns the use cases on d.
func New(d Deps, cfg Config) *Orders {
	cfg = cfg.withDefaults()
	u := &Orders{d: d, cfg: cfg, tracer: cfg.Telemetry.TracerProvider().Tracer(scope)}
	u.creates = database.NewGroupCommit(d.DB, cfg.Creates, u.insert).WithoutTx(u.oneStatement)
	meter := cfg.Telemetry.MeterProvider().Meter(scope)
	// The API's errors are only for invalid names, which these are not.
	u.rerequests, _ = meter.Int64Counter("orders.reconcile.requests",
		metric.WithUnit("{request}"),
		metric.WithDescription("Payment requests sent again for orders still NEW after RECONCILE_AFTER (and the growing spacing)"))
	u.mismatches, _ = meter.Int64Counter("orders.results.mismatched",
		metric.WithUnit("{message}"),
		metric.WithDescription("Payment results refused (dead-lettered) because their user or amount is not the order's"))
	return u
}

const scope = "shop/services/orders/usecase"

// Result is a payment result as the orders service applies it.
type Result struct {
	OrderID uuid.UUID
	Status  order.Status
	Reason  string
	// UserID and Amount are the payer and the amount paid or declined, as
	// payments recorded them; zero when the result does not say.
	UserID int64
	Amount money.Amount
}

// Create stores a new order and its payment request atomically: both or
// neither. Orders created at the same time are written together (a group
// commit), so under load one commit serves many of them.
//
// A request with an idempotency key (key.Keyed()) records its answer, made
// by answer from the order, in the transaction that writes the order. A
// request whose key was answered before creates nothing and returns that
// answer (replay); the same key for another request is
// idempotency.ErrMismatch, and one in flight idempotency.ErrInFlight.
func (u *Orders) Create(ctx context.Context, o order.Order, key idempotency.Request, answer func(order.Order) (idempotency.Response, error)) (replay *idempotency.Response, err error) {
	item := newOrder{order: o}
	if key.Keyed() {
		release, err := u.d.Keys.Begin(key)
		if err != nil {
			return nil, err
		}
		defer release()
		if resp, ok, err := u.d.Keys.Find(ctx, key); err != nil || ok {
			if ok {
				replay = &resp
			}
			return replay, err
		}
		resp, err := answer(o)
		if err != nil {
			return nil, err
		}
		item.answer, item.taken = &idempotency.Record{Request: key, Response: resp}, new(bool)
	}
	annotateCreated(trace.SpanFromContext(ctx), o)
	if err := u.creates.Do(ctx, item); err != nil {
		return nil, err
	}
	if item.taken != nil && *item.taken {
		// Another replica recorded the key meanwhile: its answer is ours.
		resp, err := u.d.Keys.Taken(ctx, key)
		if err != nil {
			return nil, err
		}
		return &resp, nil
	}
	u.d.Outbox.Notify(ctx)
	return nil, nil
}

// insert writes a batch of new orders and their payment requests, each
// request in the trace of the call that created its order: on PostgreSQL
// with one statement for both tables, on SQLite with one for each. The
// idempotency keys of the batch go first: an order whose key another
// request recorded is left out, and only it. tx is the batch's transaction,
// or the database itself for a batch written with one statement
// (oneStatement).
func (u *Orders) insert(ctx context.Context, tx bun.IDB, batch []database.Item[newOrder]) error {
	keep, err := u.recordKeys(ctx, tx, batch)
	if err != nil {
		return err
	}
	orders := make([]order.Order, 0, len(batch))
	msgs := make([]outbox.Pending, 0, len(batch))
	for i, item := range batch {
		if !keep[i] {
			continue
		}
		o := item.Value.order
		// Its first payment request, sent with it: the reconciler's clock
		// starts now.
		o.RequestPayment(o.CreatedAt, u.cfg.ReconcileAfter)
		payload, err := json.Marshal(contract.PaymentRequested{OrderID: o.ID, UserID: o.UserID, Amount: o.Amount})
		if err != nil {
			return err
		}
		orders = append(orders, o)
		msgs = append(msgs, outbox.Pending{Trace: item.Trace, Message: messaging.Message{
			Stream: contract.PaymentRequestsStream, Type: contract.PaymentRequestedType, Payload: payload,
		}})
	}
	if len(orders) == 0 {
		return nil
	}
	requests, err := u.d.Outbox.Insert(ctx, tx, msgs)
	if err != nil {
		return err
	}
	// Each order keeps its request's trace, for the requests sent again.
	for i := range orders {
		orders[i].PaymentTrace = requests.Messages[i].Traceparent
	}
	err = u.d.Orders.InsertAll(ctx, tx, orders, requests)
	requests.Done(err)
	return err
}

// oneStatement reports whether insert writes batch with one statement,
// atomic by itself and so needing no transaction: on PostgreSQL, when no
// order of the batch has an idempotency key to record first.
func (u *Orders) oneStatement(batch []database.Item[newOrder]) bool {
	if !database.IsPostgres(u.d.DB) {
		return false
	}
	for _, item := range batch {
		if item.Value.answer != nil {
			return false
		}
	}
	return true
}

// recordKeys records the answers of the batch's orders that have an
// idempotency key, with one statement, and reports which orders to write:
// all but those whose key was taken (each is marked taken).
func (u *Orders) recordKeys(ctx context.Context, tx bun.IDB, batch []database.Item[newOrder]) ([]bool, error) {
	keep := make([]bool, len(batch))
	var records []idempotency.Record
	var owners []int
	for i, item := range batch {
		keep[i] = true
		if item.Value.answer != nil {
			*item.Value.taken = false // a batch written again starts afresh
			records = append(records, *item.Value.answer)
			owners = append(owners, i)
		}
	}
	if len(records) == 0 {
		return keep, nil
	}
	saved, err := u.d.Keys.SaveAll(ctx, tx, records)
	if err != nil {
		return nil, err
	}
	for j, ok := range saved {
		if !ok {
			i := owners[j]
			keep[i], *batch[i].Value.taken = false, true
		}
	}
	return keep, nil
}

// Get returns the order with id.
func (u *Orders) Get(ctx context.Context, id uuid.UUID) (order.Order, error) {
	return u.d.Orders.Get(ctx, id)
}

// List returns up to limit orders of a user, newest first.
func (u *Orders) List(ctx context.Context, userID int64, limit int) ([]order.Order, error) {
	return u.d.Orders.ListByUser(ctx, userID, limit)
}

// Settle applies one payment result: the internal endpoint's entry into
// the flow the stream feeds, with the same idempotency by message id. It
// returns the order as the result left it; a message id seen before changes
// nothing and returns the order as it is. A result for no order is an error
// wrapping order.ErrNotFound, one that is no payment result wraps
// order.ErrInvalidResult.
func (u *Orders) Settle(ctx context.Context, messageID uuid.UUID, res Result) (order.Order, error) {
	var o order.Order
	err := inbox.Process(ctx, u.d.DB, messageID, contract.PaymentCompletedType, func(ctx context.Context, tx bun.Tx) error {
		orders, err := u.settleAll(ctx, tx, []Result{res}, []trace.Span{trace.SpanFromContext(ctx)})
		if err != nil {
			return err
		}
		o = orders[0]
		return nil
	})
	if errors.Is(err, inbox.ErrDuplicate) {
		o, err = u.d.Orders.Get(ctx, res.OrderID)
		if err == nil {
			annotate(trace.SpanFromContext(ctx), res, o, false)
		}
	}
	return o, err
}

// HandleResults is the stream handler of payment results: it settles the
// whole batch within tx, the consumer's transaction with the inbox records,
// with two statements. A message that can never apply (malformed, not a
// result, for an order that does not exist, or naming another user or
// amount than its order's) fails the batch with a permanent error; the consumer then applies the messages one by one and
// dead-letters only that one.
func (u *Orders) HandleResults(ctx context.Context, tx bun.IDB, batch []stream.Delivery) error {
	results := make([]Result, len(batch))
	spans := make([]trace.Span, len(batch))
	for i, d := range batch {
		res, err := decodeResult(d.Message)
		if err != nil {
			return stream.Permanent(fmt.Errorf("message %s: %w", d.ID, err))
		}
		results[i], spans[i] = res, d.Span()
	}
	_, err := u.settleAll(ctx, tx, results, spans)
	if errors.Is(err, order.ErrResultMismatch) && len(batch) == 1 {
		// Counted when the consumer applies the message alone, the time it
		// is dead-lettered, not for the batch that failed first.
		u.mismatched(ctx, batch[0], err)
	}
	if errors.Is(err, order.ErrNotFound) || errors.Is(err, order.ErrInvalidResult) || errors.Is(err, order.ErrResultMismatch) {
		return stream.Permanent(err)
	}
	return err
}

// mismatched records a result refused because its user or amount is not
// its order's. The order stays NEW: reconciliation requests its payment
// again, and payments answers with the result it recorded.
func (u *Orders) mismatched(ctx context.Context, d stream.Delivery, err error) {
	u.mismatches.Add(ctx, 1)
	u.cfg.Logger.WarnContext(trace.ContextWithSpan(ctx, d.Span()), "payment result refused",
		"message_id", d.Message.ID, "error", err)
}

// decodeResult reads the payment result msg carries.
func decodeResult(msg messaging.Message) (Result, error) {
	if msg.Type != contract.PaymentCompletedType {
		return Result{}, fmt.Errorf("unexpected message type %q", msg.Type)
	}
	var body contract.PaymentCompleted
	if err := json.Unmarshal(msg.Payload, &body); err != nil {
		return Result{}, fmt.Errorf("decode payload: %w", err)
	}
	return Result{OrderID: body.OrderID, Status: order.Status(body.Status), Reason: body.Reason, UserID: body.UserID, Amount: body.Amount}, nil
}

// settleAll applies payment results, in order, within tx, with one
// UpdateAll for them all, and returns the orders as each result left them,
// one per result. A result for an order an earlier one settled is a no-op.
// Each result's span (spans[i]) records what became of its order.
func (u *Orders) settleAll(ctx context.Context, tx bun.IDB, results []Result, spans []trace.Span) ([]order.Order, error) {
	ids := make([]uuid.UUID, len(results))
	for i, res := range results {
		ids[i] = res.OrderID
	}
	now := time.Now().UTC()
	settled := make([]bool, len(results))
	orders, err := u.d.Orders.UpdateAll(ctx, tx, ids, func(i int, o *order.Order) (bool, error) {
		if err := o.CheckResult(results[i].UserID, results[i].Amount); err != nil {
			return false, err
		}
		changed, err := o.ApplyPayment(results[i].Status, results[i].Reason, now)
		settled[i] = changed
		return changed, err
	})
	if err != nil {
		return nil, err
	}
	for i, o := range orders {
		annotate(spans[i], results[i], o, settled[i])
		if settled[i] {
			slog.DebugContext(trace.ContextWithSpan(ctx, spans[i]), "order settled", shopattr.LogOrderID, o.ID,
				shopattr.LogUserID, o.UserID, "status", o.Status, "reason", o.CancelReason)
		}
	}
	return orders, nil
}

// annotate puts on span what a payment result did to order o: the status
// it moved to, with an "order settled" event, or, when o was settled
// before, that the result changed nothing.
func annotate(span trace.Span, res Result, o order.Order, settled bool) {
	attrs := []attribute.KeyValue{
		shopattr.OrderID.String(o.ID.String()),
		shopattr.UserID.Int64(o.UserID),
		shopattr.Amount.String(o.Amount.String()),
		shopattr.PaymentStatus.String(string(res.Status)),
		shopattr.OrderStatus.String(string(o.Status)),
	}
	if res.Reason != "" {
		attrs = append(attrs, shopattr.PaymentReason.String(res.Reason))
	}
	if !settled {
		attrs = append(attrs, shopattr.PaymentDuplicate.Bool(true))
	}
	span.SetAttributes(attrs...)
	if settled {
		span.AddEvent(shopattr.OrderSettled, trace.WithAttributes(shopattr.OrderStatus.String(string(o.Status))))
	}
}

// annotateCreated puts a new order on span, the request's that created it.
func annotateCreated(span trace.Span, o order.Order) {
	span.SetAttributes(
		shopattr.OrderID.String(o.ID.String()),
		shopattr.UserID.Int64(o.UserID),
		shopattr.Amount.String(o.Amount.String()),
		shopattr.OrderStatus.String(string(o.Status)))
}
