package order_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"shop/services/orders/internal/order"
	"shop/services/platform/messaging"
)

// memStore is an order.Store in memory, enough for the message handler.
type memStore struct {
	order.Store
	orders map[uuid.UUID]order.Order
}

func (s *memStore) Update(_ context.Context, _ bun.IDB, id uuid.UUID, fn func(*order.Order) (bool, error)) (order.Order, error) {
	o, ok := s.orders[id]
	if !ok {
		return order.Order{}, order.ErrNotFound
	}
	changed, err := fn(&o)
	if err == nil && changed {
		s.orders[id] = o
	}
	return o, err
}

func TestHandlePaymentResults(t *testing.T) {
	o, _ := order.NewOrder(1, 500, "", timeZero)
	store := &memStore{orders: map[uuid.UUID]order.Order{o.ID: o}}
	p := order.NewPayments(store)
	msg := func(typ, payload string) messaging.Message {
		return messaging.Message{ID: uuid.New(), Type: typ, Payload: json.RawMessage(payload)}
	}

	permanent := map[string]messaging.Message{
		"unknown order": msg(order.PaymentCompletedType, `{"order_id":"`+uuid.NewString()+`","status":"FINISHED"}`),
		"wrong type":    msg("payment.refunded", `{}`),
		"not json":      msg(order.PaymentCompletedType, `[`),
		"not a result":  msg(order.PaymentCompletedType, `{"order_id":"`+o.ID.String()+`","status":"NEW"}`),
	}
	for name, m := range permanent {
		if err := p.Handle(context.Background(), bun.Tx{}, m); !errors.Is(err, order.ErrPermanent) {
			t.Errorf("%s: Handle = %v, want ErrPermanent", name, err)
		}
	}
	if store.orders[o.ID].Status != order.New {
		t.Fatalf("a refused message changed the order: %+v", store.orders[o.ID])
	}
	ok := msg(order.PaymentCompletedType, `{"order_id":"`+o.ID.String()+`","status":"CANCELLED","reason":"insufficient funds"}`)
	if err := p.Handle(context.Background(), bun.Tx{}, ok); err != nil {
		t.Fatal(err)
	}
	if got := store.orders[o.ID]; got.Status != order.Cancelled || got.CancelReason != "insufficient funds" {
		t.Fatalf("order = %+v", got)
	}
}

func TestPaymentRequestCarriesTheOrder(t *testing.T) {
	o, _ := order.NewOrder(7, 1230, "x", timeZero)
	msg, err := order.PaymentRequest(o)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Stream != order.PaymentRequestsStream || msg.Type != order.PaymentRequestedType {
		t.Fatalf("message = %+v", msg)
	}
	want := `{"order_id":"` + o.ID.String() + `","user_id":7,"amount":"12.30"}`
	if string(msg.Payload) != want {
		t.Fatalf("payload %s, want %s", msg.Payload, want)
	}
}
