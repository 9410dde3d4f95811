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
	"shop/services/platform/stream"
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

// Apply applies payment results, in order, within tx, with one UpdateAll
// for them all, and returns the orders as each result left them, one per
// result. A result for an order an earlier one settled is a no-op.
func (p *Payments) Apply(ctx context.Context, tx bun.IDB, results []PaymentCompleted) ([]Order, error) {
	ids := make([]uuid.UUID, len(results))
	for i, res := range results {
		ids[i] = res.OrderID
	}
	now := time.Now().UTC()
	return p.store.UpdateAll(ctx, tx, ids, func(i int, o *Order) (bool, error) {
		return o.ApplyPayment(results[i].Status, results[i].Reason, now)
	})
}

// HandleBatch is the stream handler for payment.completed messages: it
// applies a whole batch at once. A message that can never apply fails the
// batch with an error wrapping ErrPermanent; the consumer then retries the
// messages one by one and dead-letters only that one.
func (p *Payments) HandleBatch(ctx context.Context, tx bun.Tx, batch []stream.Delivery) error {
	results := make([]PaymentCompleted, len(batch))
	for i, d := range batch {
		res, err := decodeResult(d.Message)
		if err != nil {
			return fmt.Errorf("message %s: %w", d.ID, err)
		}
		results[i] = res
	}
	_, err := p.Apply(ctx, tx, results)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalidResult) {
		return fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	return err
}

// decodeResult reads the payment result msg carries.
func decodeResult(msg messaging.Message) (PaymentCompleted, error) {
	var res PaymentCompleted
	if msg.Type != PaymentCompletedType {
		return res, fmt.Errorf("%w: unexpected message type %q", ErrPermanent, msg.Type)
	}
	if err := json.Unmarshal(msg.Payload, &res); err != nil {
		return res, fmt.Errorf("%w: decode payload: %v", ErrPermanent, err)
	}
	return res, nil
}
