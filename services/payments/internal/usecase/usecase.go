// Package usecase is the payments service's application layer: one method
// per use case (pay for a batch of orders, pay for one through the internal
// endpoint, open an account, top it up, read a balance). Each owns its
// transaction, the inbox record of the message it applies, the outbox rows
// it writes and the wake-up of the relay after the commit; the rule itself
// is payment.Decide, and the stores only load, lock and save. The stream
// consumer and the HTTP handlers both call these methods.
package usecase

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"shop/services/contract"
	"shop/services/contract/shopattr"
	"shop/services/payments/internal/account"
	"shop/services/payments/internal/payment"
	"shop/services/platform/idempotency"
	"shop/services/platform/inbox"
	"shop/services/platform/messaging"
	"shop/services/platform/money"
	"shop/services/platform/outbox"
	"shop/services/platform/stream"
	"shop/services/platform/telemetry"
)

// Ledger pays for orders within a transaction the caller owns, deciding
// each with decide and sending, with its own writes, the insert announce
// makes of the outcomes (see store.Store.PayAll), and reads recorded
// outcomes.
type Ledger interface {
	PayAll(ctx context.Context, tx bun.IDB, reqs []payment.Request,
		decide func(*payment.Payer, payment.Request) payment.Result,
		announce func([]payment.Outcome) (*outbox.Insert, error),
	) ([]payment.Outcome, error)
	Outcome(ctx context.Context, orderID uuid.UUID) (payment.Result, error)
}

// Outbox prepares the insert of messages in the caller's transaction, for
// a writer to send within a statement of its own, and is told when they
// are committed.
type Outbox interface {
	Insert(ctx context.Context, tx bun.IDB, pending []outbox.Pending) (*outbox.Insert, error)
	Notify(ctx context.Context)
}

// Accounts keeps accounts (store.Store); its writes run in the caller's
// transaction, where the answer to an idempotency key is recorded too.
type Accounts interface {
	CreateIn(ctx context.Context, tx bun.IDB, userID int64) (account.Account, error)
	TopUpIn(ctx context.Context, tx bun.IDB, userID int64, amount money.Positive) (account.Account, error)
	Get(ctx context.Context, userID int64) (account.Account, error)
}

// Keys run a request's effect once per idempotency key, in a transaction
// that records its answer (idempotency.Keys).
type Keys interface {
	Do(ctx context.Context, req idempotency.Request, effect func(ctx context.Context, tx bun.Tx) (idempotency.Response, error)) (idempotency.Response, bool, error)
}

// Deps are what the use cases work on.
type Deps struct {
	DB       *bun.DB
	Accounts Accounts
	Ledger   Ledger
	Outbox   Outbox
	Keys     Keys
}

// Answer makes the answer to a request with an idempotency key from the
// account the request left, for the key to record.
type Answer func(account.Account) (idempotency.Response, error)

// Config configures the use cases. The zero value is sensible.
type Config struct {
	// Telemetry receives the payment outcome counts (default: the global
	// providers).
	Telemetry telemetry.Providers
	// Logger logs each decision: a declined payment at info, a paid one at
	// debug (default slog.Default()).
	Logger *slog.Logger
}

// Payments are the payments service's use cases.
type Payments struct {
	d        Deps
	outcomes metric.Int64Counter
	resent   metric.Int64Counter
	log      *slog.Logger
}

// New returns the use cases on d.
func New(d Deps, cfg Config) *Payments {
	// The API's error is only for an invalid name, which this is not.
	meter := cfg.Telemetry.MeterProvider().Meter("shop/services/payments/payment")
	outcomes, _ := meter.Int64Counter("payments.outcomes",
		metric.WithUnit("{payment}"),
		metric.WithDescription("Payments decided, by status (FINISHED or CANCELLED) and decline reason"))
	resent, _ := meter.Int64Counter("payments.results.resent",
		metric.WithUnit("{message}"),
		metric.WithDescription("Recorded results sent again, by status, for requests of orders decided before (reconciliation)"))
	return &Payments{d: d, outcomes: outcomes, resent: resent, log: cmp.Or(cfg.Logger, slog.Default())}
}

