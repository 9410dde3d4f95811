// Package store keeps the payments service's accounts, ledger and payment
// outcomes with Bun, on PostgreSQL or SQLite: it loads, locks and saves,
// and leaves the payment rule to the decision its callers pass.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"shop/services/payments/internal/account"
	"shop/services/payments/internal/payment"
	"shop/services/platform/database"
	"shop/services/platform/messaging"
	"shop/services/platform/money"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the payments database's schema: the platform's outbox and
// inbox, then accounts, ledger and payments.
var Migrations = messaging.ServiceMigrations(migrations, "migrations")

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

// Store keeps accounts (account.Store) and pays for orders (PayAll).
type Store struct {
	db *bun.DB
}

// New returns a Store on db, whose schema is migrated.
func New(db *bun.DB) *Store { return &Store{db: db} }

var _ account.Store = (*Store)(nil)

// now is the current time as the database keeps it: UTC, in microseconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Create opens an account with a zero balance.
func (s *Store) Create(ctx context.Context, userID int64) (account.Account, error) {
	return s.CreateIn(ctx, s.db, userID)
}

// CreateIn opens an account with a zero balance within tx.
func (s *Store) CreateIn(ctx context.Context, tx bun.IDB, userID int64) (account.Account, error) {
	t := now()
	row := &accountRow{UserID: userID, CreatedAt: t, UpdatedAt: t}
	res, err := tx.NewInsert().Model(row).On("CONFLICT (user_id) DO NOTHING").Exec(ctx)
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
		var err error
		acc, err = s.TopUpIn(ctx, tx, userID, amount)
		return err
	})
	return acc, err
}

// TopUpIn is TopUp within tx, a transaction of the caller's.
func (s *Store) TopUpIn(ctx context.Context, tx bun.IDB, userID int64, amount money.Positive) (account.Account, error) {
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
		return account.Account{}, fmt.Errorf("top up account %d: %w", userID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := get(ctx, tx, userID); err != nil {
			return account.Account{}, err
		}
		return account.Account{}, account.ErrBalanceLimit
	}
	if err := insertLedger(ctx, tx, userID, "top_up", int64(amount), nil, t); err != nil {
		return account.Account{}, err
	}
	return row.account(), nil
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

// PayAll pays for the orders of reqs in turn within tx, with a few
// statements for the whole batch whatever its size: it reads the outcomes
// recorded before, locks the payers' accounts (in user id order, so
// concurrent batches never deadlock on them), opens the missing ones with a
// zero balance, lets decide settle each new payment in order, and writes
// the balances, the debits and the outcomes with one statement each. An
// order paid or declined before (or earlier in reqs) keeps that outcome,
// reported with Existing true, and decide does not see it. A concurrent
// PayAll for the same order (a duplicate under another message id) fails on
// the unique order id of the payments table and rolls back; its retry then
// finds the outcome.
func (s *Store) PayAll(ctx context.Context, tx bun.IDB, reqs []payment.Request, decide func(*payment.Payer, payment.Request) payment.Result) ([]payment.Outcome, error) {
	outcomes := make([]payment.Outcome, len(reqs))
	decided, err := recordedOutcomes(ctx, tx, reqs)
	if err != nil {
		return nil, err
	}
	var users []int64
	for _, req := range reqs {
		if _, ok := decided[req.OrderID]; !ok {
			users = append(users, req.UserID)
		}
	}
	t := now()
	accounts, opened, err := lockAccounts(ctx, tx, users, t)
	if err != nil {
		return nil, err
	}
	payers := make(map[int64]*payment.Payer, len(accounts))
	for userID, acc := range accounts {
		payers[userID] = &payment.Payer{Balance: money.Amount(acc.Balance), Opened: opened[userID]}
	}

	var debits []ledgerRow
	var payments []paymentRow
	for i, req := range reqs {
		if res, ok := decided[req.OrderID]; ok {
			outcomes[i] = payment.Outcome{Result: res, Existing: true}
			continue
		}
		res := decide(payers[req.UserID], req)
		if res.Status == payment.Finished {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, err
			}
			orderID := req.OrderID
			debits = append(debits, ledgerRow{ID: id, UserID: req.UserID, Kind: "debit", Amount: int64(req.Amount), OrderID: &orderID, CreatedAt: t})
		}
		decided[req.OrderID] = res
		outcomes[i] = payment.Outcome{Result: res}
		payments = append(payments, paymentRow{
			OrderID: req.OrderID, UserID: req.UserID, Amount: int64(req.Amount),
			Status: string(res.Status), Reason: res.Reason, CreatedAt: t,
		})
	}

	if len(debits) > 0 {
		var rows []accountRow
		for userID, p := range payers {
			if acc := accounts[userID]; int64(p.Balance) != acc.Balance {
				acc.Balance, acc.UpdatedAt = int64(p.Balance), t
				rows = append(rows, *acc)
			}
		}
		if _, err := tx.NewUpdate().Model(&rows).Column("balance", "updated_at").Bulk().Exec(ctx); err != nil {
			return nil, fmt.Errorf("debit %d accounts: %w", len(rows), err)
		}
		if _, err := tx.NewInsert().Model(&debits).Exec(ctx); err != nil {
			return nil, fmt.Errorf("record %d debits: %w", len(debits), err)
		}
	}
	if len(payments) > 0 {
		if _, err := tx.NewInsert().Model(&payments).Exec(ctx); err != nil {
			return nil, fmt.Errorf("record %d payments: %w", len(payments), err)
		}
	}
	return outcomes, nil
}

