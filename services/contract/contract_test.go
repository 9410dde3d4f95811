package contract_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/google/uuid"

	"shop/services/contract"
)

// Every payload survives a trip through JSON unchanged, and reads as the
// wire format both services have always written.
func TestPayloadsRoundTrip(t *testing.T) {
	id := uuid.MustParse("01890a5d-ac96-774b-bcce-b302099a8057")
	tests := []struct {
		name    string
		payload any
		wire    string
	}{
		{"payment requested", contract.PaymentRequested{OrderID: id, UserID: 7, Amount: 1230},
			`{"order_id":"01890a5d-ac96-774b-bcce-b302099a8057","user_id":7,"amount":"12.30"}`},
		{"payment finished", contract.PaymentCompleted{OrderID: id, Status: contract.PaymentFinished},
			`{"order_id":"01890a5d-ac96-774b-bcce-b302099a8057","status":"FINISHED"}`},
		{"payment cancelled", contract.PaymentCompleted{OrderID: id, Status: contract.PaymentCancelled, Reason: "insufficient funds"},
			`{"order_id":"01890a5d-ac96-774b-bcce-b302099a8057","status":"CANCELLED","reason":"insufficient funds"}`},
		{"payment with payer and amount", contract.PaymentCompleted{OrderID: id, Status: contract.PaymentFinished, UserID: 7, Amount: 1230},
			`{"order_id":"01890a5d-ac96-774b-bcce-b302099a8057","status":"FINISHED","user_id":7,"amount":"12.30"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := json.Marshal(tt.payload)
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != tt.wire {
				t.Fatalf("encoded %s, want %s", data, tt.wire)
			}
			back := reflect.New(reflect.TypeOf(tt.payload))
			if err := json.Unmarshal(data, back.Interface()); err != nil {
				t.Fatal(err)
			}
			if got := back.Elem().Interface(); got != tt.payload {
				t.Fatalf("round trip gave %+v, want %+v", got, tt.payload)
			}
		})
	}
}
