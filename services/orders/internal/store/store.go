// Package store keeps orders with Bun, on PostgreSQL or SQLite: it loads,
// locks and saves them, in the caller's transaction where there is one,
// and leaves every decision to its callers.
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

	"shop/services/orders/internal/order"
	"shop/services/platform/database"
	"shop/services/platform/messaging"
	"shop/services/platform/money"
	"shop/services/platform/outbox"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the orders database's schema: the platform's outbox and
// inbox, then the orders table.
var Migrations = messaging.ServiceMigrations(migrations, "migrations")

type orderRow struct {
	bun.BaseModel `bun:"table:orders"`

	ID           uuid.UUID `bun:"id,pk,type:uuid"`
	UserID       int64     `bun:"user_id,notnull"`
	Amount       int64     `bun:"amount,notnull"`
	Description  string    `bun:"description,notnull"`
	Status       string    `bun:"status,notnull"`
	CancelReason *string   `bun:"cancel_reason"`
	CreatedAt    time.Time `bun:"created_at,notnull"`
	UpdatedAt    time.Time `bun:"updated_at,notnull"`

	PaymentRequests    int       `bun:"payment_requests,notnull"`
	PaymentRequestedAt time.Time `bun:"payment_requested_at,notnull"`
	PaymentRetryAt     time.Time `bun:"payment_retry_at,notnull"`
	PaymentTrace       string    `bun:"payment_traceparent,notnull"`
}

func toRow(o order.Order) *orderRow {
	r := &orderRow{
		ID: o.ID, UserID: o.UserID, Amount: int64(o.Amount), Description: o.Description,
		Status: string(o.Status), CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
		PaymentRequests: o.PaymentRequests, PaymentRequestedAt: o.PaymentRequestedAt.UTC(), PaymentRetryAt: o.PaymentRetryAt.UTC(),
		PaymentTrace: o.PaymentTrace,
	}
	if o.CancelReason != "" {
		r.CancelReason = &o.CancelReason
	}
	return r
}

func (r *orderRow) order() order.Order {
	o := order.Order{
		ID: r.ID, UserID: r.UserID, Amount: money.Amount(r.Amount), Description: r.Description,
		Status: order.Status(r.Status), CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		PaymentRequests: r.PaymentRequests, PaymentRequestedAt: r.PaymentRequestedAt.UTC(), PaymentRetryAt: r.PaymentRetryAt.UTC(),
		PaymentTrace: r.PaymentTrace,
	}
	if r.CancelReason != nil {
		o.CancelReason = *r.CancelReason
	}
	return o
}

// Store keeps orders.
type Store struct {
	db *bun.DB
}

// New returns a Store on db, whose schema is migrated.
func New(db *bun.DB) *Store { return &Store{db: db} }

// InsertAll writes new orders within tx, and the outbox rows that
// announce them (announce, if not nil) with them: on PostgreSQL with one
// prepared statement, atomic even outside a transaction; on SQLite with a
// statement for each table, atomic within tx.
func (s *Store) InsertAll(ctx context.Context, tx bun.IDB, orders []order.Order, announce *outbox.Insert) error {
	var err error
	if database.IsPostgres(tx) {
		err = insertAll(ctx, tx, orders, announce)
	} else {
		if announce != nil {
			if _, err := announce.Query.Exec(ctx); err != nil {
				return fmt.Errorf("insert %d outbox rows: %w", len(announce.Messages), err)
			}
		}
		rows := make([]*orderRow, len(orders))
		for i, o := range orders {
			rows[i] = toRow(o)
		}
		_, err = tx.NewInsert().Model(&rows).Exec(ctx)
	}
	if err != nil {
		return fmt.Errorf("insert %d orders: %w", len(orders), err)
	}
	return nil
}

// Creating orders on PostgreSQL, prepared: with the outbox rows that
// announce them (whose arrays are the parameters $1 to $7) or alone.
var (
	insertAnnounced = database.NewStatement("INSERT", "orders",
		"WITH announced AS ("+outbox.InsertSQL(1)+") "+insertOrders(8))
	insertAlone = database.NewStatement("INSERT", "orders", insertOrders(1))
)

// insertOrders inserts orders from the twelve arrays insertAll passes,
// the parameters from first on.
func insertOrders(first int) string {
	return "INSERT INTO orders (id, user_id, amount, description, status, cancel_reason, created_at, updated_at, " +
		"payment_requests, payment_requested_at, payment_retry_at, payment_traceparent) SELECT * FROM " +
		database.Unnest(first, "uuid", "bigint", "bigint", "text", "text", "text",
			"timestamptz", "timestamptz", "int", "timestamptz", "timestamptz", "text")
}

