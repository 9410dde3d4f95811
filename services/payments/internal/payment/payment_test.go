package payment_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"shop/services/payments/internal/payment"
	"shop/services/platform/messaging"
)

type fakeLedger struct {
	res      payment.Result
	existing bool
	calls    int
}

func (l *fakeLedger) Pay(_ context.Context, _ bun.Tx, req payment.Request) (payment.Result, bool, error) {
	l.calls++
	res := l.res
	res.OrderID = req.OrderID
	return res, l.existing, nil
}

type fakeOutbox struct{ msgs []messaging.Message }

func (o *fakeOutbox) Add(_ context.Context, _ bun.IDB, msg messaging.Message) (messaging.Message, error) {
	o.msgs = append(o.msgs, msg)
	return msg, nil
}

func (o *fakeOutbox) Notify(context.Context) {}

func request(t *testing.T, payload string) messaging.Message {
	t.Helper()
	return messaging.Message{ID: uuid.New(), Type: payment.RequestedType, Payload: json.RawMessage(payload)}
}

func TestHandleWritesTheResult(t *testing.T) {
	ledger := &fakeLedger{res: payment.Result{Status: payment.Cancelled, Reason: payment.ReasonInsufficientFunds}}
	ob := &fakeOutbox{}
	p := payment.NewProcessor(ledger, ob)
	orderID := uuid.New()
	err := p.Handle(context.Background(), bun.Tx{}, request(t, `{"order_id":"`+orderID.String()+`","user_id":3,"amount":"12.30"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(ob.msgs) != 1 || ob.msgs[0].Stream != payment.ResultsStream || ob.msgs[0].Type != payment.CompletedType {
		t.Fatalf("outbox = %+v", ob.msgs)
	}
	var res payment.Result
	if err := json.Unmarshal(ob.msgs[0].Payload, &res); err != nil || res.OrderID != orderID || res.Status != payment.Cancelled || res.Reason == "" {
		t.Fatalf("result %s: %+v, %v", ob.msgs[0].Payload, res, err)
	}
}

func TestHandleSendsNothingForAKnownOrder(t *testing.T) {
	ob := &fakeOutbox{}
	p := payment.NewProcessor(&fakeLedger{res: payment.Result{Status: payment.Finished}, existing: true}, ob)
	err := p.Handle(context.Background(), bun.Tx{}, request(t, `{"order_id":"`+uuid.NewString()+`","user_id":3,"amount":"1.00"}`))
	if err != nil || len(ob.msgs) != 0 {
		t.Fatalf("Handle = %v, outbox %+v; want no second result", err, ob.msgs)
	}
}

func TestHandleRefusesBadMessagesForGood(t *testing.T) {
	tests := map[string]messaging.Message{
		"wrong type":     {ID: uuid.New(), Type: "order.shipped", Payload: json.RawMessage(`{}`)},
		"not json":       request(t, `{`),
		"no order":       request(t, `{"user_id":3,"amount":"1.00"}`),
		"zero user":      request(t, `{"order_id":"`+uuid.NewString()+`","user_id":0,"amount":"1.00"}`),
		"zero amount":    request(t, `{"order_id":"`+uuid.NewString()+`","user_id":3,"amount":"0.00"}`),
		"float amount":   request(t, `{"order_id":"`+uuid.NewString()+`","user_id":3,"amount":0.001}`),
		"huge amount":    request(t, `{"order_id":"`+uuid.NewString()+`","user_id":3,"amount":"1000000000.01"}`),
		"negative money": request(t, `{"order_id":"`+uuid.NewString()+`","user_id":3,"amount":"-5.00"}`),
	}
	for name, msg := range tests {
		t.Run(name, func(t *testing.T) {
			ledger := &fakeLedger{}
			err := payment.NewProcessor(ledger, &fakeOutbox{}).Handle(context.Background(), bun.Tx{}, msg)
			if !errors.Is(err, payment.ErrPermanent) {
				t.Fatalf("Handle = %v, want ErrPermanent", err)
			}
			if ledger.calls != 0 {
				t.Fatal("a bad message reached the ledger")
			}
		})
	}
}
