package store_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"shop/services/payments/internal/payment"
	"shop/services/payments/internal/store"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/messaging"
	"shop/services/platform/money"
	"shop/services/platform/outbox"
)

// announced is one outbox row per outcome, carrying its order id, as a
// caller of PayAll announces the outcomes.
type announced struct {
	OrderID uuid.UUID `json:"order_id"`
	Status  string    `json:"status"`
}

// payAnnounced pays for reqs in a transaction of its own and writes an
// outbox row per outcome with the payments' writes, as the use case does,
// under a context statements counts, and returns the outcomes.
func payAnnounced(t *testing.T, db *bun.DB, s *store.Store, reqs ...payment.Request) []payment.Outcome {
	t.Helper()
	ob := outbox.New(db, outbox.Config{})
	var outcomes []payment.Outcome
	err := db.RunInTx(dbtest.Mark(context.Background()), nil, func(ctx context.Context, tx bun.Tx) error {
		var ins *outbox.Insert
		var err error
		outcomes, err = s.PayAll(ctx, tx, reqs, payment.Decide, func(outcomes []payment.Outcome) (*outbox.Insert, error) {
			pending := make([]outbox.Pending, len(outcomes))
			for i, o := range outcomes {
				payload, err := json.Marshal(announced{OrderID: o.OrderID, Status: string(o.Status)})
				if err != nil {
					return nil, err
				}
				pending[i] = outbox.Pending{Message: messaging.Message{Stream: "results", Type: "test.paid", Payload: payload}}
			}
			ins, err = ob.Insert(ctx, tx, pending)
			return ins, err
		})
		if ins != nil {
			ins.Done(err)
		}
		return err
	})
	if err != nil {
		t.Fatalf("PayAll(%+v): %v", reqs, err)
	}
	return outcomes
}

