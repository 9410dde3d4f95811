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

// storedTime is t as the database keeps it: UTC, in microseconds.
func storedTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
