package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"shop/services/orders/internal/order"
	"shop/services/orders/internal/store"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/messaging"
	"shop/services/platform/money"
	"shop/services/platform/outbox"
)

// The store contract: every test runs on SQLite and on PostgreSQL.

func newOrder(t *testing.T, userID int64, cents int64, at time.Time) order.Order {
	t.Helper()
	o, err := order.NewOrder(userID, money.Amount(cents), "test", at)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestCreateWritesOrderAndPaymentRequestTogether(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db, outbox.New(db, outbox.Config{}))
		o := newOrder(t, 1, 3000, time.Now().UTC())
		if err := s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, o.ID)
		if err != nil || got.Status != order.New || got.Amount != o.Amount || got.UserID != 1 {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		var rows []outbox.Row
		if err := db.NewSelect().Model(&rows).Scan(ctx); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Stream != order.PaymentRequestsStream || rows[0].Type != order.PaymentRequestedType {
			t.Fatalf("outbox = %+v", rows)
		}
		var req order.PaymentRequested
		if err := json.Unmarshal([]byte(rows[0].Payload), &req); err != nil || req.OrderID != o.ID || req.Amount != o.Amount {
			t.Fatalf("payload %s: %+v, %v", rows[0].Payload, req, err)
		}
	})
}

// failingOutbox fails every write, as a broken outbox insert would.
type failingOutbox struct{}

func (failingOutbox) AddAll(context.Context, bun.IDB, []outbox.Pending) ([]messaging.Message, error) {
	return nil, errors.New("outbox unavailable")
}

func (failingOutbox) Notify(context.Context) {}

func TestCreateIsAtomic(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db, failingOutbox{})
		o := newOrder(t, 1, 100, time.Now().UTC())
		if err := s.Create(ctx, o); err == nil {
			t.Fatal("Create succeeded although the outbox failed")
		}
		if _, err := s.Get(ctx, o.ID); !errors.Is(err, order.ErrNotFound) {
			t.Fatalf("the order was stored without its payment request: %v", err)
		}
	})
}

func TestListByUserNewestFirst(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db, outbox.New(db, outbox.Config{}))
		base := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		var ids []uuid.UUID
		for i := range 5 {
			o := newOrder(t, 7, int64(100+i), base.Add(time.Duration(i)*time.Minute))
			if err := s.Create(ctx, o); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, o.ID)
		}
		if err := s.Create(ctx, newOrder(t, 8, 1, base)); err != nil {
			t.Fatal(err)
		}
		got, err := s.ListByUser(ctx, 7, 100)
		if err != nil || len(got) != 5 {
			t.Fatalf("ListByUser = %d orders, %v", len(got), err)
		}
		for i, o := range got {
			if o.ID != ids[4-i] {
				t.Fatalf("order %d is %s, want %s (newest first)", i, o.ID, ids[4-i])
			}
			if !o.CreatedAt.Equal(base.Add(time.Duration(4-i) * time.Minute)) {
				t.Fatalf("created_at %v did not round-trip", o.CreatedAt)
			}
		}
		if got, _ := s.ListByUser(ctx, 7, 2); len(got) != 2 || got[0].ID != ids[4] {
			t.Fatalf("limit 2 = %+v", got)
		}
		if got, _ := s.ListByUser(ctx, 99, 10); len(got) != 0 {
			t.Fatalf("unknown user has orders: %+v", got)
		}
	})
}

// create stores n new orders.
func create(t *testing.T, s *store.Store, n int) []order.Order {
	t.Helper()
	orders := make([]order.Order, n)
	for i := range orders {
		orders[i] = newOrder(t, int64(i+1), 100, time.Now().UTC())
		if err := s.Create(context.Background(), orders[i]); err != nil {
			t.Fatal(err)
		}
	}
	return orders
}

// applyOne applies one payment result, as the internal endpoint does.
func applyOne(ctx context.Context, p *order.Payments, tx bun.IDB, res order.PaymentCompleted) (order.Order, error) {
	orders, err := p.Apply(ctx, tx, []order.PaymentCompleted{res})
	if err != nil {
		return order.Order{}, err
	}
	return orders[0], nil
}

func TestApplySettlesOnce(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db, outbox.New(db, outbox.Config{}))
		p := order.NewPayments(s)
		o := create(t, s, 1)[0]
		got, err := applyOne(ctx, p, db, order.PaymentCompleted{OrderID: o.ID, Status: order.Cancelled, Reason: "insufficient funds"})
		if err != nil || got.Status != order.Cancelled || got.CancelReason != "insufficient funds" {
			t.Fatalf("Apply = %+v, %v", got, err)
		}
		// A late, contradicting result is a no-op.
		got, err = applyOne(ctx, p, db, order.PaymentCompleted{OrderID: o.ID, Status: order.Finished})
		if err != nil || got.Status != order.Cancelled {
			t.Fatalf("Apply again = %+v, %v", got, err)
		}
		if stored, _ := s.Get(ctx, o.ID); stored.Status != order.Cancelled || stored.CancelReason != "insufficient funds" {
			t.Fatalf("stored = %+v", stored)
		}
		if _, err := applyOne(ctx, p, db, order.PaymentCompleted{OrderID: uuid.New(), Status: order.Finished}); !errors.Is(err, order.ErrNotFound) {
			t.Fatalf("Apply to unknown order = %v, want ErrNotFound", err)
		}
		if _, err := applyOne(ctx, p, db, order.PaymentCompleted{OrderID: o.ID, Status: order.New}); !errors.Is(err, order.ErrInvalidResult) {
			t.Fatalf("Apply NEW = %v, want ErrInvalidResult", err)
		}
	})
}

