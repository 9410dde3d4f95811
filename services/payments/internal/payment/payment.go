// Package payment is the payment rule: whether an order's payment request
// debits the payer's account or is declined, and why. It is pure: the store
// loads and saves the accounts, the use cases carry the messages.
package payment

import (
	"errors"
	"fmt"

	"github.com/google/uuid"

	"shop/services/platform/money"
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

// ErrInvalid marks a request that can never be paid: no order, no user, or
// an amount out of range.
var ErrInvalid = errors.New("invalid payment request")

// Request asks to pay for an order.
type Request struct {
	OrderID uuid.UUID
	UserID  int64
	Amount  money.Amount
}

// Validate checks a request that came from outside this service; the error
// wraps ErrInvalid.
func (r Request) Validate() error {
	switch {
	case r.OrderID == uuid.Nil:
		return fmt.Errorf("%w: order_id is required", ErrInvalid)
	case r.UserID <= 0:
		return fmt.Errorf("%w: user_id must be positive", ErrInvalid)
	case r.Amount <= 0 || r.Amount > money.MaxAmount:
		return fmt.Errorf("%w: amount must be in (0, %s]", ErrInvalid, money.MaxAmount)
	}
	return nil
}

// Result is what became of an order's payment.
type Result struct {
	OrderID uuid.UUID
	Status  Status
	Reason  string
	// UserID and Amount are the payer and the amount the decision was for.
	UserID int64
	Amount money.Amount
}

// Outcome is the result of one request of a batch.
type Outcome struct {
	Result
	// Existing reports an outcome decided before, for an earlier request of
	// the same order (with another message id), whose result was sent then.
	Existing bool
}

// Payer is the payer's account as a payment sees it.
type Payer struct {
	Balance money.Amount
	// Opened reports an account opened for this payment because the user
	// had none.
	Opened bool
}

// Decide is the payment rule. It debits p by req.Amount if the balance
// allows and the payment is Finished; otherwise it is Cancelled, and the
// reason says whether the user had no account (the first payment for an
// account opened for it) or too little money. p is left as the payment
// leaves it, ready for the payer's next request.
func Decide(p *Payer, req Request) Result {
	res := Result{OrderID: req.OrderID, Status: Finished, UserID: req.UserID, Amount: req.Amount}
	switch {
	case p.Balance >= req.Amount:
		p.Balance -= req.Amount
	case p.Opened:
		res.Status, res.Reason = Cancelled, ReasonNoAccount
	default:
		res.Status, res.Reason = Cancelled, ReasonInsufficientFunds
	}
	// Only the first payment is declined for want of an account: the next
	// finds the account, empty.
	p.Opened = false
	return res
}