// OpenAccount opens an account with a zero balance.
//
// With an idempotency key (key.Keyed()), the answer answer makes is
// recorded in the same transaction. A request whose key was answered
// before changes nothing and returns that answer (replay); the same key
// for another request is idempotency.ErrMismatch, and one in flight
// idempotency.ErrInFlight. TopUp does the same.
func (p *Payments) OpenAccount(ctx context.Context, userID int64, key idempotency.Request, answer Answer) (a account.Account, replay *idempotency.Response, err error) {
	return p.once(ctx, key, answer, func(ctx context.Context, tx bun.IDB) (account.Account, error) {
		return p.d.Accounts.CreateIn(ctx, tx, userID)
	})
}

// TopUp adds amount to a user's balance, once per idempotency key (see
// OpenAccount).
func (p *Payments) TopUp(ctx context.Context, userID int64, amount money.Positive, key idempotency.Request, answer Answer) (a account.Account, replay *idempotency.Response, err error) {
	return p.once(ctx, key, answer, func(ctx context.Context, tx bun.IDB) (account.Account, error) {
		return p.d.Accounts.TopUpIn(ctx, tx, userID, amount)
	})
}

// once runs write in a transaction that records the answer to key, if
// there is one, and returns the account write left; or, for a key
// answered before, that answer without running write.
func (p *Payments) once(ctx context.Context, key idempotency.Request, answer Answer, write func(ctx context.Context, tx bun.IDB) (account.Account, error)) (account.Account, *idempotency.Response, error) {
	var acc account.Account
	resp, replayed, err := p.d.Keys.Do(ctx, key, func(ctx context.Context, tx bun.Tx) (idempotency.Response, error) {
		a, err := write(ctx, tx)
		if err != nil {
			return idempotency.Response{}, err
		}
		acc = a
		if !key.Keyed() {
			return idempotency.Response{}, nil
		}
		return answer(a)
	})
	switch {
	case err != nil:
		return account.Account{}, nil, err
	case replayed:
		return account.Account{}, &resp, nil
	}
	return acc, nil, nil
}

// Balance returns a user's account.
func (p *Payments) Balance(ctx context.Context, userID int64) (account.Account, error) {
	return p.d.Accounts.Get(ctx, userID)
}

// Pay pays for one order: the internal endpoint's entry into the flow the
// stream feeds, with the same idempotency by message id. A message id seen
// before changes nothing and reports the order's recorded result with
// duplicate true. An invalid request is an error wrapping
// payment.ErrInvalid.
func (p *Payments) Pay(ctx context.Context, messageID uuid.UUID, req payment.Request) (res payment.Result, duplicate bool, err error) {
	if err := req.Validate(); err != nil {
		return res, false, err
	}
	err = inbox.Process(ctx, p.d.DB, messageID, contract.PaymentRequestedType, func(ctx context.Context, tx bun.Tx) error {
		results, err := p.payAll(ctx, tx, []traced{{span: trace.SpanContextFromContext(ctx), work: trace.SpanFromContext(ctx), req: req}})
		if err != nil {
			return err
		}
		res = results[0]
		return nil
	})
	if errors.Is(err, inbox.ErrDuplicate) {
		res, err = p.d.Ledger.Outcome(ctx, req.OrderID)
		if err == nil {
			annotate(trace.SpanFromContext(ctx), req, res, true)
		}
		return res, true, err
	}
	if err != nil {
		return res, false, err
	}
	p.d.Outbox.Notify(ctx)
	return res, false, nil
}

// HandleRequests is the stream handler of payment requests: it pays for
// the whole batch within tx, the consumer's transaction with the inbox
// records, with a few statements; the results' outbox insert wakes the
// relay once the consumer has committed (database.AfterCommit). A request for an order decided before, under a new message id
// (reconciliation's), is answered with the recorded result again, never a
// second debit. A message that can never be paid (malformed, or invalid)
// fails the batch with a permanent error; the consumer then applies each message
// alone, and only that one is dead-lettered.
func (p *Payments) HandleRequests(ctx context.Context, tx bun.IDB, batch []stream.Delivery) error {
	reqs := make([]traced, len(batch))
	for i, d := range batch {
		req, err := decodeRequest(d.Message)
		if err != nil {
			return stream.Permanent(fmt.Errorf("message %s: %w", d.ID, err))
		}
		reqs[i] = traced{span: d.Trace, work: d.Span(), req: req}
	}
	_, err := p.payAll(ctx, tx, reqs)
	return err
}

