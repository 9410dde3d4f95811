// Package payment decides what happens to an order's payment request: the
// account is debited if it holds enough, otherwise the payment is declined
// with a reason. Either way the result goes back to the orders service.
package payment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"shop/services/platform/messaging"
	"shop/services/platform/money"
)

// The streams and message types payments reads and writes.
const (
	RequestsStream = "payments.requests"
	ResultsStream  = "payments.results"
	RequestedType  = "payment.requested"
	CompletedType  = "payment.completed"
)

// Status is the outcome of a payment, named after the order status it leads to.
type Status string

const (
	Finished  Status = "FINISHED"
	Cancelled Status = "CANCELLED"
)

// Reasons a payment is declined.
const (
	ReasonInsufficientFunds = "insufficient funds"
	ReasonNoAccount         = "insufficient funds: the user had no account, one was opened with a zero balance"
)

// Request is the payload of a payment.requested message.
type Request struct {
	OrderID uuid.UUID    `json:"order_id"`
	UserID  int64        `json:"user_id"`
	Amount  money.Amount `json:"amount"`
}

// Validate checks a request that came from outside this service.
func (r Request) Validate() error {
	switch {
	case r.OrderID == uuid.Nil:
		return errors.New("order_id is required")
	case r.UserID <= 0:
		return errors.New("user_id must be positive")
	case r.Amount <= 0 || r.Amount > money.MaxAmount:
		return fmt.Errorf("amount must be in (0, %s]", money.MaxAmount)
	}
	return nil
}

// Result is the payload of a payment.completed message.
type Result struct {
	OrderID uuid.UUID `json:"order_id"`
	Status  Status    `json:"status"`
	Reason  string    `json:"reason,omitempty"`
}

// ErrPermanent marks a message that can never be processed (malformed); the
// consumer sends it to the dead-letter stream instead of retrying.
var ErrPermanent = errors.New("unprocessable payment request")

// Ledger applies payments within a transaction the caller owns (with the
// inbox record of the message).
type Ledger interface {
	// Pay debits the account of req.UserID by req.Amount if its balance
	// allows, opening an empty account if there is none, and records the
	// outcome once per order. If the order was paid or declined before, it
	// returns that outcome with existing true and changes nothing.
	Pay(ctx context.Context, tx bun.Tx, req Request) (res Result, existing bool, err error)
}

// Outbox writes messages in the caller's transaction.
type Outbox interface {
	Add(ctx context.Context, tx bun.IDB, msg messaging.Message) (messaging.Message, error)
	Notify(ctx context.Context)
}

// Processor handles payment requests.
type Processor struct {
	ledger   Ledger
	outbox   Outbox
	outcomes metric.Int64Counter
}

// Option configures a Processor.
type Option func(*options)

type options struct{ meters metric.MeterProvider }

// WithMeterProvider sends the Processor's metrics to mp instead of the
// global meter provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.meters = mp }
}

// NewProcessor returns a Processor.
func NewProcessor(l Ledger, o Outbox, opts ...Option) *Processor {
	cfg := options{meters: otel.GetMeterProvider()}
	for _, opt := range opts {
		opt(&cfg)
	}
	// The API's error is only for an invalid name, which this is not.
	outcomes, _ := cfg.meters.Meter("shop/services/payments/payment").Int64Counter("payments.outcomes",
		metric.WithUnit("{payment}"),
		metric.WithDescription("Payments decided, by status (FINISHED or CANCELLED) and decline reason"))
	return &Processor{ledger: l, outbox: o, outcomes: outcomes}
}

// Process pays for one order within tx and writes the result to the outbox
// in the same transaction.
func (p *Processor) Process(ctx context.Context, tx bun.Tx, req Request) (Result, error) {
	if err := req.Validate(); err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	res, existing, err := p.ledger.Pay(ctx, tx, req)
	if err != nil {
		return Result{}, fmt.Errorf("pay for order %s: %w", req.OrderID, err)
	}
	if existing {
		// The result was sent when the order was first processed.
		return res, nil
	}
	payload, err := json.Marshal(res)
	if err != nil {
		return Result{}, err
	}
	if _, err := p.outbox.Add(ctx, tx, messaging.Message{Stream: ResultsStream, Type: CompletedType, Payload: payload}); err != nil {
		return Result{}, err
	}
	// Counted when decided; a transaction that then fails to commit is
	// retried and counted again, which is rare enough for a rate.
	p.outcomes.Add(ctx, 1, metric.WithAttributes(
		attribute.String("payment.status", string(res.Status)),
		attribute.String("payment.reason", reasonLabel(res.Reason))))
	return res, nil
}

// reasonLabel keeps the reason attribute to a known, small set.
func reasonLabel(reason string) string {
	switch reason {
	case "":
		return "none"
	case ReasonInsufficientFunds:
		return "insufficient_funds"
	case ReasonNoAccount:
		return "no_account"
	}
	return "other"
}

// Committed tells the outbox's relays that a transaction in which Process
// ran has committed, so the result leaves at once.
func (p *Processor) Committed(ctx context.Context) { p.outbox.Notify(ctx) }

// Handle is the stream handler for payment.requested messages.
func (p *Processor) Handle(ctx context.Context, tx bun.Tx, msg messaging.Message) error {
	if msg.Type != RequestedType {
		return fmt.Errorf("%w: unexpected message type %q", ErrPermanent, msg.Type)
	}
	var req Request
	if err := json.Unmarshal(msg.Payload, &req); err != nil {
		return fmt.Errorf("%w: decode payload: %v", ErrPermanent, err)
	}
	_, err := p.Process(ctx, tx, req)
	return err
}
