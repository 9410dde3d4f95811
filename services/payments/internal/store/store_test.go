package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"shop/services/payments/internal/account"
	"shop/services/payments/internal/payment"
	"shop/services/payments/internal/store"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/money"
)

// The store contract: every test runs on SQLite and on PostgreSQL.

func TestAccounts(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)

		if _, err := s.Get(ctx, 1); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("Get missing = %v, want ErrNotFound", err)
		}
		if _, err := s.TopUp(ctx, 1, 100); !errors.Is(err, account.ErrNotFound) {
			t.Fatalf("TopUp missing = %v, want ErrNotFound", err)
		}
		a, err := s.Create(ctx, 1)
		if err != nil || a.UserID != 1 || a.Balance != 0 {
			t.Fatalf("Create = %+v, %v", a, err)
		}
		if _, err := s.Create(ctx, 1); !errors.Is(err, account.ErrExists) {
			t.Fatalf("Create twice = %v, want ErrExists", err)
		}
		if a, err = s.TopUp(ctx, 1, 10_000); err != nil || a.Balance != 10_000 {
			t.Fatalf("TopUp = %+v, %v", a, err)
		}
		if a, err = s.TopUp(ctx, 1, 5); err != nil || a.Balance != 10_005 {
			t.Fatalf("TopUp = %+v, %v", a, err)
		}
		if a, err = s.Get(ctx, 1); err != nil || a.Balance != 10_005 {
			t.Fatalf("Get = %+v, %v", a, err)
		}
		checkLedger(t, db)
	})
}

func TestTopUpBalanceLimit(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		if _, err := s.Create(ctx, 7); err != nil {
			t.Fatal(err)
		}
		if _, err := db.NewUpdate().Table("accounts").Set("balance = ?", int64(account.MaxBalance)-1).Where("user_id = 7").Exec(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TopUp(ctx, 7, 2); !errors.Is(err, account.ErrBalanceLimit) {
			t.Fatalf("TopUp over the limit = %v, want ErrBalanceLimit", err)
		}
		if a, err := s.TopUp(ctx, 7, 1); err != nil || a.Balance != account.MaxBalance {
			t.Fatalf("TopUp to the limit = %+v, %v", a, err)
		}
	})
}

func TestConcurrentTopUpsLoseNothing(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		if _, err := s.Create(ctx, 1); err != nil {
			t.Fatal(err)
		}
		const n = 50
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 1; i <= n; i++ {
			wg.Go(func() {
				_, err := s.TopUp(ctx, 1, money.Positive(i))
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("TopUp: %v", err)
			}
		}
		a, err := s.Get(ctx, 1)
		if want := money.Amount(n * (n + 1) / 2); err != nil || a.Balance != want {
			t.Fatalf("balance after %d top-ups = %s, %v; want %s", n, a.Balance, err, want)
		}
		checkLedger(t, db)
	})
}

func TestConcurrentCreateOneWins(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		s := store.New(db)
		var wg sync.WaitGroup
		var mu sync.Mutex
		created, exists := 0, 0
		for range 20 {
			wg.Go(func() {
				_, err := s.Create(context.Background(), 5)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					created++
				case errors.Is(err, account.ErrExists):
					exists++
				default:
					t.Errorf("Create: %v", err)
				}
			})
		}
		wg.Wait()
		if created != 1 || exists != 19 {
			t.Fatalf("created %d, exists %d; want 1 and 19", created, exists)
		}
	})
}

func pay(t *testing.T, db *bun.DB, s *store.Store, req payment.Request) (payment.Result, bool) {
	t.Helper()
	var res payment.Result
	var existing bool
	err := db.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		res, existing, err = s.Pay(ctx, tx, req)
		return err
	})
	if err != nil {
		t.Fatalf("Pay(%+v): %v", req, err)
	}
	return res, existing
}