// statements records the operation of each statement a database runs
// outside BEGIN and COMMIT.
type statements struct{ ops []string }

func (s *statements) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (s *statements) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	if op := e.Operation(); op != "BEGIN" && op != "COMMIT" {
		s.ops = append(s.ops, op)
	}
}

func TestApplyBatchWithTwoStatements(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db, outbox.New(db, outbox.Config{}))
		p := order.NewPayments(s)
		o := create(t, s, 4)
		settled, err := applyOne(ctx, p, db, order.PaymentCompleted{OrderID: o[2].ID, Status: order.Cancelled, Reason: "earlier"})
		if err != nil {
			t.Fatal(err)
		}
		stmts := new(statements)
		db.AddQueryHook(stmts)
		results := []order.PaymentCompleted{
			{OrderID: o[0].ID, Status: order.Finished},
			{OrderID: o[1].ID, Status: order.Cancelled, Reason: "insufficient funds"},
			{OrderID: o[2].ID, Status: order.Finished},                  // settled before: no-op
			{OrderID: o[0].ID, Status: order.Cancelled, Reason: "late"}, // settled by the first result: no-op
			{OrderID: o[3].ID, Status: order.Cancelled},
		}
		var got []order.Order
		err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			got, err = p.Apply(ctx, tx, results)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"SELECT", "UPDATE"}; !slices.Equal(stmts.ops, want) {
			t.Errorf("statements %v, want %v", stmts.ops, want)
		}
		want := []struct {
			id     uuid.UUID
			status order.Status
			reason string
		}{
			{o[0].ID, order.Finished, ""},
			{o[1].ID, order.Cancelled, "insufficient funds"},
			{o[2].ID, order.Cancelled, "earlier"},
			{o[0].ID, order.Finished, ""},
			{o[3].ID, order.Cancelled, "payment declined"},
		}
		if len(got) != len(want) {
			t.Fatalf("Apply returned %d orders, want %d", len(got), len(want))
		}
		for i, w := range want {
			if got[i].ID != w.id || got[i].Status != w.status || got[i].CancelReason != w.reason {
				t.Errorf("result %d left %+v, want %s %q", i, got[i], w.status, w.reason)
			}
			if stored, err := s.Get(ctx, w.id); err != nil || stored.Status != w.status || stored.CancelReason != w.reason {
				t.Errorf("stored %+v, %v; want %s %q", stored, err, w.status, w.reason)
			}
		}
		if stored, _ := s.Get(ctx, o[2].ID); !stored.UpdatedAt.Equal(settled.UpdatedAt) {
			t.Errorf("a settled order was written again: %+v", stored)
		}

		// A batch of late results reads and writes nothing.
		stmts.ops = nil
		if _, err := p.Apply(ctx, db, results[2:4]); err != nil {
			t.Fatal(err)
		}
		if want := []string{"SELECT"}; !slices.Equal(stmts.ops, want) {
			t.Errorf("statements %v, want %v", stmts.ops, want)
		}
	})
}

func TestApplyBatchFailsWhole(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db, outbox.New(db, outbox.Config{}))
		p := order.NewPayments(s)
		o := create(t, s, 1)[0]
		missing := uuid.New()
		_, err := p.Apply(ctx, db, []order.PaymentCompleted{
			{OrderID: o.ID, Status: order.Finished},
			{OrderID: missing, Status: order.Finished},
		})
		if !errors.Is(err, order.ErrNotFound) || !strings.Contains(err.Error(), missing.String()) {
			t.Fatalf("Apply with a missing order = %v, want ErrNotFound naming %s", err, missing)
		}
		_, err = p.Apply(ctx, db, []order.PaymentCompleted{
			{OrderID: o.ID, Status: order.Finished},
			{OrderID: o.ID, Status: order.New},
		})
		if !errors.Is(err, order.ErrInvalidResult) {
			t.Fatalf("Apply with an invalid result = %v, want ErrInvalidResult", err)
		}
		if stored, _ := s.Get(ctx, o.ID); stored.Status != order.New {
			t.Fatalf("a failed batch changed the order: %+v", stored)
		}
	})
}

func TestConcurrentBatchesSettleOnce(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db, outbox.New(db, outbox.Config{}))
		p := order.NewPayments(s)
		orders := create(t, s, 3)
		var wg sync.WaitGroup
		for i := range 10 {
			status := order.Finished
			if i%2 == 1 {
				status = order.Cancelled
			}
			// Each batch names the orders in another order: the store must
			// lock them in one order, or two batches would deadlock.
			batch := make([]order.PaymentCompleted, len(orders))
			for j := range batch {
				batch[j] = order.PaymentCompleted{OrderID: orders[(i+j)%len(orders)].ID, Status: status, Reason: "r"}
			}
			wg.Go(func() {
				err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					_, err := p.Apply(ctx, tx, batch)
					return err
				})
				if err != nil {
					t.Errorf("Apply: %v", err)
				}
			})
		}
		wg.Wait()
		for _, o := range orders {
			if got, _ := s.Get(ctx, o.ID); !got.Status.Terminal() {
				t.Fatalf("status %s, want a terminal one", got.Status)
			}
		}
	})
}
