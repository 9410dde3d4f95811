package payment_test

import (
	"errors"
	"testing"

	"github.com/google/uuid"

	"shop/services/payments/internal/payment"
	"shop/services/platform/money"
)

func TestDecide(t *testing.T) {
	tests := []struct {
		name        string
		payer       payment.Payer
		amount      money.Amount
		wantStatus  payment.Status
		wantReason  string
		wantBalance money.Amount
	}{
		{"enough", payment.Payer{Balance: 10_000}, 3_000, payment.Finished, "", 7_000},
		{"exactly the balance", payment.Payer{Balance: 7_000}, 7_000, payment.Finished, "", 0},
		{"one cent short", payment.Payer{Balance: 7_000}, 7_001, payment.Cancelled, payment.ReasonInsufficientFunds, 7_000},
		{"empty account", payment.Payer{}, 1, payment.Cancelled, payment.ReasonInsufficientFunds, 0},
		{"no account: opened for it", payment.Payer{Opened: true}, 1, payment.Cancelled, payment.ReasonNoAccount, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.payer
			req := payment.Request{OrderID: uuid.New(), UserID: 1, Amount: tt.amount}
			res := payment.Decide(&p, req)
			if res.OrderID != req.OrderID || res.Status != tt.wantStatus || res.Reason != tt.wantReason {
				t.Fatalf("Decide = %+v, want %s %q", res, tt.wantStatus, tt.wantReason)
			}
			if p.Balance != tt.wantBalance || p.Opened {
				t.Fatalf("payer after = %+v, want balance %s, not opened", p, tt.wantBalance)
			}
		})
	}
}

// Requests of one payer are decided in turn: each sees the balance the ones
// before left, and only the first is declined for want of an account.
func TestDecideInTurn(t *testing.T) {
	fresh := payment.Payer{Opened: true}
	for i, want := range []string{payment.ReasonNoAccount, payment.ReasonInsufficientFunds} {
		if res := payment.Decide(&fresh, payment.Request{OrderID: uuid.New(), UserID: 2, Amount: 1}); res.Reason != want {
			t.Fatalf("payment %d: reason %q, want %q", i, res.Reason, want)
		}
	}
	rich := payment.Payer{Balance: 10_000}
	var got []payment.Status
	for _, amount := range []money.Amount{3_000, 5_000, 2_001, 2_000} {
		got = append(got, payment.Decide(&rich, payment.Request{OrderID: uuid.New(), UserID: 1, Amount: amount}).Status)
	}
	want := []payment.Status{payment.Finished, payment.Finished, payment.Cancelled, payment.Finished}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("statuses %v, want %v", got, want)
		}
	}
	if rich.Balance != 0 {
		t.Fatalf("balance %s, want 0.00", rich.Balance)
	}
}

func TestValidate(t *testing.T) {
	id := uuid.New()
	tests := map[string]payment.Request{
		"no order":    {UserID: 3, Amount: 100},
		"zero user":   {OrderID: id, Amount: 100},
		"zero amount": {OrderID: id, UserID: 3},
		"negative":    {OrderID: id, UserID: 3, Amount: -500},
		"huge amount": {OrderID: id, UserID: 3, Amount: money.MaxAmount + 1},
	}
	for name, req := range tests {
		if err := req.Validate(); !errors.Is(err, payment.ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
	if err := (payment.Request{OrderID: id, UserID: 3, Amount: money.MaxAmount}).Validate(); err != nil {
		t.Errorf("a valid request: %v", err)
	}
}