func insertAll(ctx context.Context, tx bun.IDB, orders []order.Order, announce *outbox.Insert) error {
	n := len(orders)
	ids := make([]uuid.UUID, n)
	users, amounts := make([]int64, n), make([]int64, n)
	descriptions, statuses, parents := make([]string, n), make([]string, n), make([]string, n)
	reasons := make([]*string, n)
	created, updated, requestedAt, retryAt := make([]time.Time, n), make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
	requests := make([]int, n)
	for i, o := range orders {
		r := toRow(o)
		ids[i], users[i], amounts[i], descriptions[i], statuses[i], reasons[i] = r.ID, r.UserID, r.Amount, r.Description, r.Status, r.CancelReason
		created[i], updated[i], requests[i], requestedAt[i], retryAt[i], parents[i] = r.CreatedAt, r.UpdatedAt, r.PaymentRequests, r.PaymentRequestedAt, r.PaymentRetryAt, r.PaymentTrace
	}
	args := []any{ids, users, amounts, descriptions, statuses, reasons, created, updated, requests, requestedAt, retryAt, parents}
	if announce == nil {
		_, err := insertAlone.Exec(ctx, tx, args...)
		return err
	}
	_, err := insertAnnounced.Exec(ctx, tx, append(announce.Args(), args...)...)
	return err
}

// Get returns the order with id.
func (s *Store) Get(ctx context.Context, id uuid.UUID) (order.Order, error) {
	row := new(orderRow)
	err := s.db.NewSelect().Model(row).Where("id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return order.Order{}, order.ErrNotFound
	}
	if err != nil {
		return order.Order{}, fmt.Errorf("get order %s: %w", id, err)
	}
	return row.order(), nil
}

// ListByUser returns up to limit orders of a user, newest first.
func (s *Store) ListByUser(ctx context.Context, userID int64, limit int) ([]order.Order, error) {
	var rows []orderRow
	err := s.db.NewSelect().Model(&rows).
		Where("user_id = ?", userID).
		OrderExpr("created_at DESC, id DESC").
		Limit(int64(limit)).
		Scan(ctx)
	if err != nil {
		return nil, fmt.Errorf("list orders of user %d: %w", userID, err)
	}
	orders := make([]order.Order, len(rows))
	for i := range rows {
		orders[i] = rows[i].order()
	}
	return orders, nil
}

// UpdateAll loads the orders with ids within tx, calls fn(i, o) for each
// ids[i] in turn, and saves the orders fn changed (reported true). An id
// given twice is the same order: fn sees it the second time as it left it
// the first. It returns each order as fn left it, one per id. A missing
// order is an error wrapping order.ErrNotFound; an error from fn is
// returned wrapped, and nothing is saved. It takes two statements whatever
// the number of ids: one SELECT, which on PostgreSQL locks the orders in id
// order so that two batches never wait for each other in a cycle (SQLite
// has a single writer), and one UPDATE of the orders fn changed, none if
// it changed none.
func (s *Store) UpdateAll(ctx context.Context, tx bun.IDB, ids []uuid.UUID, fn func(i int, o *order.Order) (bool, error)) ([]order.Order, error) {
	rows, err := lockAll(ctx, tx, ids)
	if err != nil {
		return nil, fmt.Errorf("get orders: %w", err)
	}
	byID := make(map[uuid.UUID]*order.Order, len(rows))
	for i := range rows {
		o := rows[i].order()
		byID[o.ID] = &o
	}
	orders := make([]order.Order, len(ids))
	var changed []*order.Order // each once, saved as fn last left it
	saved := make(map[uuid.UUID]bool)
	for i, id := range ids {
		o, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("order %s: %w", id, order.ErrNotFound)
		}
		updated, err := fn(i, o)
		if err != nil {
			return nil, fmt.Errorf("order %s: %w", id, err)
		}
		if updated && !saved[id] {
			saved[id] = true
			changed = append(changed, o)
		}
		orders[i] = *o
	}
	if err := save(ctx, tx, changed); err != nil {
		return nil, err
	}
	return orders, nil
}

// lockStatement is lockAll on PostgreSQL, prepared.
var lockStatement = database.NewStatement("SELECT", "orders",
	"SELECT * FROM orders WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE")

// lockAll reads the orders with ids, locked in id order on PostgreSQL.
func lockAll(ctx context.Context, tx bun.IDB, ids []uuid.UUID) ([]orderRow, error) {
	var rows []orderRow
	if database.IsPostgres(tx) {
		return rows, lockStatement.Scan(ctx, tx, &rows, ids)
	}
	return rows, tx.NewSelect().Model(&rows).Where("id IN (?)", bun.List(ids)).Order("id").Scan(ctx)
}

