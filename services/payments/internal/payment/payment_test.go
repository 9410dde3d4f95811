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
	"shop/services/platform/outbox"
	"shop/services/platform/stream"
)

type fakeLedger struct {
	res      payment.Result
	existing bool
	calls    int
}

func (l *fakeLedger) PayAll(_ context.Context, _ bun.Tx, reqs []payment.Request) ([]payment.Outcome, error) {
	l.calls++
	outcomes := make([]payment.Outcome, len(reqs))
	for i, req := range reqs {
		res := l.res
		res.OrderID = req.OrderID
		outcomes[i] = payment.Outcome{Result: res, Existing: l.existing}
	}
	return outcomes, nil
}

type fakeOutbox struct {
	msgs []messaging.Message
	ctxs []context.Context
}

func (o *fakeOutbox) AddAll(_ context.Context, _ bun.IDB, pending []outbox.Pending) ([]messaging.Message, error) {
	for _, p := range pending {
		o.msgs = append(o.msgs, p.Message)
		o.ctxs = append(o.ctxs, p.Ctx)
	}
	return o.msgs, nil
}

func (o *fakeOutbox) Notify(context.Context) {}

func request(t *testing.T, payload string) messaging.Message {
	t.Helper()
	return messaging.Message{ID: uuid.New(), Type: payment.RequestedType, Payload: json.RawMessage(payload)}
}

// handle runs p's stream handler on msgs as one batch, each message in a
// context of its own.
func handle(p *payment.Processor, msgs ...messaging.Message) error {
	batch := make([]stream.Delivery, len(msgs))
	for i, msg := range msgs {
		batch[i] = stream.Delivery{Ctx: context.WithValue(context.Background(), ctxKey{}, i), Message: msg}
	}
	return p.Handle(context.Background(), bun.Tx{}, batch)
}

type ctxKey struct{}

func TestHandleWritesTheResult(t *testing.T) {
	ledger := &fakeLedger{res: payment.Result{Status: payment.Cancelled, Reason: payment.ReasonInsufficientFunds}}
	ob := &fakeOutbox{}
	p := payment.NewProcessor(ledger, ob)
	orderID := uuid.New()
	err := handle(p, request(t, `{"order_id":"`+orderID.String()+`","user_id":3,"amount":"12.30"}`))
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

// A batch is paid with one ledger call, and each result goes out in the
// context (the trace) of its own request.
func TestHandleBatchSendsEachResultInItsRequestsContext(t *testing.T) {
	ledger := &fakeLedger{res: payment.Result{Status: payment.Finished}}
	ob := &fakeOutbox{}
	p := payment.NewProcessor(ledger, ob)
	var msgs []messaging.Message
	for range 3 {
		msgs = append(msgs, request(t, `{"order_id":"`+uuid.NewString()+`","user_id":3,"amount":"1.00"}`))
	}
	if err := handle(p, msgs...); err != nil {
		t.Fatal(err)
	}
	if ledger.calls != 1 || len(ob.msgs) != 3 {
		t.Fatalf("%d ledger calls, %d results; want 1 and 3", ledger.calls, len(ob.msgs))
	}
	for i, ctx := range ob.ctxs {
		var req, res struct {
			OrderID uuid.UUID `json:"order_id"`
		}
		_ = json.Unmarshal(msgs[i].Payload, &req)
		_ = json.Unmarshal(ob.msgs[i].Payload, &res)
		if ctx.Value(ctxKey{}) != i || res.OrderID != req.OrderID {
			t.Fatalf("result %d: context of request %v, order %s; want request %d, order %s", i, ctx.Value(ctxKey{}), res.OrderID, i, req.OrderID)
		}
	}
}

func TestHandleSendsNothingForAKnownOrder(t *testing.T) {
	ob := &fakeOutbox{}
	p := payment.NewProcessor(&fakeLedger{res: payment.Result{Status: payment.Finished}, existing: true}, ob)
	err := handle(p, request(t, `{"order_id":"`+uuid.NewString()+`","user_id":3,"amount":"1.00"}`))
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
			good := request(t, `{"order_id":"`+uuid.NewString()+`","user_id":3,"amount":"1.00"}`)
			err := handle(payment.NewProcessor(ledger, &fakeOutbox{}), good, msg)
			if !errors.Is(err, payment.ErrPermanent) {
				t.Fatalf("Handle = %v, want ErrPermanent", err)
			}
			if ledger.calls != 0 {
				t.Fatal("a bad message reached the ledger")
			}
		})
	}
}
