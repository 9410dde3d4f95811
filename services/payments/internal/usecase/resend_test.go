package usecase_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"shop/services/contract"
	"shop/services/contract/shopattr"
	"shop/services/payments/internal/payment"
	"shop/services/payments/internal/store"
	"shop/services/payments/internal/usecase"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/messaging"
	"shop/services/platform/money"
	"shop/services/platform/outbox"
	"shop/services/platform/stream"
	"shop/services/platform/telemetry"
)

// A request for an order decided before, under a new message id (as
// reconciliation sends after a broker lost the first request's result), is
// answered with the recorded result again: a new outbox row with a new
// message id, the same outcome, reason, payer and amount; the balance and
// the ledger do not move. Both for a paid and a declined order, on the real
// store, with the span attribute and event, and a log line.
func TestARequestForADecidedOrderResendsTheRecordedResult(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		st := funded(t, db, 3, 1000)
		var logs bytes.Buffer
		rec := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
		p := usecase.New(usecase.Deps{DB: db, Accounts: st, Ledger: st, Outbox: outbox.New(db, outbox.Config{})},
			usecase.Config{Telemetry: telemetry.Providers{Tracer: tp}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})

		paid, declined := uuid.New(), uuid.New()
		reqOf := func(id uuid.UUID, amount string) messaging.Message {
			return request(`{"order_id":"` + id.String() + `","user_id":3,"amount":"` + amount + `"}`)
		}
		// The first requests decide: 6.00 is paid, 5.00 then is more than is left.
		apply := func(msgs ...messaging.Message) {
			t.Helper()
			batch := make([]stream.Delivery, len(msgs))
			for i, msg := range msgs {
				_, span := tp.Tracer("test").Start(ctx, "payments.requests process")
				batch[i] = stream.NewDelivery(span, msg)
				defer span.End()
			}
			if err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				return p.HandleRequests(ctx, tx, batch)
			}); err != nil {
				t.Fatal(err)
			}
		}
		apply(reqOf(paid, "6.00"), reqOf(declined, "5.00"))
		before := resultsIn(t, db)
		if len(before) != 2 {
			t.Fatalf("%d results after the first requests, want 2", len(before))
		}
		ledgerRows := count(t, db, "ledger")

		// Asked again, each under a new message id.
		apply(reqOf(paid, "6.00"))
		apply(reqOf(declined, "5.00"))
		after := resultsIn(t, db)
		if len(after) != 4 {
			t.Fatalf("%d results after the requests again, want 4", len(after))
		}
		for i, want := range []contract.PaymentCompleted{
			{OrderID: paid, Status: contract.PaymentFinished, UserID: 3, Amount: 600},
			{OrderID: declined, Status: contract.PaymentCancelled, Reason: payment.ReasonInsufficientFunds, UserID: 3, Amount: 500},
		} {
			first, again := before[i], after[2+i]
			if first.payload != want || again.payload != want {
				t.Errorf("result of %s: first %+v, again %+v; want %+v", want.Status, first.payload, again.payload, want)
			}
			if again.id == first.id {
				t.Errorf("the result of %s was resent under its first message id", want.Status)
			}
		}
		if a, err := st.Get(ctx, 3); err != nil || a.Balance != 400 {
			t.Fatalf("balance %+v, %v; want 4.00: one debit", a, err)
		}
		if n := count(t, db, "ledger"); n != ledgerRows {
			t.Fatalf("ledger rows %d, were %d", n, ledgerRows)
		}

		var resent int
		for _, span := range rec.Ended() {
			m := attrs(span.Attributes())
			if m[shopattr.PaymentResent] != "true" {
				continue
			}
			resent++
			if m[shopattr.PaymentDuplicate] != "true" || len(span.Events()) != 1 || span.Events()[0].Name != shopattr.PaymentResultResent {
				t.Errorf("resent span: attributes %v, events %v", m, span.Events())
			}
		}
		if resent != 2 {
			t.Errorf("%d spans marked %s, want 2", resent, shopattr.PaymentResent)
		}
		if n := strings.Count(logs.String(), `"msg":"payment result resent"`); n != 2 {
			t.Errorf("%d resend log lines, want 2:\n%s", n, logs.String())
		}
	})
}

type sentResult struct {
	id      uuid.UUID
	payload contract.PaymentCompleted
}

// resultsIn returns the results in the outbox, oldest first.
func resultsIn(t *testing.T, db *bun.DB) []sentResult {
	t.Helper()
	var rows []outbox.Row
	if err := db.NewSelect().Model(&rows).Where("stream = ?", contract.PaymentResultsStream).OrderExpr("id").Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := make([]sentResult, len(rows))
	for i, r := range rows {
		out[i].id = r.ID
		if err := json.Unmarshal([]byte(r.Payload), &out[i].payload); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// funded is the store of db with user's account opened and topped up by
// amount.
func funded(t *testing.T, db *bun.DB, user int64, amount money.Positive) *store.Store {
	t.Helper()
	ctx := context.Background()
	st := store.New(db)
	if _, err := st.Create(ctx, user); err != nil {
		t.Fatal(err)
	}
	if _, err := st.TopUp(ctx, user, amount); err != nil {
		t.Fatal(err)
	}
	return st
}

func count(t *testing.T, db *bun.DB, table string) int64 {
	t.Helper()
	n, err := db.NewSelect().Table(table).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}
