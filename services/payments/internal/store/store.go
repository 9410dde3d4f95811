// Package store keeps the payments service's accounts, ledger and payment
// outcomes with Bun, on PostgreSQL or SQLite: it loads, locks and saves,
// and leaves the payment rule to the decision its callers pass.
package store

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"shop/services/payments/internal/account"
	"shop/services/payments/internal/payment"
	"shop/services/platform/database"
	"shop/services/platform/messaging"
	"shop/services/platform/money"
	"shop/services/platform/outbox"
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

// PayAll pays for the orders of reqs in turn within tx: it reads the
// outcomes recorded before, locks the payers' accounts (in user id order,
// so concurrent batches never deadlock on them), opens the missing ones
// with a zero balance, lets decide settle each new payment in order, and
// writes the balances, the debits, the outcomes and the rows announce makes
// of the outcomes (the caller's outbox rows; a nil announce or Insert adds
// none). announce returns its insert unsent, so that the rows go with the
// payments' own writes. On PostgreSQL the batch takes two prepared statements
// whatever its size, one to read and lock and one to write (and, rarely, a
// third to lock an account another transaction opened meanwhile); on
// SQLite, a statement per table.
//
// An order paid or declined before (or earlier in reqs) keeps that
// outcome, reported with Existing true, and decide does not see it. A
// concurrent PayAll for the same order (a duplicate under another message
// id) fails on the unique order id of the payments table and rolls back;
// its retry then finds the outcome.
func (s *Store) PayAll(ctx context.Context, tx bun.IDB, reqs []payment.Request,
	decide func(*payment.Payer, payment.Request) payment.Result,
	announce func([]payment.Outcome) (*outbox.Insert, error),
) ([]payment.Outcome, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	t := now()
	pg := database.IsPostgres(tx)
	lock := lockPortable
	if pg {
		lock = lockPostgres
	}
	b, err := lock(ctx, tx, reqs, t)
	if err != nil {
		return nil, err
	}
	outcomes, w, err := b.pay(reqs, decide, t)
	if err != nil {
		return nil, err
	}
	if announce != nil {
		if w.announce, err = announce(outcomes); err != nil {
			return nil, err
		}
	}
	save := w.savePortable
	if pg {
		save = w.savePostgres
	}
	if err := save(ctx, tx); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// batch is what a batch of payments is decided on: the outcomes recorded
// for its orders, and its payers' accounts, locked.
type batch struct {
	decided map[uuid.UUID]payment.Result
	payers  map[int64]*payment.Payer
	// locked are the balances as locked, to tell the ones that changed.
	locked map[int64]money.Amount
}

func newBatch(decided map[uuid.UUID]payment.Result) *batch {
	return &batch{decided: decided, payers: map[int64]*payment.Payer{}, locked: map[int64]money.Amount{}}
}

// add is the locked account of a payer, opened for the batch or not.
func (b *batch) add(userID int64, balance money.Amount, opened bool) {
	b.payers[userID] = &payment.Payer{Balance: balance, Opened: opened}
	b.locked[userID] = balance
}

// users returns the users with an order of reqs to decide, each once.
func (b *batch) users(reqs []payment.Request) []int64 {
	var users []int64
	seen := make(map[int64]bool, len(reqs))
	for _, req := range reqs {
		if _, ok := b.decided[req.OrderID]; !ok && !seen[req.UserID] {
			seen[req.UserID] = true
			users = append(users, req.UserID)
		}
	}
	return users
}

// writes are what deciding a batch leaves to write: the changed balances,
// the debits, the new outcomes, and the rows announcing the outcomes.
type writes struct {
	balances []accountRow
	debits   []ledgerRow
	payments []paymentRow
	announce *outbox.Insert
}

// pay decides the new payments of reqs in order, and returns the outcome
// of each request and the writes they make.
func (b *batch) pay(reqs []payment.Request, decide func(*payment.Payer, payment.Request) payment.Result, t time.Time) ([]payment.Outcome, *writes, error) {
	outcomes := make([]payment.Outcome, len(reqs))
	w := new(writes)
	for i, req := range reqs {
		if res, ok := b.decided[req.OrderID]; ok {
			outcomes[i] = payment.Outcome{Result: res, Existing: true}
			continue
		}
		res := decide(b.payers[req.UserID], req)
		if res.Status == payment.Finished {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, nil, err
			}
			orderID := req.OrderID
			w.debits = append(w.debits, ledgerRow{ID: id, UserID: req.UserID, Kind: "debit", Amount: int64(req.Amount), OrderID: &orderID, CreatedAt: t})
		}
		b.decided[req.OrderID] = res
		outcomes[i] = payment.Outcome{Result: res}
		w.payments = append(w.payments, paymentRow{
			OrderID: req.OrderID, UserID: req.UserID, Amount: int64(req.Amount),
			Status: string(res.Status), Reason: res.Reason, CreatedAt: t,
		})
	}
	for userID, p := range b.payers {
		if p.Balance != b.locked[userID] {
			w.balances = append(w.balances, accountRow{UserID: userID, Balance: int64(p.Balance), UpdatedAt: t})
		}
	}
	slices.SortFunc(w.balances, func(a, b accountRow) int { return cmp.Compare(a.UserID, b.UserID) })
	return outcomes, w, nil
}

