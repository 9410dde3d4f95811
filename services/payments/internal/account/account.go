// Package account is the payments domain's account: a user's balance, its
// bound, and the store of accounts. The payment rule is payment.Decide.
package account

import (
	"context"
	"errors"
	"time"

	"shop/services/platform/money"
)

// MaxBalance bounds a balance so that no sum of top-ups can overflow.
const MaxBalance = 1000 * money.MaxAmount

// Errors the store returns; the HTTP layer maps them to status codes.
var (
	ErrExists       = errors.New("account already exists")
	ErrNotFound     = errors.New("account not found")
	ErrBalanceLimit = errors.New("top-up would exceed the maximum balance of " + MaxBalance.String())
)

// Account is one user's account. A balance is never negative.
type Account struct {
	UserID    int64
	Balance   money.Amount
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Store keeps accounts. TopUp writes the ledger entry and the new balance in
// one transaction; concurrent top-ups never lose an update.
type Store interface {
	Create(ctx context.Context, userID int64) (Account, error)
	TopUp(ctx context.Context, userID int64, amount money.Positive) (Account, error)
	Get(ctx context.Context, userID int64) (Account, error)
}
