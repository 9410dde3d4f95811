// Package shopattr names what the shop's spans, span events and decision
// log lines say about an order: the attribute keys, all in the "shop."
// namespace, and the event names. It holds names only; each service sets
// the values on the spans that do the work. Search Jaeger by tag with
// these keys, e.g. shop.order.id=<id>, to find an order's trace.
package shopattr

import "go.opentelemetry.io/otel/attribute"

// Namespace prefixes every key.
const Namespace = "shop."

// Span attribute keys.
const (
	// OrderID is the order's id (a UUID), on every span that works on one
	// order: the POST /orders server spans, both services' process spans.
	OrderID attribute.Key = "shop.order.id"
	// UserID is the user who pays (a positive integer).
	UserID attribute.Key = "shop.user.id"
	// Amount is the order's amount as a decimal string, "12.30".
	Amount attribute.Key = "shop.amount"
	// OrderStatus is the order's status after the span's work: NEW on
	// creation, FINISHED or CANCELLED once settled.
	OrderStatus attribute.Key = "shop.order.status"
	// PaymentStatus is the payment's outcome: FINISHED (paid) or CANCELLED
	// (declined).
	PaymentStatus attribute.Key = "shop.payment.status"
	// PaymentReason says why a payment was declined; absent when paid.
	PaymentReason attribute.Key = "shop.payment.reason"
	// PaymentDuplicate is true on a request or result for an order decided
	// (or settled) before: it changed nothing, and the status shown is the
	// one recorded then.
	PaymentDuplicate attribute.Key = "shop.payment.duplicate"
	// BalanceBefore and BalanceAfter are the payer's balance around the
	// decision, as decimal strings (on the "payment decided" event).
	BalanceBefore attribute.Key = "shop.balance.before"
	BalanceAfter  attribute.Key = "shop.balance.after"
	// PaymentAttempt is the number of a payment request for its order: 1
	// for the one sent with the order, 2 and on for those reconciliation
	// sends while the order stays NEW (on the "reconcile payment request"
	// span and its "payment requested again" event).
	PaymentAttempt attribute.Key = "shop.payment.attempt"
	// PaymentResent is true on a request for an order decided before whose
	// recorded result payments sent again (a new message, the same outcome,
	// no second debit).
	PaymentResent attribute.Key = "shop.payment.resent"
)

// Keys lists every key above.
var Keys = []attribute.Key{
	OrderID, UserID, Amount, OrderStatus, PaymentStatus, PaymentReason, PaymentDuplicate,
	BalanceBefore, BalanceAfter, PaymentAttempt, PaymentResent,
}

// Span event names.
const (
	// PaymentDecided marks the moment the payments service debited the
	// payer or declined, with the status, reason and balances.
	PaymentDecided = "payment decided"
	// OrderSettled marks the moment the orders service moved the order to
	// FINISHED or CANCELLED.
	OrderSettled = "order settled"
	// PaymentRequestedAgain marks a payment request reconciliation sent for
	// an order still NEW, with its attempt number.
	PaymentRequestedAgain = "payment requested again"
	// PaymentResultResent marks the payments service sending the recorded
	// result of an order decided before, with the status and reason.
	PaymentResultResent = "payment result resent"
)

// Log attribute keys of the decision log lines, beside trace_id.
const (
	LogOrderID = "order_id"
	LogUserID  = "user_id"
	// LogAttempt is the number of a payment request (see PaymentAttempt).
	LogAttempt = "attempt"
)
