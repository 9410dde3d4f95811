package order_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"shop/services/orders/internal/order"
	"shop/services/platform/messaging"
	"shop/services/platform/stream"
)

// memStore is an order.Store in memory, enough for the message handler. Like
// a transaction, UpdateAll keeps nothing of a call that fails.
type memStore struct {
	order.Store
	orders map[uuid.UUID]order.Order
}

func (s *memStore) UpdateAll(_ context.Context, _ bun.IDB, ids []uuid.UUID, fn func(int, *order.Order) (bool, error)) ([]order.Order, error) {
	work := maps.Clone(s.orders)
	orders := make([]order.Order, len(ids))
	for i, id := range ids {
		o, ok := work[id]
		if !ok {
			return nil, fmt.Errorf("order %s: %w", id, order.ErrNotFound)
		}
		if _, err := fn(i, &o); err != nil {
			return nil, err
		}
		work[id], orders[i] = o, o
	}
	s.orders = work
	return orders, nil
}

func result(t *testing.T, id uuid.UUID, status order.Status, reason string) stream.Delivery {
	t.Helper()
	payload, err := json.Marshal(order.PaymentCompleted{OrderID: id, Status: status, Reason: reason})
	if err != nil {
		t.Fatal(err)
	}
	return delivery(order.PaymentCompletedType, string(payload))
}

func delivery(typ, payload string) stream.Delivery {
	msg := messaging.Message{ID: uuid.New(), Type: typ, Payload: json.RawMessage(payload)}
	return stream.Delivery{Message: msg}
}

func TestHandleRefusesWhatCanNeverApply(t *testing.T) {
	o, _ := order.NewOrder(1, 500, "", timeZero)
	store := &memStore{orders: map[uuid.UUID]order.Order{o.ID: o}}
	p := order.NewPayments(store)
	permanent := map[string]stream.Delivery{
		"unknown order": result(t, uuid.New(), order.Finished, ""),
		"wrong type":    delivery("payment.refunded", `{}`),
		"not json":      delivery(order.PaymentCompletedType, `[`),
		"not a result":  result(t, o.ID, order.New, ""),
	}
	for name, bad := range permanent {
		// Alone, or after a good result: the whole batch fails.
		for _, batch := range [][]stream.Delivery{{bad}, {result(t, o.ID, order.Finished, ""), bad}} {
			if err := p.HandleBatch(context.Background(), bun.Tx{}, batch); !errors.Is(err, order.ErrPermanent) {
				t.Errorf("%s: HandleBatch of %d = %v, want ErrPermanent", name, len(batch), err)
			}
		}
	}
	if store.orders[o.ID].Status != order.New {
		t.Fatalf("a refused batch changed the order: %+v", store.orders[o.ID])
	}
}

func TestHandleAppliesABatchInOrder(t *testing.T) {
	a, _ := order.NewOrder(1, 500, "", timeZero)
	b, _ := order.NewOrder(2, 700, "", timeZero)
	store := &memStore{orders: map[uuid.UUID]order.Order{a.ID: a, b.ID: b}}
	p := order.NewPayments(store)
	batch := []stream.Delivery{
		result(t, a.ID, order.Cancelled, "insufficient funds"),
		result(t, b.ID, order.Finished, ""),
		result(t, a.ID, order.Finished, ""), // late: a is cancelled already
	}
	if err := p.HandleBatch(context.Background(), bun.Tx{}, batch); err != nil {
		t.Fatal(err)
	}
	if got := store.orders[a.ID]; got.Status != order.Cancelled || got.CancelReason != "insufficient funds" {
		t.Fatalf("order a = %+v", got)
	}
	if got := store.orders[b.ID]; got.Status != order.Finished {
		t.Fatalf("order b = %+v", got)
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
