package usecase_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/trace"

	"shop/services/contract"
	"shop/services/payments/internal/payment"
	"shop/services/payments/internal/usecase"
	"shop/services/platform/messaging"
	"shop/services/platform/money"
	"shop/services/platform/outbox"
	"shop/services/platform/stream"
)

// fakeLedger decides every request with the rule on a payer of balance,
// or reports each as decided before, and announces the outcomes.
type fakeLedger struct {
	usecase.Ledger
	balance  int64
	existing bool
	calls    int
}

func (l *fakeLedger) PayAll(_ context.Context, _ bun.IDB, reqs []payment.Request,
	decide func(*payment.Payer, payment.Request) payment.Result,
	announce func([]payment.Outcome) (*outbox.Insert, error),
) ([]payment.Outcome, error) {
	l.calls++
	outcomes := make([]payment.Outcome, len(reqs))
	for i, req := range reqs {
		if l.existing {
			outcomes[i] = payment.Outcome{Result: payment.Result{OrderID: req.OrderID, Status: payment.Finished}, Existing: true}
			continue
		}
		outcomes[i] = payment.Outcome{Result: decide(&payment.Payer{Balance: money.Amount(l.balance)}, req)}
	}
	if _, err := announce(outcomes); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// fakeOutbox keeps the messages it is asked to insert; the fake ledger
// sends no statement.
type fakeOutbox struct {
	msgs   []messaging.Message
	traces []trace.SpanContext
}

func (o *fakeOutbox) Insert(_ context.Context, _ bun.IDB, pending []outbox.Pending) (*outbox.Insert, error) {
	ins := &outbox.Insert{}
	for _, p := range pending {
		o.msgs = append(o.msgs, p.Message)
		o.traces = append(o.traces, p.Trace)
		ins.Messages = append(ins.Messages, p.Message)
	}
	return ins, nil
}

func (o *fakeOutbox) Notify(context.Context) {}

func request(payload string) messaging.Message {
	return messaging.Message{ID: uuid.New(), Type: contract.PaymentRequestedType, Payload: json.RawMessage(payload)}
}

// spanOf is a distinct span context for message i.
func spanOf(i int) trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1, byte(i + 1)}, SpanID: trace.SpanID{byte(i + 1)}})
}

// handle runs the stream handler on msgs as one batch, each in a trace of
// its own.
func handle(p *usecase.Payments, msgs ...messaging.Message) error {
	batch := make([]stream.Delivery, len(msgs))
	for i, msg := range msgs {
		batch[i] = stream.Delivery{Trace: spanOf(i), Message: msg}
	}
	return p.HandleRequests(context.Background(), bun.Tx{}, batch)
}

func newPayments(l *fakeLedger, o *fakeOutbox) *usecase.Payments {
	return usecase.New(usecase.Deps{Ledger: l, Outbox: o}, usecase.Config{})
}

func TestHandleRequestsWritesTheResult(t *testing.T) {
	ob := &fakeOutbox{}
	p := newPayments(&fakeLedger{}, ob)
	orderID := uuid.New()
	if err := handle(p, request(`{"order_id":"`+orderID.String()+`","user_id":3,"amount":"12.30"}`)); err != nil {
		t.Fatal(err)
	}
	if len(ob.msgs) != 1 || ob.msgs[0].Stream != contract.PaymentResultsStream || ob.msgs[0].Type != contract.PaymentCompletedType {
		t.Fatalf("outbox = %+v", ob.msgs)
	}
	var res contract.PaymentCompleted
	if err := json.Unmarshal(ob.msgs[0].Payload, &res); err != nil || res.OrderID != orderID ||
		res.Status != contract.PaymentCancelled || res.Reason != payment.ReasonInsufficientFunds {
		t.Fatalf("result %s: %+v, %v", ob.msgs[0].Payload, res, err)
	}
}

