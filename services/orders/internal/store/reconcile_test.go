package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"shop/services/orders/internal/order"
	"shop/services/orders/internal/store"
	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
)

// requested is a new order whose first payment request was at at.
func requested(t *testing.T, userID int64, at time.Time) order.Order {
	t.Helper()
	o := newOrder(t, userID, 100, at)
	o.RequestPayment(at, time.Minute)
	return o
}

// DuePayments finds the NEW orders whose retry time has come, the longest
// overdue first; SavePaymentRequests writes the next schedule, and the
// order round-trips it.
func TestDuePaymentsAndTheirSchedule(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		base := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
		old, older, fresh, settled := requested(t, 1, base.Add(-2*time.Minute)), requested(t, 2, base.Add(-3*time.Minute)),
			requested(t, 3, base.Add(-30*time.Second)), requested(t, 4, base.Add(-time.Hour))
		older.PaymentTrace = "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01"
		insert(t, db, s, old, older, fresh, settled)
		if _, err := s.UpdateAll(ctx, db, []uuid.UUID{settled.ID}, func(_ int, o *order.Order) (bool, error) {
			return o.ApplyPayment(order.Finished, "", base)
		}); err != nil {
			t.Fatal(err)
		}

		due, err := s.DuePayments(ctx, db, base, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != 2 || due[0].ID != older.ID || due[1].ID != old.ID {
			t.Fatalf("due = %v, want the two NEW orders past their retry time, older first", ids(due))
		}
		if due[0].PaymentRequests != 1 || !due[0].PaymentRequestedAt.Equal(older.PaymentRequestedAt) || !due[0].PaymentRetryAt.Equal(older.PaymentRetryAt) ||
			due[0].PaymentTrace != older.PaymentTrace {
			t.Fatalf("schedule did not round-trip: %+v", due[0])
		}
		if got, _ := s.DuePayments(ctx, db, base, 1); len(got) != 1 || got[0].ID != older.ID {
			t.Fatalf("limit 1 = %v", ids(got))
		}

		err = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			for i := range due {
				due[i].RequestPayment(base, time.Minute)
			}
			return s.SavePaymentRequests(ctx, tx, due)
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, older.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.PaymentRequests != 2 || !got.PaymentRequestedAt.Equal(base) || !got.PaymentRetryAt.Equal(base.Add(2*time.Minute)) {
			t.Fatalf("after a second request: %d requests at %v, retry at %v", got.PaymentRequests, got.PaymentRequestedAt, got.PaymentRetryAt)
		}
		if left, _ := s.DuePayments(ctx, db, base.Add(time.Minute), 10); len(left) != 1 || left[0].ID != fresh.ID {
			t.Fatalf("a minute later, due = %v, want only the fresh order", ids(left))
		}

		// A schedule is never written over a settled order.
		settledNow, _ := s.Get(ctx, settled.ID)
		settledNow.PaymentRequests = 9
		if err := s.SavePaymentRequests(ctx, db, []order.Order{settledNow}); err == nil {
			t.Fatal("saved a payment request of a FINISHED order")
		}
	})
}

// On PostgreSQL an order another transaction holds (a replica reconciling
// it, or a result settling it) is skipped, not waited for.
func TestDuePaymentsSkipsLockedOrders(t *testing.T) {
	db := dbtest.Open(t, dbtest.Postgres, store.Migrations)
	if !database.IsPostgres(db) {
		t.Fatal("not PostgreSQL")
	}
	ctx := context.Background()
	s := store.New(db)
	base := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	a, b := requested(t, 1, base.Add(-3*time.Minute)), requested(t, 2, base.Add(-2*time.Minute))
	insert(t, db, s, a, b)

	tx1, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback()
	first, err := s.DuePayments(ctx, tx1, base, 1)
	if err != nil || len(first) != 1 || first[0].ID != a.ID {
		t.Fatalf("first replica: %v, %v", ids(first), err)
	}
	done := make(chan []order.Order, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var got []order.Order
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var err error
			got, err = s.DuePayments(ctx, tx, base, 10)
			return err
		})
		if err != nil {
			t.Error(err)
		}
		done <- got
	}()
	second := <-done
	if len(second) != 1 || second[0].ID != b.ID {
		t.Fatalf("second replica got %v, want only the order the first does not hold", ids(second))
	}
}

func ids(orders []order.Order) []uuid.UUID {
	out := make([]uuid.UUID, len(orders))
	for i, o := range orders {
		out[i] = o.ID
	}
	return out
}