// traced is a request with the trace it arrived in, where its result goes
// out.
type traced struct {
	span trace.SpanContext
	// work is the span of the request's own work (its process span, or the
	// internal endpoint's server span), which records the decision.
	work trace.Span
	req  payment.Request
}

// decodeRequest reads the payment request msg carries.
func decodeRequest(msg messaging.Message) (payment.Request, error) {
	if msg.Type != contract.PaymentRequestedType {
		return payment.Request{}, fmt.Errorf("unexpected message type %q", msg.Type)
	}
	var body contract.PaymentRequested
	if err := json.Unmarshal(msg.Payload, &body); err != nil {
		return payment.Request{}, fmt.Errorf("decode payload: %w", err)
	}
	req := payment.Request{OrderID: body.OrderID, UserID: body.UserID, Amount: body.Amount}
	return req, req.Validate()
}

// payAll pays for the orders of reqs within tx and writes the result of
// each newly decided one to the outbox in the same transaction, in the
// trace of its request. The outbox rows go with the ledger's writes, in
// the same statement where the database allows.
func (p *Payments) payAll(ctx context.Context, tx bun.IDB, reqs []traced) ([]payment.Result, error) {
	plain := make([]payment.Request, len(reqs))
	for i, r := range reqs {
		plain[i] = r.req
	}
	balances := make(map[uuid.UUID][2]money.Amount, len(reqs))
	decide := func(payer *payment.Payer, req payment.Request) payment.Result {
		before := payer.Balance
		res := payment.Decide(payer, req)
		balances[req.OrderID] = [2]money.Amount{before, payer.Balance}
		return res
	}
	var resend []bool
	var ins *outbox.Insert
	announce := func(outcomes []payment.Outcome) (*outbox.Insert, error) {
		msgs, r, err := results(reqs, outcomes)
		if err != nil {
			return nil, err
		}
		resend = r
		if len(msgs) == 0 {
			return nil, nil
		}
		if ins, err = p.d.Outbox.Insert(ctx, tx, msgs); err != nil {
			return nil, err
		}
		return ins, nil
	}
	outcomes, err := p.d.Ledger.PayAll(ctx, tx, plain, decide, announce)
	if ins != nil {
		ins.Done(err) // the rows were sent with the ledger's writes
	}
	if err != nil {
		return nil, fmt.Errorf("pay for %d orders: %w", len(reqs), err)
	}
	// Counted, traced and logged when decided; a transaction that then
	// fails to commit is retried and counted again, which is rare enough
	// for a rate, and its span is marked failed.
	out := make([]payment.Result, len(outcomes))
	for i, o := range outcomes {
		out[i] = o.Result
		annotate(reqs[i].work, reqs[i].req, o.Result, o.Existing)
		switch {
		case resend[i]:
			p.resend(ctx, reqs[i], o.Result)
		case !o.Existing:
			p.decided(ctx, reqs[i], o.Result, balances[o.OrderID])
		}
	}
	return out, nil
}

// results are the messages that answer the requests of reqs with their
// outcomes, each in the trace of its request: one per order, since an
// order asked for twice in a batch gets one answer. resend marks the
// requests answered with a result recorded before.
func results(reqs []traced, outcomes []payment.Outcome) (msgs []outbox.Pending, resend []bool, err error) {
	resend = make([]bool, len(outcomes))
	sent := make(map[uuid.UUID]bool, len(outcomes)) // a result in this batch's outbox rows
	for i, o := range outcomes {
		if sent[o.OrderID] {
			continue // asked twice in one batch: one result answers both
		}
		sent[o.OrderID] = true
		// An order decided before, asked for again under a new message id:
		// its request or result was lost (reconciliation asks again), so the
		// recorded result goes out again. Nothing is debited twice.
		resend[i] = o.Existing
		payload, err := json.Marshal(contract.PaymentCompleted{
			OrderID: o.OrderID, Status: contract.PaymentStatus(o.Status), Reason: o.Reason,
			UserID: o.UserID, Amount: o.Amount,
		})
		if err != nil {
			return nil, nil, err
		}
		msgs = append(msgs, outbox.Pending{Trace: reqs[i].span, Message: messaging.Message{
			Stream: contract.PaymentResultsStream, Type: contract.PaymentCompletedType, Payload: payload,
		}})
	}
	return msgs, resend, nil
}

