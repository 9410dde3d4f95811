package store_test

import (
	"context"
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
	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/money"
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

func TestListByUserNewestFirst(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		base := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		var ids []uuid.UUID
		for i := range 5 {
			o := newOrder(t, 7, int64(100+i), base.Add(time.Duration(i)*time.Minute))
			insert(t, db, s, o)
			ids = append(ids, o.ID)
		}
		insert(t, db, s, newOrder(t, 8, 1, base))
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

// insert stores new orders.
func insert(t *testing.T, db *bun.DB, s *store.Store, orders ...order.Order) {
	t.Helper()
	if err := s.InsertAll(context.Background(), db, orders, nil); err != nil {
		t.Fatal(err)
	}
}

// create stores n new orders.
func create(t *testing.T, db *bun.DB, s *store.Store, n int) []order.Order {
	t.Helper()
	orders := make([]order.Order, n)
	for i := range orders {
		orders[i] = newOrder(t, int64(i+1), 100, time.Now().UTC())
	}
	insert(t, db, s, orders...)
	return orders
}

// result is a payment result for an order.
type result struct {
	OrderID uuid.UUID
	Status  order.Status
	Reason  string
}

// apply settles orders with UpdateAll as the use case does: each result
// moves its order with the domain's transition.
func apply(ctx context.Context, s *store.Store, tx bun.IDB, results []result) ([]order.Order, error) {
	ids := make([]uuid.UUID, len(results))
	for i, r := range results {
		ids[i] = r.OrderID
	}
	now := time.Now()
	return s.UpdateAll(ctx, tx, ids, func(i int, o *order.Order) (bool, error) {
		return o.ApplyPayment(results[i].Status, results[i].Reason, now)
	})
}

// applyOne applies one payment result.
func applyOne(ctx context.Context, s *store.Store, tx bun.IDB, res result) (order.Order, error) {
	orders, err := apply(ctx, s, tx, []result{res})
	if err != nil {
		return order.Order{}, err
	}
	return orders[0], nil
}

func TestApplySettlesOnce(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		o := create(t, db, s, 1)[0]
		got, err := applyOne(ctx, s, db, result{OrderID: o.ID, Status: order.Cancelled, Reason: "insufficient funds"})
		if err != nil || got.Status != order.Cancelled || got.CancelReason != "insufficient funds" {
			t.Fatalf("Apply = %+v, %v", got, err)
		}
		// A late, contradicting result is a no-op.
		got, err = applyOne(ctx, s, db, result{OrderID: o.ID, Status: order.Finished})
		if err != nil || got.Status != order.Cancelled {
			t.Fatalf("Apply again = %+v, %v", got, err)
		}
		if stored, _ := s.Get(ctx, o.ID); stored.Status != order.Cancelled || stored.CancelReason != "insufficient funds" {
			t.Fatalf("stored = %+v", stored)
		}
		if _, err := applyOne(ctx, s, db, result{OrderID: uuid.New(), Status: order.Finished}); !errors.Is(err, order.ErrNotFound) {
			t.Fatalf("Apply to unknown order = %v, want ErrNotFound", err)
		}
		if _, err := applyOne(ctx, s, db, result{OrderID: o.ID, Status: order.New}); !errors.Is(err, order.ErrInvalidResult) {
			t.Fatalf("Apply NEW = %v, want ErrInvalidResult", err)
		}
	})
}

