// Package order is the orders domain: an order and its life from NEW to
// FINISHED or CANCELLED, whose one transition, ApplyPayment, is pure. The
// store loads and saves orders; the use cases carry the messages.
package order

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"shop/services/platform/money"
)

// Status is where an order is in its life.
type Status string

const (
	New       Status = "NEW"
	Finished  Status = "FINISHED"
	Cancelled Status = "CANCELLED"
)

// Terminal reports whether the status can no longer change.
func (s Status) Terminal() bool { return s == Finished || s == Cancelled }

// Errors the store and the domain return.
var (
	ErrNotFound      = errors.New("order not found")
	ErrInvalidResult = errors.New("invalid payment result")
	// ErrResultMismatch marks a payment result whose user or amount is not
	// the order's: it was not the answer to this order's request.
	ErrResultMismatch = errors.New("payment result does not match the order")
)

// Order is a user's order. It is created NEW, and its payment moves it to
// FINISHED or CANCELLED once; a terminal order never changes again.
type Order struct {
	ID           uuid.UUID
	UserID       int64
	Amount       money.Amount
	Description  string
	Status       Status
	CancelReason string
	CreatedAt    time.Time
	UpdatedAt    time.Time

	// PaymentRequests counts the requests for the order's payment sent so
	// far, PaymentRequestedAt is when the last one was, and PaymentRetryAt
	// is when the order, if still NEW, is requested again (see
	// RequestPayment).
	PaymentRequests    int
	PaymentRequestedAt time.Time
	PaymentRetryAt     time.Time
	// PaymentTrace is the W3C traceparent of the first payment request,
	// which the requests sent again continue: one trace per order.
	PaymentTrace string
}

// NewOrder returns a NEW order with a fresh UUIDv7 id.
func NewOrder(userID int64, amount money.Amount, description string, now time.Time) (Order, error) {
	now = storedTime(now)
	id, err := uuid.NewV7()
	if err != nil {
		return Order{}, fmt.Errorf("new order id: %w", err)
	}
	return Order{
		ID: id, UserID: userID, Amount: amount, Description: description,
		Status: New, CreatedAt: now, UpdatedAt: now,
	}, nil
}

// ApplyPayment moves a NEW order to the status the payment led to. On a
// terminal order it changes nothing and reports false: a late or duplicated
// result is a no-op.
func (o *Order) ApplyPayment(status Status, reason string, now time.Time) (bool, error) {
	if !status.Terminal() {
		return false, fmt.Errorf("%w: status %q", ErrInvalidResult, status)
	}
	if o.Status.Terminal() {
		return false, nil
	}
	o.Status = status
	o.CancelReason = ""
	if status == Cancelled {
		o.CancelReason = reason
		if o.CancelReason == "" {
			o.CancelReason = "payment declined"
		}
	}
	o.UpdatedAt = storedTime(now)
	return true, nil
}

// MaxRetryDelay caps the spacing of an order's payment requests, unless
// the first spacing is longer.
const MaxRetryDelay = time.Hour

// RetryDelay is how long after its n-th payment request (n ≥ 1) an order
// still NEW is requested again: after, then twice, four times … as long,
// at most MaxRetryDelay (or after, if longer). A request lost with a
// broker's data is sent again after about after; an outage of payments does
// not turn into a storm of requests when it ends.
func RetryDelay(n int, after time.Duration) time.Duration {
	limit := max(MaxRetryDelay, after)
	d := after
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// RequestPayment records a request for the order's payment sent at now
// and schedules the next one, if the order is then still NEW, RetryDelay
// later. It reports false, and changes nothing, on a terminal order.
func (o *Order) RequestPayment(now time.Time, after time.Duration) bool {
	if o.Status.Terminal() {
		return false
	}
	o.PaymentRequests++
	o.PaymentRequestedAt = storedTime(now)
	o.PaymentRetryAt = o.PaymentRequestedAt.Add(RetryDelay(o.PaymentRequests, after))
	return true
}

// PaymentDue reports whether the order's payment is to be requested again
// at now: it is NEW and its retry time has come.
func (o Order) PaymentDue(now time.Time) bool {
	return o.Status == New && !now.Before(o.PaymentRetryAt)
}

// CheckResult checks that a payment result for the order names its user
// and amount. A result that names neither (from a payments service older
// than these fields) is taken on its order id alone. The error wraps
// ErrResultMismatch.
func (o Order) CheckResult(userID int64, amount money.Amount) error {
	if userID == 0 && amount == 0 {
		return nil
	}
	if userID != o.UserID || amount != o.Amount {
		return fmt.Errorf("%w: result for user %d, amount %s; order of user %d, amount %s",
			ErrResultMismatch, userID, amount, o.UserID, o.Amount)
	}
	return nil
}

// storedTime is t as the database keeps it: UTC, in microseconds.
func storedTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