// resend records, in the trace of its request, that the recorded result of
// an order decided before was sent again: the span attribute and event, the
// count, and a log line.
func (p *Payments) resend(ctx context.Context, r traced, res payment.Result) {
	event := []attribute.KeyValue{shopattr.PaymentStatus.String(string(res.Status))}
	if res.Reason != "" {
		event = append(event, shopattr.PaymentReason.String(res.Reason))
	}
	r.work.SetAttributes(shopattr.PaymentResent.Bool(true))
	r.work.AddEvent(shopattr.PaymentResultResent, trace.WithAttributes(event...))
	ctx = trace.ContextWithSpanContext(ctx, r.span)
	p.resent.Add(ctx, 1, metric.WithAttributes(attribute.String("payment.status", string(res.Status))))
	p.log.InfoContext(ctx, "payment result resent", shopattr.LogOrderID, res.OrderID, shopattr.LogUserID, res.UserID,
		"amount", res.Amount, "status", res.Status, "reason", res.Reason)
}

// decided records a new decision in the trace of its request: the
// "payment decided" event with the payer's balance before and after
// (balance), the outcome count, and a log line (info for a decline, debug
// for a payment).
func (p *Payments) decided(ctx context.Context, r traced, res payment.Result, balance [2]money.Amount) {
	event := []attribute.KeyValue{
		shopattr.PaymentStatus.String(string(res.Status)),
		shopattr.BalanceBefore.String(balance[0].String()),
		shopattr.BalanceAfter.String(balance[1].String()),
	}
	if res.Reason != "" {
		event = append(event, shopattr.PaymentReason.String(res.Reason))
	}
	r.work.AddEvent(shopattr.PaymentDecided, trace.WithAttributes(event...))
	ctx = trace.ContextWithSpanContext(ctx, r.span)
	p.outcomes.Add(ctx, 1, metric.WithAttributes(
		attribute.String("payment.status", string(res.Status)),
		attribute.String("payment.reason", reasonLabel(res.Reason))))
	level := slog.LevelDebug
	if res.Status != payment.Finished {
		level = slog.LevelInfo
	}
	p.log.Log(ctx, level, "payment decided", shopattr.LogOrderID, res.OrderID, shopattr.LogUserID, r.req.UserID,
		"amount", r.req.Amount, "status", res.Status, "reason", res.Reason,
		"balance_before", balance[0], "balance_after", balance[1])
}

// annotate puts on span what became of req: a declined payment is an
// outcome, not an error, so the span's status stays unset. A request for
// an order decided before says so.
func annotate(span trace.Span, req payment.Request, res payment.Result, duplicate bool) {
	attrs := []attribute.KeyValue{
		shopattr.OrderID.String(req.OrderID.String()),
		shopattr.UserID.Int64(req.UserID),
		shopattr.Amount.String(req.Amount.String()),
		shopattr.PaymentStatus.String(string(res.Status)),
	}
	if res.Reason != "" {
		attrs = append(attrs, shopattr.PaymentReason.String(res.Reason))
	}
	if duplicate {
		attrs = append(attrs, shopattr.PaymentDuplicate.Bool(true))
	}
	span.SetAttributes(attrs...)
}

// reasonLabel keeps the reason attribute to a known, small set.
func reasonLabel(reason string) string {
	switch reason {
	case "":
		return "none"
	case payment.ReasonInsufficientFunds:
		return "insufficient_funds"
	case payment.ReasonNoAccount:
		return "no_account"
	}
	return "other"
}
