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
	"shop/services/platform/outbox"
	"shop/services/platform/stream"
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
// inbox records of the messages).
type Ledger interface {
	// PayAll pays for the orders of reqs in turn: it debits the account of
	// req.UserID by req.Amount if its balance allows, opening an empty
	// account if there is none, and records the outcome once per order. An
	// order paid or declined before (or earlier in reqs) keeps that outcome,
	// reported with Existing true, and nothing changes for it.
	PayAll(ctx context.Context, tx bun.Tx, reqs []Request) ([]Outcome, error)
}

// Outcome is what became of one payment request.
type Outcome struct {
	Result
	// Existing reports an outcome decided before, whose result was sent then.
	Existing bool
}

// Outbox writes messages in the caller's transaction.
type Outbox interface {
	AddAll(ctx context.Context, tx bun.IDB, msgs []outbox.Pending) ([]messaging.Message, error)
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
	results, err := p.process(ctx, tx, []Request{req}, []context.Context{ctx})
	if err != nil {
		return Result{}, err
	}
	return results[0], nil
}

// process pays for the orders of reqs within tx, a few statements for all
// of them, and writes the result of each newly decided one to the outbox in
// the same transaction, in the trace of its request's context in ctxs.
func (p *Processor) process(ctx context.Context, tx bun.Tx, reqs []Request, ctxs []context.Context) ([]Result, error) {
	outcomes, err := p.ledger.PayAll(ctx, tx, reqs)
	if err != nil {
		return nil, fmt.Errorf("pay for %d orders: %w", len(reqs), err)
	}
	results := make([]Result, len(outcomes))
	var msgs []outbox.Pending
	for i, o := range outcomes {
		results[i] = o.Result
		if o.Existing {
			continue // the result was sent when the order was first processed
		}
		payload, err := json.Marshal(o.Result)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, outbox.Pending{Ctx: ctxs[i], Message: messaging.Message{
			Stream: ResultsStream, Type: CompletedType, Payload: payload,
		}})
	}
	if _, err := p.outbox.AddAll(ctx, tx, msgs); err != nil {
		return nil, err
	}
	// Counted when decided; a transaction that then fails to commit is
	// retried and counted again, which is rare enough for a rate.
	for i, o := range outcomes {
		if !o.Existing {
			p.outcomes.Add(ctxs[i], 1, metric.WithAttributes(
				attribute.String("payment.status", string(o.Status)),
				attribute.String("payment.reason", reasonLabel(o.Reason))))
		}
	}
	return results, nil
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

// Handle is the stream handler for payment.requested messages: the whole
// batch is paid with a few statements. A malformed message fails the batch
// with ErrPermanent; the consumer then applies each message alone, and only
// that one is dead-lettered.
func (p *Processor) Handle(ctx context.Context, tx bun.Tx, batch []stream.Delivery) error {
	reqs := make([]Request, len(batch))
	ctxs := make([]context.Context, len(batch))
	for i, d := range batch {
		if d.Type != RequestedType {
			return fmt.Errorf("%w: message %s: unexpected type %q", ErrPermanent, d.ID, d.Type)
		}
		if err := json.Unmarshal(d.Payload, &reqs[i]); err != nil {
			return fmt.Errorf("%w: message %s: decode payload: %v", ErrPermanent, d.ID, err)
		}
		if err := reqs[i].Validate(); err != nil {
			return fmt.Errorf("%w: message %s: %v", ErrPermanent, d.ID, err)
		}
		ctxs[i] = d.Ctx
	}
	_, err := p.process(ctx, tx, reqs, ctxs)
	return err
}
