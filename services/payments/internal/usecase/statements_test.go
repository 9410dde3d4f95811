package usecase_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"shop/services/payments/internal/store"
	"shop/services/payments/internal/usecase"
	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/inbox"
	"shop/services/platform/outbox"
	"shop/services/platform/stream"
	"shop/services/platform/telemetry"
)

// On PostgreSQL the handler pays for a batch, new accounts, declines and
// resent results included, with two statements in the consumer's
// transaction: the ledger's read-and-lock, then its write, which carries
// the outbox rows and goes with the COMMIT. With the inbox insert that
// goes with BEGIN, the batch takes three round trips. Each outbox row's
// "outbox insert" span ends with it.
func TestHandleRequestsPaysABatchInTwoStatements(t *testing.T) {
	db := dbtest.Open(t, dbtest.Postgres, store.Migrations)
	ctx := context.Background()
	st := funded(t, db, 3, 1000)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	p := usecase.New(usecase.Deps{DB: db, Accounts: st, Ledger: st, Outbox: outbox.New(db, outbox.Config{Telemetry: telemetry.Providers{Tracer: tp}})},
		usecase.Config{Telemetry: telemetry.Providers{Tracer: tp}, Logger: slog.New(slog.DiscardHandler)})
	handle := func(bodies ...string) {
		t.Helper()
		batch := make([]stream.Delivery, len(bodies))
		entries := make([]inbox.Entry, len(bodies))
		for i, body := range bodies {
			_, span := tp.Tracer("test").Start(ctx, "payments.requests process")
			defer span.End()
			batch[i] = stream.NewDelivery(span, request(body))
			entries[i] = inbox.Entry{ID: batch[i].ID, Type: batch[i].Type}
		}
		// As the consumer runs it.
		open, _ := inbox.Recording(entries)
		if err := database.RunInTxOpening(ctx, db, open, func(ctx context.Context, tx bun.IDB) error {
			return p.HandleRequests(ctx, tx, batch)
		}); err != nil {
			t.Fatal(err)
		}
	}
	decided := `{"order_id":"` + uuid.NewString() + `","user_id":3,"amount":"1.00"}`
	handle(decided)

	stmts := dbtest.Count(t, db)
	rec.Reset()
	handle(
		`{"order_id":"`+uuid.NewString()+`","user_id":3,"amount":"2.00"}`,  // paid
		`{"order_id":"`+uuid.NewString()+`","user_id":3,"amount":"20.00"}`, // declined
		`{"order_id":"`+uuid.NewString()+`","user_id":4,"amount":"1.00"}`,  // no account
		decided, // resent
	)
	if want := []string{"BEGIN+INSERT", "WITH", "WITH+COMMIT"}; !slices.Equal(stmts.All(), want) {
		t.Errorf("round trips %v, want %v", stmts.All(), want)
	}
	var inserts int
	for _, span := range rec.Ended() {
		if span.Name() == "outbox insert" {
			inserts++
			if span.Status().Code != codes.Unset {
				t.Errorf("outbox insert span status %v, want unset", span.Status())
			}
		}
	}
	if inserts != 4 {
		t.Errorf("%d outbox insert spans ended, want 4", inserts)
	}
	if n := count(t, db, "outbox"); n != 5 {
		t.Errorf("%d outbox rows, want 5", n)
	}
}