// lockBatch reads in one prepared statement what a batch is decided on: the
// outcomes recorded for its orders (payment rows), and the accounts of the
// users with an order to decide, locked in user id order (account rows),
// opening the missing ones with a zero balance (opened rows). Rows a
// statement inserts are invisible to its own reads, so the opened accounts
// come from the insert's RETURNING, locked by being inserted. The insert
// opens the users the lock did not find, so it runs after the lock, and
// the locks are taken as on the portable path: the existing accounts by
// user id, then the new ones by user id. An account another transaction
// opened after the statement began is in neither: the insert skips it, the
// lock did not see it.
var lockBatch = database.NewStatement("SELECT", "accounts", `
WITH batch (order_id, user_id) AS (
	SELECT * FROM unnest($1::uuid[], $2::bigint[])
), recorded AS (
	SELECT order_id, user_id, amount, status, reason FROM payments
	WHERE order_id IN (SELECT order_id FROM batch)
), payers AS (
	SELECT DISTINCT user_id FROM batch WHERE order_id NOT IN (SELECT order_id FROM recorded)
), locked AS (
	SELECT user_id, balance FROM accounts WHERE user_id IN (SELECT user_id FROM payers)
	ORDER BY user_id FOR UPDATE
), opened AS (
	INSERT INTO accounts (user_id, balance, created_at, updated_at)
	SELECT user_id, 0, $3::timestamptz, $3::timestamptz FROM payers
	WHERE user_id NOT IN (SELECT user_id FROM locked)
	ORDER BY user_id
	ON CONFLICT (user_id) DO NOTHING
	RETURNING user_id, balance
)
SELECT 'payment' AS kind, order_id, user_id, amount, status, reason FROM recorded
UNION ALL
SELECT 'account', NULL, user_id, balance, '', '' FROM locked
UNION ALL
SELECT 'opened', NULL, user_id, balance, '', '' FROM opened`)

// lockedRow is a row of lockBatch; an account's balance is in Amount.
type lockedRow struct {
	Kind    string    `bun:"kind"`
	OrderID uuid.UUID `bun:"order_id,type:uuid"`
	UserID  int64     `bun:"user_id"`
	Amount  int64     `bun:"amount"`
	Status  string    `bun:"status"`
	Reason  string    `bun:"reason"`
}

// lockPostgres reads and locks what reqs are decided on, with lockBatch on
// PostgreSQL.
func lockPostgres(ctx context.Context, tx bun.IDB, reqs []payment.Request, t time.Time) (*batch, error) {
	orders := make([]uuid.UUID, len(reqs))
	users := make([]int64, len(reqs))
	for i, req := range reqs {
		orders[i], users[i] = req.OrderID, req.UserID
	}
	var rows []lockedRow
	if err := lockBatch.Scan(ctx, tx, &rows, orders, users, t); err != nil {
		return nil, fmt.Errorf("look up payments and lock accounts: %w", err)
	}
	decided := make(map[uuid.UUID]payment.Result, len(reqs))
	for _, r := range rows {
		if r.Kind == "payment" {
			decided[r.OrderID] = payment.Result{OrderID: r.OrderID, Status: payment.Status(r.Status), Reason: r.Reason, UserID: r.UserID, Amount: money.Amount(r.Amount)}
		}
	}
	b := newBatch(decided)
	for _, r := range rows {
		if r.Kind != "payment" {
			b.add(r.UserID, money.Amount(r.Amount), r.Kind == "opened")
		}
	}
	// Opened meanwhile by a transaction of its own: lock them as they are.
	var raced []int64
	for _, userID := range b.users(reqs) {
		if _, ok := b.payers[userID]; !ok {
			raced = append(raced, userID)
		}
	}
	if len(raced) == 0 {
		return b, nil
	}
	accounts := make(map[int64]*accountRow, len(raced))
	if err := selectForUpdate(ctx, tx, raced, accounts); err != nil {
		return nil, err
	}
	for _, userID := range raced {
		acc, ok := accounts[userID]
		if !ok {
			return nil, fmt.Errorf("lock account %d: neither found nor opened", userID)
		}
		b.add(userID, money.Amount(acc.Balance), false)
	}
	return b, nil
}

