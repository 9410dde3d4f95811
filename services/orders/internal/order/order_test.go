package order_test

import (
	"errors"
	"testing"
	"time"

	"shop/services/orders/internal/order"
)

var timeZero = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestApplyPayment(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	later := now.Add(time.Second)
	tests := []struct {
		name        string
		from        order.Status
		to          order.Status
		reason      string
		wantStatus  order.Status
		wantReason  string
		wantChanged bool
		wantErr     error
	}{
		{"paid", order.New, order.Finished, "", order.Finished, "", true, nil},
		{"paid ignores a reason", order.New, order.Finished, "x", order.Finished, "", true, nil},
		{"declined", order.New, order.Cancelled, "insufficient funds", order.Cancelled, "insufficient funds", true, nil},
		{"declined without reason", order.New, order.Cancelled, "", order.Cancelled, "payment declined", true, nil},
		{"late result on finished", order.Finished, order.Cancelled, "x", order.Finished, "", false, nil},
		{"late result on cancelled", order.Cancelled, order.Finished, "", order.Cancelled, "", false, nil},
		{"not a result", order.New, order.New, "", order.New, "", false, order.ErrInvalidResult},
		{"unknown status", order.New, "PAID", "", order.New, "", false, order.ErrInvalidResult},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := order.NewOrder(1, 100, "", now)
			if err != nil {
				t.Fatal(err)
			}
			o.Status = tt.from
			changed, err := o.ApplyPayment(tt.to, tt.reason, later)
			if !errors.Is(err, tt.wantErr) || changed != tt.wantChanged {
				t.Fatalf("ApplyPayment = %v, %v; want %v, %v", changed, err, tt.wantChanged, tt.wantErr)
			}
			if o.Status != tt.wantStatus || o.CancelReason != tt.wantReason {
				t.Fatalf("order is %s %q, want %s %q", o.Status, o.CancelReason, tt.wantStatus, tt.wantReason)
			}
			if changed != o.UpdatedAt.Equal(later) {
				t.Fatalf("updated_at %v after changed=%v", o.UpdatedAt, changed)
			}
		})
	}
}
