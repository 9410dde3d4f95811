package e2e

import (
	"context"
	"testing"

	"github.com/uptrace/bun"
)

// checkInvariants asserts the invariants of the payment flow on the two
// databases: every order terminal; no balance negative; every balance equal
// to its top-ups minus its debits; each order debited at most once; the
// debited orders exactly the FINISHED ones, with their amounts.
func checkInvariants(t *testing.T, ordersDB, paymentsDB *bun.DB) (finished, cancelled int) {
	t.Helper()
	ctx := context.Background()

	var orders []struct {
		ID     string `bun:"id"`
		UserID int64  `bun:"user_id"`
		Amount int64  `bun:"amount"`
		Status string `bun:"status"`
	}
	if err := ordersDB.NewRaw("SELECT id::text AS id, user_id, amount, status FROM orders").Scan(ctx, &orders); err != nil {
		t.Fatal(err)
	}
	var debits []struct {
		OrderID string `bun:"order_id"`
		UserID  int64  `bun:"user_id"`
		Amount  int64  `bun:"amount"`
	}
	if err := paymentsDB.NewRaw("SELECT order_id::text AS order_id, user_id, amount FROM ledger WHERE kind = 'debit'").Scan(ctx, &debits); err != nil {
		t.Fatal(err)
	}
	var accounts []struct {
		UserID  int64 `bun:"user_id"`
		Balance int64 `bun:"balance"`
		TopUps  int64 `bun:"top_ups"`
		Debits  int64 `bun:"debits"`
	}
	err := paymentsDB.NewRaw(`
		SELECT a.user_id, a.balance,
		       COALESCE(SUM(l.amount) FILTER (WHERE l.kind = 'top_up'), 0) AS top_ups,
		       COALESCE(SUM(l.amount) FILTER (WHERE l.kind = 'debit'), 0) AS debits
		FROM accounts a LEFT JOIN ledger l ON l.user_id = a.user_id
		GROUP BY a.user_id, a.balance`).Scan(ctx, &accounts)
	if err != nil {
		t.Fatal(err)
	}

	debitOf := map[string]int64{}
	for _, d := range debits {
		if _, twice := debitOf[d.OrderID]; twice {
			t.Errorf("order %s debited twice", d.OrderID)
		}
		debitOf[d.OrderID] = d.Amount
	}
	finishedSum := map[int64]int64{}
	for _, o := range orders {
		switch o.Status {
		case "FINISHED":
			finished++
			finishedSum[o.UserID] += o.Amount
			if amount, ok := debitOf[o.ID]; !ok || amount != o.Amount {
				t.Errorf("FINISHED order %s (%d) has debit %d, %v", o.ID, o.Amount, amount, ok)
			}
			delete(debitOf, o.ID)
		case "CANCELLED":
			cancelled++
			if _, ok := debitOf[o.ID]; ok {
				t.Errorf("CANCELLED order %s was debited", o.ID)
			}
		default:
			t.Errorf("order %s is %s, not terminal", o.ID, o.Status)
		}
	}
	for id := range debitOf {
		t.Errorf("debit for order %s, which is not FINISHED", id)
	}
	for _, a := range accounts {
		if a.Balance < 0 {
			t.Errorf("user %d: negative balance %d", a.UserID, a.Balance)
		}
		if a.Balance != a.TopUps-a.Debits {
			t.Errorf("user %d: balance %d != top-ups %d - debits %d", a.UserID, a.Balance, a.TopUps, a.Debits)
		}
		if a.Debits != finishedSum[a.UserID] {
			t.Errorf("user %d: debits %d != FINISHED orders %d", a.UserID, a.Debits, finishedSum[a.UserID])
		}
	}
	return finished, cancelled
}