// announcedIn returns the orders of the outbox rows, in message id order.
func announcedIn(t *testing.T, db *bun.DB) []announced {
	t.Helper()
	var rows []outbox.Row
	if err := db.NewSelect().Model(&rows).OrderExpr("id").Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := make([]announced, len(rows))
	for i, r := range rows {
		if err := json.Unmarshal([]byte(r.Payload), &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// A batch of every kind of request is decided as one by one, and written
// with its outbox rows. On PostgreSQL it takes two statements: one reads
// the recorded outcomes and locks (opening the missing) accounts, the other
// writes balances, debits, outcomes and outbox rows.
func TestPayAllMixedBatchInTwoStatements(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		for user, balance := range map[int64]money.Positive{1: 1_000, 2: 100} {
			fund(t, s, user, balance)
		}
		decided := payment.Request{OrderID: uuid.New(), UserID: 2, Amount: 500} // declined before
		payAll(t, db, s, decided)
		stmts := dbtest.CountMarked(t, db)

		paid := payment.Request{OrderID: uuid.New(), UserID: 1, Amount: 600}
		reqs := []payment.Request{
			paid,
			{OrderID: uuid.New(), UserID: 1, Amount: 500}, // 400 left: insufficient funds
			{OrderID: uuid.New(), UserID: 9, Amount: 100}, // no account: opened, declined
			decided, // decided before: Existing
			{OrderID: uuid.New(), UserID: 2, Amount: 100}, // paid
			paid, // twice in the batch: Existing
			{OrderID: uuid.New(), UserID: 9, Amount: 1},    // the account now exists, empty
			{OrderID: uuid.New(), UserID: 10, Amount: 100}, // another new account
		}
		want := []struct {
			status   payment.Status
			reason   string
			existing bool
		}{
			{payment.Finished, "", false},
			{payment.Cancelled, payment.ReasonInsufficientFunds, false},
			{payment.Cancelled, payment.ReasonNoAccount, false},
			{payment.Cancelled, payment.ReasonInsufficientFunds, true},
			{payment.Finished, "", false},
			{payment.Finished, "", true},
			{payment.Cancelled, payment.ReasonInsufficientFunds, false},
			{payment.Cancelled, payment.ReasonNoAccount, false},
		}
		got := payAnnounced(t, db, s, reqs...)
		if db.Dialect().Name().String() == "pg" {
			if ops, want := stmts.Take(), []string{"WITH", "WITH"}; !slices.Equal(ops, want) {
				t.Errorf("statements %v, want %v", ops, want)
			}
		}
		for i, w := range want {
			g := got[i]
			if g.OrderID != reqs[i].OrderID || g.UserID != reqs[i].UserID || g.Amount != reqs[i].Amount ||
				g.Status != w.status || g.Reason != w.reason || g.Existing != w.existing {
				t.Errorf("outcome %d = %+v, want %+v", i, g, w)
			}
			if stored, err := s.Outcome(ctx, reqs[i].OrderID); err != nil || stored != g.Result {
				t.Errorf("recorded outcome %d = %+v, %v; want %+v", i, stored, err, g.Result)
			}
		}
		for user, balance := range map[int64]money.Amount{1: 400, 2: 0, 9: 0, 10: 0} {
			if a, err := s.Get(ctx, user); err != nil || a.Balance != balance {
				t.Errorf("account %d = %+v, %v; want balance %s", user, a, err, balance)
			}
		}
		rows := announcedIn(t, db)
		if len(rows) != len(reqs) {
			t.Fatalf("%d outbox rows, want %d", len(rows), len(reqs))
		}
		for i, r := range rows {
			if r.OrderID != got[i].OrderID || r.Status != string(got[i].Status) {
				t.Errorf("outbox row %d = %+v, want outcome %+v", i, r, got[i])
			}
		}
		checkLedger(t, db)

		// Only orders decided before: read, and announce again, nothing else.
		payAnnounced(t, db, s, paid, decided)
		if db.Dialect().Name().String() == "pg" {
			if ops, want := stmts.Take(), []string{"WITH", "WITH"}; !slices.Equal(ops, want) {
				t.Errorf("statements of a batch decided before %v, want %v", ops, want)
			}
		}
		if n := len(announcedIn(t, db)); n != len(reqs)+2 {
			t.Errorf("%d outbox rows, want %d", n, len(reqs)+2)
		}
		checkLedger(t, db)
	})
}

// An account another transaction opens while a batch's read-and-lock
// statement waits on it is neither seen by that statement's lock nor
// opened by its insert; a statement of its own locks it, and the payment
// sees its balance.
func TestPayAllLocksAnAccountOpenedMeanwhile(t *testing.T) {
	db := dbtest.Open(t, dbtest.Postgres, store.Migrations)
	ctx := context.Background()
	s := store.New(db)
	stmts := dbtest.CountMarked(t, db)

	opener, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer opener.Rollback()
	if _, err := s.CreateIn(ctx, opener, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TopUpIn(ctx, opener, 7, 500); err != nil {
		t.Fatal(err)
	}

	req := payment.Request{OrderID: uuid.New(), UserID: 7, Amount: 300}
	payer := make(chan int64, 1)
	paid := make(chan []payment.Outcome, 1)
	go func() {
		var outcomes []payment.Outcome
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var pid int64
			if err := tx.NewRaw("SELECT pg_backend_pid()").Scan(ctx, &pid); err != nil {
				return err
			}
			payer <- pid
			var err error
			outcomes, err = s.PayAll(dbtest.Mark(ctx), tx, []payment.Request{req}, payment.Decide, nil)
			return err
		})
		if err != nil {
			t.Errorf("PayAll: %v", err)
		}
		paid <- outcomes
	}()

	// The payer's insert of account 7 waits for the opener's.
	pid := <-payer
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		err := db.NewRaw("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = ? AND wait_event_type = 'Lock')", pid).Scan(ctx, &waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the payment never waited for the account being opened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := opener.Commit(); err != nil {
		t.Fatal(err)
	}

	outcomes := <-paid
	if len(outcomes) != 1 || outcomes[0].Status != payment.Finished || outcomes[0].Existing {
		t.Fatalf("outcomes %+v, want one FINISHED", outcomes)
	}
	if ops, want := stmts.Take(), []string{"WITH", "SELECT", "WITH"}; !slices.Equal(ops, want) {
		t.Errorf("statements %v, want %v (the raced account locked alone)", ops, want)
	}
	if a, err := s.Get(ctx, 7); err != nil || a.Balance != 200 {
		t.Fatalf("account 7 = %+v, %v; want balance 2.00", a, err)
	}
	checkLedger(t, db)
}