// recordedOutcomes returns the outcomes recorded before for the orders of
// reqs.
func recordedOutcomes(ctx context.Context, tx bun.IDB, reqs []payment.Request) (map[uuid.UUID]payment.Result, error) {
	ids := make([]uuid.UUID, len(reqs))
	for i, req := range reqs {
		ids[i] = req.OrderID
	}
	var rows []paymentRow
	if err := tx.NewSelect().Model(&rows).Where("order_id IN (?)", bun.In(ids)).Scan(ctx); err != nil {
		return nil, fmt.Errorf("look up payments: %w", err)
	}
	decided := make(map[uuid.UUID]payment.Result, len(reqs))
	for _, r := range rows {
		decided[r.OrderID] = r.result()
	}
	return decided, nil
}

// lockAccounts returns the accounts of users, locked for the rest of tx,
// opening with a zero balance those that do not exist (reported in
// opened). On PostgreSQL the rows are locked in user id order; on SQLite
// the transaction is the only writer.
func lockAccounts(ctx context.Context, tx bun.IDB, users []int64, t time.Time) (accounts map[int64]*accountRow, opened map[int64]bool, err error) {
	accounts = make(map[int64]*accountRow, len(users))
	opened = map[int64]bool{}
	if len(users) == 0 {
		return accounts, opened, nil
	}
	if err := selectForUpdate(ctx, tx, users, accounts); err != nil {
		return nil, nil, err
	}
	var missing []accountRow
	for _, userID := range users {
		if _, ok := accounts[userID]; !ok {
			accounts[userID] = &accountRow{UserID: userID, CreatedAt: t, UpdatedAt: t}
			missing = append(missing, *accounts[userID])
		}
	}
	if len(missing) == 0 {
		return accounts, opened, nil
	}
	var created []int64
	_, err = tx.NewInsert().Model(&missing).On("CONFLICT (user_id) DO NOTHING").Returning("user_id").Exec(ctx, &created)
	if err != nil {
		return nil, nil, fmt.Errorf("open %d accounts: %w", len(missing), err)
	}
	for _, userID := range created {
		opened[userID] = true
	}
	if len(created) == len(missing) {
		return accounts, opened, nil
	}
	// Opened meanwhile by a request of their own: lock them as they are.
	var raced []int64
	for _, row := range missing {
		if !opened[row.UserID] {
			raced = append(raced, row.UserID)
		}
	}
	if err := selectForUpdate(ctx, tx, raced, accounts); err != nil {
		return nil, nil, err
	}
	return accounts, opened, nil
}

// selectForUpdate reads the accounts of users into accounts, locking them
// in user id order on PostgreSQL.
func selectForUpdate(ctx context.Context, tx bun.IDB, users []int64, accounts map[int64]*accountRow) error {
	var rows []accountRow
	q := tx.NewSelect().Model(&rows).Where("user_id IN (?)", bun.In(users)).Order("user_id")
	if err := database.LockRows(tx, q, "UPDATE").Scan(ctx); err != nil {
		return fmt.Errorf("lock %d accounts: %w", len(users), err)
	}
	for i := range rows {
		accounts[rows[i].UserID] = &rows[i]
	}
	return nil
}

// Outcome returns the recorded outcome of an order's payment.
func (s *Store) Outcome(ctx context.Context, orderID uuid.UUID) (payment.Result, error) {
	row := new(paymentRow)
	if err := s.db.NewSelect().Model(row).Where("order_id = ?", orderID).Scan(ctx); err != nil {
		return payment.Result{}, fmt.Errorf("look up payment of order %s: %w", orderID, err)
	}
	return row.result(), nil
}

func (r *paymentRow) result() payment.Result {
	return payment.Result{OrderID: r.OrderID, Status: payment.Status(r.Status), Reason: r.Reason, UserID: r.UserID, Amount: money.Amount(r.Amount)}
}
