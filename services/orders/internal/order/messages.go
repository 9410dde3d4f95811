package order

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"shop/services/platform/messaging"
	"shop/services/platform/money"
)

// The streams and message types of the payment flow.
const (
	PaymentRequestsStream = "payments.requests"
	PaymentResultsStream  = "payments.results"
	PaymentRequestedType  = "payment.requested"
	PaymentCompletedType  = "payment.completed"
)

// PaymentRequested asks the payments service to pay for an order.
type PaymentRequested struct {
	OrderID uuid.UUID    `json:"order_id"`
	UserID  int64        `json:"user_id"`
	Amount  money.Amount `json:"amount"`
}

// PaymentCompleted is the payments service's answer.
type PaymentCompleted struct {
	OrderID uuid.UUID `json:"order_id"`
	Status  Status    `json:"status"`
	Reason  string    `json:"reason,omitempty"`
}

// PaymentRequest is the message that asks to pay for o.
func PaymentRequest(o Order) (messaging.Message, error) {
	payload, err := json.Marshal(PaymentRequested{OrderID: o.ID, UserID: o.UserID, Amount: o.Amount})
	if err != nil {
		return messaging.Message{}, err
	}
	return messaging.Message{Stream: PaymentRequestsStream, Type: PaymentRequestedType, Payload: payload}, nil
}

// ErrPermanent marks a message that can never be applied: malformed, or for
// an order that does not exist. The consumer dead-letters it.
var ErrPermanent = errors.New("unprocessable payment result")

// Payments applies payment results to orders.
type Payments struct {
	store Store
}

// NewPayments returns a Payments on s.
func NewPayments(s Store) *Payments { return &Payments{store: s} }

// Apply applies a payment result within tx and returns the order.
func (p *Payments) Apply(ctx context.Context, tx bun.IDB, res PaymentCompleted) (Order, error) {
	return p.store.Update(ctx, tx, res.OrderID, func(o *Order) (bool, error) {
		return o.ApplyPayment(res.Status, res.Reason, time.Now().UTC())
	})
}

// Handle is the stream handler for payment.completed messages.
func (p *Payments) Handle(ctx context.Context, tx bun.Tx, msg messaging.Message) error {
	if msg.Type != PaymentCompletedType {
		return fmt.Errorf("%w: unexpected message type %q", ErrPermanent, msg.Type)
	}
	var res PaymentCompleted
	if err := json.Unmarshal(msg.Payload, &res); err != nil {
		return fmt.Errorf("%w: decode payload: %v", ErrPermanent, err)
	}
	_, err := p.Apply(ctx, tx, res)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidResult) {
		return fmt.Errorf("%w: order %s: %v", ErrPermanent, res.OrderID, err)
	}
	return err
}