func TestPay(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		if _, err := s.Create(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TopUp(ctx, 1, 10_000); err != nil {
			t.Fatal(err)
		}
		paid := payment.Request{OrderID: uuid.New(), UserID: 1, Amount: 3_000}
		res, existing := pay(t, db, s, paid)
		if res.Status != payment.Finished || existing {
			t.Fatalf("Pay = %+v, existing %v; want FINISHED", res, existing)
		}
		// The same order again, e.g. under another message id: no second debit.
		res, existing = pay(t, db, s, paid)
		if res.Status != payment.Finished || !existing {
			t.Fatalf("Pay again = %+v, existing %v; want the first outcome", res, existing)
		}
		tooMuch := payment.Request{OrderID: uuid.New(), UserID: 1, Amount: 7_001}
		res, _ = pay(t, db, s, tooMuch)
		if res.Status != payment.Cancelled || res.Reason != payment.ReasonInsufficientFunds {
			t.Fatalf("Pay more than the balance = %+v", res)
		}
		exact := payment.Request{OrderID: uuid.New(), UserID: 1, Amount: 7_000}
		if res, _ = pay(t, db, s, exact); res.Status != payment.Finished {
			t.Fatalf("Pay the whole balance = %+v", res)
		}
		if a, _ := s.Get(ctx, 1); a.Balance != 0 {
			t.Fatalf("balance = %s, want 0.00", a.Balance)
		}
		// No account: one is opened with a zero balance and the payment fails.
		stranger := payment.Request{OrderID: uuid.New(), UserID: 2, Amount: 1}
		res, _ = pay(t, db, s, stranger)
		if res.Status != payment.Cancelled || res.Reason != payment.ReasonNoAccount {
			t.Fatalf("Pay without account = %+v", res)
		}
		if a, err := s.Get(ctx, 2); err != nil || a.Balance != 0 {
			t.Fatalf("opened account = %+v, %v", a, err)
		}
		if got, err := s.Outcome(ctx, tooMuch.OrderID); err != nil || got.Status != payment.Cancelled {
			t.Fatalf("Outcome = %+v, %v", got, err)
		}
		checkLedger(t, db)
	})
}

func TestConcurrentPaymentsOfOneOrderDebitOnce(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		if _, err := s.Create(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TopUp(ctx, 1, 100_000); err != nil {
			t.Fatal(err)
		}
		req := payment.Request{OrderID: uuid.New(), UserID: 1, Amount: 1_000}
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				// A losing duplicate may fail on the unique order id and
				// roll back; what matters is the balance.
				_ = db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					_, _, err := s.Pay(ctx, tx, req)
					return err
				})
			})
		}
		wg.Wait()
		if a, _ := s.Get(ctx, 1); a.Balance != 99_000 {
			t.Fatalf("balance = %s, want 990.00 (one debit)", a.Balance)
		}
		checkLedger(t, db)
	})
}

// checkLedger asserts the money invariants: no negative balance, and every
// balance equals its top-ups minus its debits.
func checkLedger(t *testing.T, db *bun.DB) {
	t.Helper()
	var bad []struct {
		UserID  int64 `bun:"user_id"`
		Balance int64 `bun:"balance"`
		Ledger  int64 `bun:"ledger"`
	}
	err := db.NewRaw(`
		SELECT a.user_id, a.balance,
		       COALESCE(SUM(CASE l.kind WHEN 'top_up' THEN l.amount ELSE -l.amount END), 0) AS ledger
		FROM accounts a LEFT JOIN ledger l ON l.user_id = a.user_id
		GROUP BY a.user_id, a.balance
		HAVING a.balance < 0 OR a.balance <> COALESCE(SUM(CASE l.kind WHEN 'top_up' THEN l.amount ELSE -l.amount END), 0)`).
		Scan(context.Background(), &bad)
	if err != nil {
		t.Fatalf("check ledger: %v", err)
	}
	if len(bad) > 0 {
		t.Fatalf("balances disagree with the ledger: %+v", bad)
	}
}