// A batch is paid with one ledger call, and each result goes out in the
// trace of its own request.
func TestHandleRequestsSendsEachResultInItsRequestsTrace(t *testing.T) {
	ledger, ob := &fakeLedger{}, &fakeOutbox{}
	p := newPayments(ledger, ob)
	var msgs []messaging.Message
	for range 3 {
		msgs = append(msgs, request(`{"order_id":"`+uuid.NewString()+`","user_id":3,"amount":"1.00"}`))
	}
	if err := handle(p, msgs...); err != nil {
		t.Fatal(err)
	}
	if ledger.calls != 1 || len(ob.msgs) != 3 {
		t.Fatalf("%d ledger calls, %d results; want 1 and 3", ledger.calls, len(ob.msgs))
	}
	for i, span := range ob.traces {
		var req, res struct {
			OrderID uuid.UUID `json:"order_id"`
		}
		_ = json.Unmarshal(msgs[i].Payload, &req)
		_ = json.Unmarshal(ob.msgs[i].Payload, &res)
		if !span.Equal(spanOf(i)) || res.OrderID != req.OrderID {
			t.Fatalf("result %d: trace %v, order %s; want request %d's, order %s", i, span.TraceID(), res.OrderID, i, req.OrderID)
		}
	}
}

// A request for an order decided before (reconciliation's, under a new
// message id) is answered with the recorded result again, and nothing is
// decided anew.
func TestHandleRequestsResendsTheResultOfAKnownOrder(t *testing.T) {
	ob := &fakeOutbox{}
	p := newPayments(&fakeLedger{existing: true}, ob)
	orderID := uuid.New()
	err := handle(p, request(`{"order_id":"`+orderID.String()+`","user_id":3,"amount":"1.00"}`))
	if err != nil || len(ob.msgs) != 1 {
		t.Fatalf("HandleRequests = %v, outbox %+v; want the recorded result once", err, ob.msgs)
	}
	var res contract.PaymentCompleted
	if err := json.Unmarshal(ob.msgs[0].Payload, &res); err != nil || res.OrderID != orderID || res.Status != contract.PaymentFinished {
		t.Fatalf("resent %s: %+v, %v", ob.msgs[0].Payload, res, err)
	}
}

// Two requests of one order in one batch get one result.
func TestHandleRequestsAnswersAnOrderOncePerBatch(t *testing.T) {
	ob := &fakeOutbox{}
	p := newPayments(&fakeLedger{existing: true}, ob)
	body := `{"order_id":"` + uuid.NewString() + `","user_id":3,"amount":"1.00"}`
	if err := handle(p, request(body), request(body)); err != nil || len(ob.msgs) != 1 {
		t.Fatalf("HandleRequests = %v, %d results; want 1", err, len(ob.msgs))
	}
}

// A message that can never be paid fails its batch with a permanent error
// (the consumer dead-letters it), and no payment is made.
func TestHandleRequestsRefusesBadMessagesForGood(t *testing.T) {
	tests := map[string]messaging.Message{
		"wrong type":     {ID: uuid.New(), Type: "order.shipped", Payload: json.RawMessage(`{}`)},
		"not json":       request(`{`),
		"no order":       request(`{"user_id":3,"amount":"1.00"}`),
		"zero user":      request(`{"order_id":"` + uuid.NewString() + `","user_id":0,"amount":"1.00"}`),
		"zero amount":    request(`{"order_id":"` + uuid.NewString() + `","user_id":3,"amount":"0.00"}`),
		"float amount":   request(`{"order_id":"` + uuid.NewString() + `","user_id":3,"amount":0.001}`),
		"huge amount":    request(`{"order_id":"` + uuid.NewString() + `","user_id":3,"amount":"1000000000.01"}`),
		"negative money": request(`{"order_id":"` + uuid.NewString() + `","user_id":3,"amount":"-5.00"}`),
	}
	for name, msg := range tests {
		t.Run(name, func(t *testing.T) {
			ledger := &fakeLedger{}
			good := request(`{"order_id":"` + uuid.NewString() + `","user_id":3,"amount":"1.00"}`)
			err := handle(newPayments(ledger, &fakeOutbox{}), good, msg)
			if !stream.IsPermanent(err) {
				t.Fatalf("HandleRequests = %v, want a permanent error", err)
			}
			if ledger.calls != 0 {
				t.Fatal("a bad message reached the ledger")
			}
		})
	}
}

// Pay refuses an invalid request before it opens a transaction.
func TestPayRefusesAnInvalidRequest(t *testing.T) {
	p := newPayments(&fakeLedger{}, &fakeOutbox{})
	_, _, err := p.Pay(context.Background(), uuid.New(), payment.Request{OrderID: uuid.New(), UserID: 1})
	if !errors.Is(err, payment.ErrInvalid) {
		t.Fatalf("Pay = %v, want ErrInvalid", err)
	}
}
