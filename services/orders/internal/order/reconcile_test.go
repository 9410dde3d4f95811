package order_test

import (
	"errors"
	"testing"
	"time"

	"shop/services/orders/internal/order"
	"shop/services/platform/money"
)

func TestRetryDelay(t *testing.T) {
	tests := []struct {
		n     int
		after time.Duration
		want  time.Duration
	}{
		{1, time.Minute, time.Minute},
		{2, time.Minute, 2 * time.Minute},
		{3, time.Minute, 4 * time.Minute},
		{6, time.Minute, 32 * time.Minute},
		{7, time.Minute, time.Hour}, // 64m, capped
		{1000, time.Minute, time.Hour},
		{0, time.Minute, time.Minute}, // no request yet counts as the first
		{1, 2 * time.Second, 2 * time.Second},
		{4, 2 * time.Second, 16 * time.Second},
		{12, 2 * time.Second, time.Hour},  // 4096s, capped
		{1, 2 * time.Hour, 2 * time.Hour}, // the cap never shortens the first spacing
		{5, 2 * time.Hour, 2 * time.Hour},
	}
	for _, tt := range tests {
		if got := order.RetryDelay(tt.n, tt.after); got != tt.want {
			t.Errorf("RetryDelay(%d, %v) = %v, want %v", tt.n, tt.after, got, tt.want)
		}
	}
}

// The delays never shrink and never pass the cap, for any count.
func TestRetryDelayGrowsToTheCap(t *testing.T) {
	for _, after := range []time.Duration{time.Millisecond, time.Second, 7 * time.Second, time.Minute, 59 * time.Minute} {
		prev := time.Duration(0)
		for n := 1; n <= 100; n++ {
			d := order.RetryDelay(n, after)
			if d < prev || d > order.MaxRetryDelay {
				t.Fatalf("RetryDelay(%d, %v) = %v after %v", n, after, d, prev)
			}
			prev = d
		}
		if prev != order.MaxRetryDelay {
			t.Errorf("RetryDelay(100, %v) = %v, want the cap", after, prev)
		}
	}
}

func TestRequestPaymentSchedulesTheNext(t *testing.T) {
	o, err := order.NewOrder(1, 100, "", timeZero)
	if err != nil {
		t.Fatal(err)
	}
	if !o.RequestPayment(timeZero, time.Minute) || o.PaymentRequests != 1 || !o.PaymentRetryAt.Equal(timeZero.Add(time.Minute)) {
		t.Fatalf("first request: %d requests, retry at %v", o.PaymentRequests, o.PaymentRetryAt)
	}
	if o.PaymentDue(timeZero.Add(59 * time.Second)) {
		t.Fatal("due before RECONCILE_AFTER")
	}
	at := timeZero.Add(time.Minute)
	if !o.PaymentDue(at) {
		t.Fatal("not due at RECONCILE_AFTER")
	}
	o.RequestPayment(at, time.Minute)
	if o.PaymentRequests != 2 || !o.PaymentRequestedAt.Equal(at) || !o.PaymentRetryAt.Equal(at.Add(2*time.Minute)) {
		t.Fatalf("second request: %d requests at %v, retry at %v", o.PaymentRequests, o.PaymentRequestedAt, o.PaymentRetryAt)
	}
	if _, err := o.ApplyPayment(order.Finished, "", at); err != nil {
		t.Fatal(err)
	}
	if o.PaymentDue(at.Add(time.Hour)) {
		t.Fatal("a FINISHED order is due")
	}
	if o.RequestPayment(at.Add(time.Hour), time.Minute) || o.PaymentRequests != 2 {
		t.Fatal("a FINISHED order was requested again")
	}
}

func TestCheckResult(t *testing.T) {
	o, err := order.NewOrder(7, 1230, "", timeZero)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		userID int64
		amount money.Amount
		ok     bool
	}{
		{"same user and amount", 7, 1230, true},
		{"neither named", 0, 0, true},
		{"another user", 8, 1230, false},
		{"another amount", 7, 1231, false},
		{"amount only", 0, 1230, false},
	}
	for _, tt := range tests {
		err := o.CheckResult(tt.userID, tt.amount)
		if tt.ok != (err == nil) || (err != nil && !errors.Is(err, order.ErrResultMismatch)) {
			t.Errorf("%s: CheckResult = %v", tt.name, err)
		}
	}
}