func TestApplyBatchWithTwoStatements(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		o := create(t, db, s, 4)
		settled, err := applyOne(ctx, s, db, result{OrderID: o[2].ID, Status: order.Cancelled, Reason: "earlier"})
		if err != nil {
			t.Fatal(err)
		}
		stmts := dbtest.Count(t, db)
		results := []result{
			{OrderID: o[0].ID, Status: order.Finished},
			{OrderID: o[1].ID, Status: order.Cancelled, Reason: "insufficient funds"},
			{OrderID: o[2].ID, Status: order.Finished},                  // settled before: no-op
			{OrderID: o[0].ID, Status: order.Cancelled, Reason: "late"}, // settled by the first result: no-op
			{OrderID: o[3].ID, Status: order.Cancelled},
		}
		var got []order.Order
		err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			got, err = apply(ctx, s, tx, results)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		wantOps := []string{"SELECT", "UPDATE"}
		if database.IsPostgres(db) {
			wantOps[1] = "WITH" // the UPDATE checks its count itself
		}
		if !slices.Equal(stmts.Ops(), wantOps) {
			t.Errorf("statements %v, want %v", stmts.Ops(), wantOps)
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
		stmts.Reset()
		if _, err := apply(ctx, s, db, results[2:4]); err != nil {
			t.Fatal(err)
		}
		if want := []string{"SELECT"}; !slices.Equal(stmts.Ops(), want) {
			t.Errorf("statements %v, want %v", stmts.Ops(), want)
		}
	})
}

// The database refuses to change a terminal order even for a writer that
// gets past the domain's rule (a new code path, a reconciler): UpdateAll's
// own save writes only orders still NEW, so a callback that sets a settled
// order's status directly fails the transaction, and neither that order nor
// a NEW one saved with it changes.
func TestSaveRefusesToChangeATerminalOrder(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		o := create(t, db, s, 2)
		fresh := o[0]
		settled, err := applyOne(ctx, s, db, result{OrderID: o[1].ID, Status: order.Cancelled, Reason: "insufficient funds"})
		if err != nil {
			t.Fatal(err)
		}

		err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			_, err := s.UpdateAll(ctx, tx, []uuid.UUID{fresh.ID, settled.ID}, func(_ int, o *order.Order) (bool, error) {
				// Around the domain: no ApplyPayment, a status written directly.
				o.Status, o.CancelReason, o.UpdatedAt = order.Finished, "", time.Now().UTC()
				return true, nil
			})
			return err
		})
		if err == nil {
			t.Fatal("saving a terminal order with another status succeeded")
		}
		if database.IsPostgres(db) && !strings.Contains(err.Error(), "1 of the orders changed were not NEW") {
			t.Errorf("error %q, want it to say that one order was not NEW", err)
		}
		if got, _ := s.Get(ctx, settled.ID); got.Status != order.Cancelled || got.CancelReason != "insufficient funds" ||
			!got.UpdatedAt.Equal(settled.UpdatedAt) {
			t.Fatalf("the terminal order became %+v, want it unchanged: %+v", got, settled)
		}
		if got, _ := s.Get(ctx, fresh.ID); got.Status != order.New {
			t.Fatalf("the NEW order saved in the failed transaction became %s", got.Status)
		}
	})
}

func TestApplyBatchFailsWhole(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		o := create(t, db, s, 1)[0]
		missing := uuid.New()
		_, err := apply(ctx, s, db, []result{
			{OrderID: o.ID, Status: order.Finished},
			{OrderID: missing, Status: order.Finished},
		})
		if !errors.Is(err, order.ErrNotFound) || !strings.Contains(err.Error(), missing.String()) {
			t.Fatalf("Apply with a missing order = %v, want ErrNotFound naming %s", err, missing)
		}
		_, err = apply(ctx, s, db, []result{
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
		s := store.New(db)
		orders := create(t, db, s, 3)
		var wg sync.WaitGroup
		for i := range 10 {
			status := order.Finished
			if i%2 == 1 {
				status = order.Cancelled
			}
			// Each batch names the orders in another order: the store must
			// lock them in one order, or two batches would deadlock.
			batch := make([]result, len(orders))
			for j := range batch {
				batch[j] = result{OrderID: orders[(i+j)%len(orders)].ID, Status: status, Reason: "r"}
			}
			wg.Go(func() {
				err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					_, err := apply(ctx, s, tx, batch)
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