// saveStatement is save on PostgreSQL, prepared: one text for any number
// of orders. It fails when it changed fewer orders than it was given (one
// was not NEW): SQL has no RAISE, so the message is cast to an integer,
// which fails with the message in the error.
var saveStatement = database.NewStatement("UPDATE", "orders", `WITH saved AS (
	UPDATE orders AS o
	SET status = v.status, cancel_reason = v.cancel_reason, updated_at = v.updated_at
	FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) AS v (id, status, cancel_reason, updated_at)
	WHERE o.id = v.id AND o.status = $5
	RETURNING o.id
)
SELECT CASE count(*) WHEN cardinality($1::uuid[]) THEN 0
	ELSE (cardinality($1::uuid[]) - count(*) || ' of the orders changed were not ' || $5)::int END
FROM saved`)

// save writes the status of changed orders with one UPDATE. Only a NEW
// order can change: the domain says so, and the WHERE clause makes sure
// even for a caller that went around the domain or two writers that raced
// past the read; an UPDATE that changed fewer orders than it was given
// fails. On PostgreSQL the statement checks that itself, so it can be the
// transaction's last (ExecLast), which in the consumer's transaction goes
// with the COMMIT.
func save(ctx context.Context, tx bun.IDB, changed []*order.Order) error {
	if len(changed) == 0 {
		return nil
	}
	if database.IsPostgres(tx) {
		ids := make([]uuid.UUID, len(changed))
		statuses := make([]string, len(changed))
		reasons := make([]*string, len(changed))
		updated := make([]time.Time, len(changed))
		for i, o := range changed {
			r := toRow(*o)
			ids[i], statuses[i], reasons[i], updated[i] = r.ID, r.Status, r.CancelReason, r.UpdatedAt
		}
		if err := saveStatement.ExecLast(ctx, tx, ids, statuses, reasons, updated, string(order.New)); err != nil {
			return fmt.Errorf("update %d orders: %w", len(changed), err)
		}
		return nil
	}
	rows := make([]*orderRow, len(changed))
	for i, o := range changed {
		rows[i] = toRow(*o)
	}
	res, err := tx.NewUpdate().Model(&rows).
		Column("status", "cancel_reason", "updated_at").
		Bulk().
		Where("?TableAlias.status = ?", string(order.New)).
		Exec(ctx)
	return checkSaved(res, err, len(rows))
}

// checkSaved checks that an UPDATE of n orders changed all n.
func checkSaved(res sql.Result, err error, n int) error {
	if err != nil {
		return fmt.Errorf("update %d orders: %w", n, err)
	}
	if changed, _ := res.RowsAffected(); changed != int64(n) {
		return fmt.Errorf("update %d orders: %d changed concurrently", n, int64(n)-changed)
	}
	return nil
}

// DuePayments returns up to limit orders still NEW whose payment is due to
// be requested again at now, the longest overdue first, locked within tx:
// on PostgreSQL with FOR UPDATE SKIP LOCKED, so replicas reconciling at
// once each take other orders and none waits for an order a payment result
// is settling; SQLite has a single writer.
func (s *Store) DuePayments(ctx context.Context, tx bun.IDB, now time.Time, limit int) ([]order.Order, error) {
	var rows []orderRow
	q := tx.NewSelect().Model(&rows).
		Where("status = ?", string(order.New)).
		Where("payment_retry_at <= ?", now.UTC()).
		OrderExpr("payment_retry_at, id").
		Limit(int64(limit))
	if err := database.LockRows(tx, q, "UPDATE SKIP LOCKED").Scan(ctx); err != nil {
		return nil, fmt.Errorf("find orders due for a payment request: %w", err)
	}
	orders := make([]order.Order, len(rows))
	for i := range rows {
		orders[i] = rows[i].order()
	}
	return orders, nil
}

// SavePaymentRequests writes the payment request schedule of orders (as
// order.RequestPayment left it) within tx, with one UPDATE. An order that
// is no longer NEW is an error: the caller holds them locked.
func (s *Store) SavePaymentRequests(ctx context.Context, tx bun.IDB, orders []order.Order) error {
	if len(orders) == 0 {
		return nil
	}
	rows := make([]*orderRow, len(orders))
	for i, o := range orders {
		rows[i] = toRow(o)
	}
	res, err := tx.NewUpdate().Model(&rows).
		Column("payment_requests", "payment_requested_at", "payment_retry_at").
		Bulk().
		Where("?TableAlias.status = ?", string(order.New)).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("save payment requests of %d orders: %w", len(rows), err)
	}
	if n, _ := res.RowsAffected(); n != int64(len(rows)) {
		return fmt.Errorf("save payment requests of %d orders: %d settled concurrently", len(rows), int64(len(rows))-n)
	}
	return nil
}