// lockPortable reads and locks what reqs are decided on with a statement
// per table, on any database.
func lockPortable(ctx context.Context, tx bun.IDB, reqs []payment.Request, t time.Time) (*batch, error) {
	decided, err := recordedOutcomes(ctx, tx, reqs)
	if err != nil {
		return nil, err
	}
	b := newBatch(decided)
	accounts, opened, err := lockAccounts(ctx, tx, b.users(reqs), t)
	if err != nil {
		return nil, err
	}
	for userID, acc := range accounts {
		b.add(userID, money.Amount(acc.Balance), opened[userID])
	}
	return b, nil
}

// savePostgres writes w with one prepared statement on PostgreSQL
// (saveBatch), whatever its size and whatever it holds.
func (w *writes) savePostgres(ctx context.Context, tx bun.IDB) error {
	if len(w.payments) == 0 && w.announce == nil {
		return nil
	}
	var t time.Time
	balanceUsers, balances := make([]int64, len(w.balances)), make([]int64, len(w.balances))
	for i, b := range w.balances {
		balanceUsers[i], balances[i], t = b.UserID, b.Balance, b.UpdatedAt
	}
	n := len(w.debits)
	debitIDs, debitOrders, debitUsers, debitAmounts := make([]uuid.UUID, n), make([]uuid.UUID, n), make([]int64, n), make([]int64, n)
	for i, d := range w.debits {
		debitIDs[i], debitOrders[i], debitUsers[i], debitAmounts[i] = d.ID, *d.OrderID, d.UserID, d.Amount
	}
	n = len(w.payments)
	orders, users, amounts, statuses, reasons := make([]uuid.UUID, n), make([]int64, n), make([]int64, n), make([]string, n), make([]string, n)
	for i, p := range w.payments {
		orders[i], users[i], amounts[i], statuses[i], reasons[i], t = p.OrderID, p.UserID, p.Amount, p.Status, p.Reason, p.CreatedAt
	}
	args := append([]any{t, balanceUsers, balances, debitIDs, debitUsers, debitAmounts, debitOrders}, w.announce.Args()...)
	args = append(args, orders, users, amounts, statuses, reasons)
	// The batch's last statement: in the consumer's transaction it goes
	// with the COMMIT.
	if err := saveBatch.ExecLast(ctx, tx, args...); err != nil {
		return fmt.Errorf("record %d payments, %d debits, %d balances: %w", len(w.payments), len(w.debits), len(w.balances), err)
	}
	return nil
}

// saveBatch writes what a batch decided in one prepared statement: the
// outcomes' insert, with the changed balances, the debits and the
// announcing outbox rows as data-modifying WITH clauses; an empty array
// writes nothing. $1 is the batch's time.
var saveBatch = database.NewStatement("INSERT", "payments", `WITH balances AS (
	UPDATE accounts AS a SET balance = v.balance, updated_at = $1
	FROM `+database.Unnest(2, "bigint", "bigint")+` AS v (user_id, balance)
	WHERE a.user_id = v.user_id
), debits AS (
	INSERT INTO ledger (id, user_id, kind, amount, order_id, created_at)
	SELECT id, user_id, 'debit', amount, order_id, $1
	FROM `+database.Unnest(4, "uuid", "bigint", "bigint", "uuid")+` AS d (id, user_id, amount, order_id)
), announced AS (
	`+outbox.InsertSQL(8)+`
)
INSERT INTO payments (order_id, user_id, amount, status, reason, created_at)
SELECT order_id, user_id, amount, status, reason, $1
FROM `+database.Unnest(15, "uuid", "bigint", "bigint", "text", "text")+` AS p (order_id, user_id, amount, status, reason)`)

// savePortable writes w with a statement per table, on any database.
func (w *writes) savePortable(ctx context.Context, tx bun.IDB) error {
	if len(w.balances) > 0 {
		if _, err := tx.NewUpdate().Model(&w.balances).Column("balance", "updated_at").Bulk().Exec(ctx); err != nil {
			return fmt.Errorf("debit %d accounts: %w", len(w.balances), err)
		}
	}
	if len(w.debits) > 0 {
		if _, err := tx.NewInsert().Model(&w.debits).Exec(ctx); err != nil {
			return fmt.Errorf("record %d debits: %w", len(w.debits), err)
		}
	}
	if len(w.payments) > 0 {
		if _, err := tx.NewInsert().Model(&w.payments).Exec(ctx); err != nil {
			return fmt.Errorf("record %d payments: %w", len(w.payments), err)
		}
	}
	return w.saveAnnounce(ctx)
}

// saveAnnounce sends the insert of the announcing rows, if any.
func (w *writes) saveAnnounce(ctx context.Context) error {
	if w.announce == nil {
		return nil
	}
	if _, err := w.announce.Query.Exec(ctx); err != nil {
		return fmt.Errorf("announce the outcomes: %w", err)
	}
	return nil
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
