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

// fund opens user's account with balance.
func fund(t *testing.T, s *store.Store, user int64, balance money.Positive) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Create(ctx, user); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TopUp(ctx, user, balance); err != nil {
		t.Fatal(err)
	}
}

func pay(t *testing.T, db *bun.DB, s *store.Store, req payment.Request) (payment.Result, bool) {
	t.Helper()
	o := payAll(t, db, s, req)[0]
	return o.Result, o.Existing
}

func payAll(t *testing.T, db *bun.DB, s *store.Store, reqs ...payment.Request) []payment.Outcome {
	t.Helper()
	var outcomes []payment.Outcome
	err := db.RunInTx(context.Background(), nil, func(ctx context.Context, tx bun.Tx) error {
		var err error
		outcomes, err = s.PayAll(ctx, tx, reqs, payment.Decide, nil)
		return err
	})
	if err != nil {
		t.Fatalf("PayAll(%+v): %v", reqs, err)
	}
	return outcomes
}

func TestPay(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		fund(t, s, 1, 10_000)
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

// A batch is decided in order, as if its payments came one by one: each
// sees the balance the ones before it left, an order twice is paid once,
// and a user without an account gets one, with the first order saying so.
func TestPayAllDecidesInOrder(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		for user, balance := range map[int64]money.Positive{1: 10_000, 3: 500} {
			fund(t, s, user, balance)
		}
		before := payment.Request{OrderID: uuid.New(), UserID: 3, Amount: 200}
		pay(t, db, s, before)

		first := payment.Request{OrderID: uuid.New(), UserID: 1, Amount: 3_000}
		reqs := []payment.Request{
			first,
			{OrderID: uuid.New(), UserID: 1, Amount: 5_000},
			{OrderID: uuid.New(), UserID: 1, Amount: 2_001}, // 2,000 left
			{OrderID: uuid.New(), UserID: 2, Amount: 1},     // no account
			{OrderID: uuid.New(), UserID: 1, Amount: 2_000},
			first,
			{OrderID: uuid.New(), UserID: 2, Amount: 1}, // the account now exists, empty
			before,
			{OrderID: uuid.New(), UserID: 3, Amount: 300},
		}
		want := []struct {
			status   payment.Status
			reason   string
			existing bool
		}{
			{payment.Finished, "", false},
			{payment.Finished, "", false},
			{payment.Cancelled, payment.ReasonInsufficientFunds, false},
			{payment.Cancelled, payment.ReasonNoAccount, false},
			{payment.Finished, "", false},
			{payment.Finished, "", true},
			{payment.Cancelled, payment.ReasonInsufficientFunds, false},
			{payment.Finished, "", true},
			{payment.Finished, "", false},
		}
		got := payAll(t, db, s, reqs...)
		for i, w := range want {
			if g := got[i]; g.OrderID != reqs[i].OrderID || g.Status != w.status || g.Reason != w.reason || g.Existing != w.existing {
				t.Errorf("outcome %d = %+v, want %+v", i, g, w)
			}
		}
		for user, balance := range map[int64]money.Amount{1: 0, 2: 0, 3: 0} {
			if a, err := s.Get(ctx, user); err != nil || a.Balance != balance {
				t.Errorf("account %d = %+v, %v; want balance %s", user, a, err, balance)
			}
		}
		checkLedger(t, db)
	})
}

// Batches that lock the same accounts at once, listed in opposite orders,
// neither deadlock nor lose a debit: the accounts are locked in user id
// order.
func TestConcurrentBatchesOverSharedAccounts(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		const users, rounds = 8, 20
		for user := int64(1); user <= users; user++ {
			if _, err := s.Create(ctx, user); err != nil {
				t.Fatal(err)
			}
			if _, err := s.TopUp(ctx, user, 1_000_000); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for worker := range 2 {
			wg.Go(func() {
				for range rounds {
					var reqs []payment.Request
					for i := range int64(users) {
						user := 1 + i
						if worker == 1 {
							user = users - i
						}
						reqs = append(reqs, payment.Request{OrderID: uuid.New(), UserID: user, Amount: 100})
					}
					err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
						_, err := s.PayAll(ctx, tx, reqs, payment.Decide, nil)
						return err
					})
					if err != nil {
						t.Errorf("PayAll: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		for user := int64(1); user <= users; user++ {
			if a, _ := s.Get(ctx, user); a.Balance != 1_000_000-2*rounds*100 {
				t.Errorf("account %d: balance %s, want %s", user, a.Balance, money.Amount(1_000_000-2*rounds*100))
			}
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
					_, err := s.PayAll(ctx, tx, []payment.Request{req}, payment.Decide, nil)
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
