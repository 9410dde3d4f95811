// Package contract is the message contract between the orders and payments
// services: the streams they meet on, the message types, and the payloads
// those messages carry. It holds data only; each service decides what a
// message means to it.
package contract

import (
	"github.com/google/uuid"

	"shop/services/platform/money"
)

// The streams of the payment flow.
const (
	// PaymentRequestsStream carries PaymentRequested from orders to payments.
	PaymentRequestsStream = "payments.requests"
	// PaymentResultsStream carries PaymentCompleted from payments to orders.
	PaymentResultsStream = "payments.results"
)

// The consumer groups: one per consuming service.
const (
	PaymentsGroup = "payments"
	OrdersGroup   = "orders"
)

// The message types.
const (
	PaymentRequestedType = "payment.requested"
	PaymentCompletedType = "payment.completed"
)

// PaymentRequested asks the payments service to pay for an order.
type PaymentRequested struct {
	OrderID uuid.UUID    `json:"order_id"`
	UserID  int64        `json:"user_id"`
	Amount  money.Amount `json:"amount"`
}

// PaymentStatus is the outcome of a payment, named after the order status
// it leads to.
type PaymentStatus string

const (
	PaymentFinished  PaymentStatus = "FINISHED"
	PaymentCancelled PaymentStatus = "CANCELLED"
)

// PaymentCompleted is the payments service's answer to a PaymentRequested.
type PaymentCompleted struct {
	OrderID uuid.UUID     `json:"order_id"`
	Status  PaymentStatus `json:"status"`
	// Reason says why a payment was declined; empty when it was paid.
	Reason string `json:"reason,omitempty"`
	// UserID and Amount are the payer and the amount as the payment was
	// recorded: orders refuses a result whose user or amount is not the
	// order's. A result without them (from an older payments service) is
	// taken on its order id alone.
	UserID int64        `json:"user_id,omitempty"`
	Amount money.Amount `json:"amount,omitempty"`
}
