// Package store keeps the payments service's accounts, ledger and payment
// outcomes with Bun, on PostgreSQL or SQLite.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"shop/services/payments/internal/account"
	"shop/services/payments/internal/payment"
	"shop/services/platform/money"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the service's schema migrations.
var Migrations, _ = fs.Sub(migrations, "migrations")

type accountRow struct {
	bun.BaseModel `bun:"table:accounts"`

	UserID    int64     `bun:"user_id,pk"`
	Balance   int64     `bun:"balance,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
}

func (r *accountRow) account() account.Account {
	return account.Account{UserID: r.UserID, Balance: money.Amount(r.Balance), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

type ledgerRow struct {
	bun.BaseModel `bun:"table:ledger"`

	ID        uuid.UUID  `bun:"id,pk,type:uuid"`
	UserID    int64      `bun:"user_id,notnull"`
	Kind      string     `bun:"kind,notnull"`
	Amount    int64      `bun:"amount,notnull"`
	OrderID   *uuid.UUID `bun:"order_id,type:uuid"`
	CreatedAt time.Time  `bun:"created_at,notnull"`
}

type paymentRow struct {
	bun.BaseModel `bun:"table:payments"`

	OrderID   uuid.UUID `bun:"order_id,pk,type:uuid"`
	UserID    int64     `bun:"user_id,notnull"`
	Amount    int64     `bun:"amount,notnull"`
	Status    string    `bun:"status,notnull"`
	Reason    string    `bun:"reason,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
}

// Store implements account.Store and payment.Ledger.
type Store struct {
	db *bun.DB
}

// New returns a Store on db, whose schema is migrated.
func New(db *bun.DB) *Store { return &Store{db: db} }

var (
	_ account.Store  = (*Store)(nil)
	_ payment.Ledger = (*Store)(nil)
)

// now is the current time as the database keeps it: UTC, in microseconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Create opens an account with a zero balance.
func (s *Store) Create(ctx context.Context, userID int64) (account.Account, error) {
	t := now()
	row := &accountRow{UserID: userID, CreatedAt: t, UpdatedAt: t}
	res, err := s.db.NewInsert().Model(row).On("CONFLICT (user_id) DO NOTHING").Exec(ctx)
	if err != nil {
		return account.Account{}, fmt.Errorf("create account %d: %w", userID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return account.Account{}, account.ErrExists
	}
	return row.account(), nil
}

// Get returns the account of userID.
func (s *Store) Get(ctx context.Context, userID int64) (account.Account, error) {
	return get(ctx, s.db, userID)
}

func get(ctx context.Context, db bun.IDB, userID int64) (account.Account, error) {
	row := new(accountRow)
	err := db.NewSelect().Model(row).Where("user_id = ?", userID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return account.Account{}, account.ErrNotFound
	}
	if err != nil {
		return account.Account{}, fmt.Errorf("get account %d: %w", userID, err)
	}
	return row.account(), nil
}

// TopUp adds amount to the balance and records it in the ledger, atomically.
// The balance is changed by one conditional UPDATE, so concurrent top-ups
// serialise on the row and none is lost.
func (s *Store) TopUp(ctx context.Context, userID int64, amount money.Positive) (account.Account, error) {
	var acc account.Account
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		t := now()
		row := new(accountRow)
		res, err := tx.NewUpdate().Model(row).
			Set("balance = balance + ?", int64(amount)).
			Set("updated_at = ?", t).
			Where("user_id = ?", userID).
			Where("balance <= ?", int64(account.MaxBalance-money.Amount(amount))).
			Returning("*").
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("top up account %d: %w", userID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if _, err := get(ctx, tx, userID); err != nil {
				return err
			}
			return account.ErrBalanceLimit
		}
		if err := insertLedger(ctx, tx, userID, "top_up", int64(amount), nil, t); err != nil {
			return err
		}
		acc = row.account()
		return nil
	})
	return acc, err
}

func insertLedger(ctx context.Context, tx bun.IDB, userID int64, kind string, amount int64, orderID *uuid.UUID, t time.Time) error {
	id, err := uuid.NewV7()
	if err != nil {
		return err
	}
	row := &ledgerRow{ID: id, UserID: userID, Kind: kind, Amount: amount, OrderID: orderID, CreatedAt: t}
	if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
		return fmt.Errorf("insert %s of %d for user %d: %w", kind, amount, userID, err)
	}
	return nil
}

// Pay implements payment.Ledger. A concurrent Pay for the same order (a
// duplicate with another message id) fails on the unique order id of the
// payments table or ledger and rolls back; its retry then finds the outcome.
func (s *Store) Pay(ctx context.Context, tx bun.Tx, req payment.Request) (payment.Result, bool, error) {
	prev := new(paymentRow)
	err := tx.NewSelect().Model(prev).Where("order_id = ?", req.OrderID).Scan(ctx)
	if err == nil {
		return payment.Result{OrderID: prev.OrderID, Status: payment.Status(prev.Status), Reason: prev.Reason}, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return payment.Result{}, false, fmt.Errorf("look up payment: %w", err)
	}

	t := now()
	res := payment.Result{OrderID: req.OrderID, Status: payment.Finished}
	upd, err := tx.NewUpdate().Model((*accountRow)(nil)).
		Set("balance = balance - ?", int64(req.Amount)).
		Set("updated_at = ?", t).
		Where("user_id = ?", req.UserID).
		Where("balance >= ?", int64(req.Amount)).
		Exec(ctx)
	if err != nil {
		return payment.Result{}, false, fmt.Errorf("debit: %w", err)
	}
	if n, _ := upd.RowsAffected(); n == 1 {
		orderID := req.OrderID
		if err := insertLedger(ctx, tx, req.UserID, "debit", int64(req.Amount), &orderID, t); err != nil {
			return payment.Result{}, false, err
		}
	} else {
		res.Status, res.Reason = payment.Cancelled, payment.ReasonInsufficientFunds
		opened, err := tx.NewInsert().Model(&accountRow{UserID: req.UserID, CreatedAt: t, UpdatedAt: t}).
			On("CONFLICT (user_id) DO NOTHING").Exec(ctx)
		if err != nil {
			return payment.Result{}, false, fmt.Errorf("open account: %w", err)
		}
		if n, _ := opened.RowsAffected(); n == 1 {
			res.Reason = payment.ReasonNoAccount
		}
	}
	row := &paymentRow{
		OrderID: req.OrderID, UserID: req.UserID, Amount: int64(req.Amount),
		Status: string(res.Status), Reason: res.Reason, CreatedAt: t,
	}
	if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
		return payment.Result{}, false, fmt.Errorf("record payment: %w", err)
	}
	return res, false, nil
}

// Outcome returns the recorded outcome of an order's payment.
func (s *Store) Outcome(ctx context.Context, orderID uuid.UUID) (payment.Result, error) {
	row := new(paymentRow)
	if err := s.db.NewSelect().Model(row).Where("order_id = ?", orderID).Scan(ctx); err != nil {
		return payment.Result{}, fmt.Errorf("look up payment of order %s: %w", orderID, err)
	}
	return payment.Result{OrderID: row.OrderID, Status: payment.Status(row.Status), Reason: row.Reason}, nil
}
