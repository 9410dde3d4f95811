package usecase_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"shop/services/contract"
	"shop/services/orders/internal/order"
	"shop/services/orders/internal/store"
	"shop/services/orders/internal/usecase"
	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/idempotency"
	"shop/services/platform/messaging"
	"shop/services/platform/money"
	"shop/services/platform/outbox"
	"shop/services/platform/stream"
)

var timeZero = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newOrder(t *testing.T, userID int64, cents int64) order.Order {
	t.Helper()
	o, err := order.NewOrder(userID, money.Amount(cents), "test", time.Now().UTC())
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestCreateWritesOrderAndPaymentRequestTogether(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		uc := usecase.New(usecase.Deps{DB: db, Orders: s, Outbox: outbox.New(db, outbox.Config{})}, usecase.Config{})
		o := newOrder(t, 7, 1230)
		if _, err := uc.Create(ctx, o, idempotency.Request{}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, o.ID)
		if err != nil || got.Status != order.New || got.Amount != o.Amount || got.UserID != 7 {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		var rows []outbox.Row
		if err := db.NewSelect().Model(&rows).Scan(ctx); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Stream != contract.PaymentRequestsStream || rows[0].Type != contract.PaymentRequestedType {
			t.Fatalf("outbox = %+v", rows)
		}
		if want := `{"order_id":"` + o.ID.String() + `","user_id":7,"amount":"12.30"}`; rows[0].Payload != want {
			t.Fatalf("payload %s, want %s", rows[0].Payload, want)
		}
	})
}

// failingOutbox prepares inserts that fail when sent: each message's id is
// taken by a row it adds first, so the insert breaks the primary key.
type failingOutbox struct{ *outbox.Outbox }

func (f failingOutbox) Insert(ctx context.Context, tx bun.IDB, pending []outbox.Pending) (*outbox.Insert, error) {
	taken, err := f.Outbox.AddAll(ctx, tx, pending)
	if err != nil {
		return nil, err
	}
	again := slices.Clone(pending)
	for i := range again {
		again[i].ID = taken[i].ID
	}
	return f.Outbox.Insert(ctx, tx, again)
}

func TestCreateIsAtomic(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		uc := usecase.New(usecase.Deps{DB: db, Orders: s, Outbox: failingOutbox{outbox.New(db, outbox.Config{})}}, usecase.Config{})
		o := newOrder(t, 1, 100)
		if _, err := uc.Create(ctx, o, idempotency.Request{}, nil); err == nil {
			t.Fatal("Create succeeded although the outbox failed")
		}
		if _, err := s.Get(ctx, o.ID); !errors.Is(err, order.ErrNotFound) {
			t.Fatalf("the order was stored without its payment request: %v", err)
		}
	})
}

// memStore keeps orders in memory, enough for the stream handler. Like a
// transaction, UpdateAll keeps nothing of a call that fails.
type memStore struct {
	usecase.Store
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

func result(t *testing.T, id uuid.UUID, status contract.PaymentStatus, reason string) stream.Delivery {
	t.Helper()
	payload, err := json.Marshal(contract.PaymentCompleted{OrderID: id, Status: status, Reason: reason})
	if err != nil {
		t.Fatal(err)
	}
	return delivery(contract.PaymentCompletedType, string(payload))
}

func delivery(typ, payload string) stream.Delivery {
	return stream.Delivery{Message: messaging.Message{ID: uuid.New(), Type: typ, Payload: json.RawMessage(payload)}}
}

func memUseCases(s *memStore) *usecase.Orders {
	return usecase.New(usecase.Deps{Orders: s}, usecase.Config{})
}

func TestHandleResultsRefusesWhatCanNeverApply(t *testing.T) {
	o, _ := order.NewOrder(1, 500, "", timeZero)
	store := &memStore{orders: map[uuid.UUID]order.Order{o.ID: o}}
	uc := memUseCases(store)
	permanent := map[string]stream.Delivery{
		"unknown order": result(t, uuid.New(), contract.PaymentFinished, ""),
		"wrong type":    delivery("payment.refunded", `{}`),
		"not json":      delivery(contract.PaymentCompletedType, `[`),
		"not a result":  result(t, o.ID, "NEW", ""),
	}
	for name, bad := range permanent {
		// Alone, or after a good result: the whole batch fails.
		for _, batch := range [][]stream.Delivery{{bad}, {result(t, o.ID, contract.PaymentFinished, ""), bad}} {
			if err := uc.HandleResults(context.Background(), bun.Tx{}, batch); !stream.IsPermanent(err) {
				t.Errorf("%s: HandleResults of %d = %v, want a permanent error", name, len(batch), err)
			}
		}
	}
	if store.orders[o.ID].Status != order.New {
		t.Fatalf("a refused batch changed the order: %+v", store.orders[o.ID])
	}
}

func TestHandleResultsAppliesABatchInOrder(t *testing.T) {
	a, _ := order.NewOrder(1, 500, "", timeZero)
	b, _ := order.NewOrder(2, 700, "", timeZero)
	store := &memStore{orders: map[uuid.UUID]order.Order{a.ID: a, b.ID: b}}
	batch := []stream.Delivery{
		result(t, a.ID, contract.PaymentCancelled, "insufficient funds"),
		result(t, b.ID, contract.PaymentFinished, ""),
		result(t, a.ID, contract.PaymentFinished, ""), // late: a is cancelled already
	}
	if err := memUseCases(store).HandleResults(context.Background(), bun.Tx{}, batch); err != nil {
		t.Fatal(err)
	}
	if got := store.orders[a.ID]; got.Status != order.Cancelled || got.CancelReason != "insufficient funds" {
		t.Fatalf("order a = %+v", got)
	}
	if got := store.orders[b.ID]; got.Status != order.Finished {
		t.Fatalf("order b = %+v", got)
	}
}

// blindKeys finds no recorded answer before a create: as on a replica
// that looked just before another one committed the key.
type blindKeys struct{ *idempotency.Keys }

func (blindKeys) Find(context.Context, idempotency.Request) (idempotency.Response, bool, error) {
	return idempotency.Response{}, false, nil
}

// A create whose key another request recorded first is left out of its
// group commit, and answers the recorded answer; the other orders of its
// batch are created.
func TestCreateWithTakenKeyInBatch(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		keys := idempotency.New(db, idempotency.Config{})
		deps := usecase.Deps{DB: db, Orders: store.New(db), Outbox: outbox.New(db, outbox.Config{}), Keys: blindKeys{keys}}
		uc := usecase.New(deps, usecase.Config{Creates: database.GroupCommitConfig{MaxInFlight: 1}})
		answer := func(o order.Order) (idempotency.Response, error) {
			return idempotency.Response{Status: 201, Body: []byte(`"` + o.ID.String() + `"`)}, nil
		}
		key := func(user int64, k string) idempotency.Request {
			req, err := idempotency.NewRequest(user, "create-order", k, "same body")
			if err != nil {
				t.Fatal(err)
			}
			return req
		}
		first := newOrder(t, 5, 100)
		if replay, err := uc.Create(ctx, first, key(5, "k"), answer); err != nil || replay != nil {
			t.Fatalf("first create: %v, %v", replay, err)
		}
		type result struct {
			replay *idempotency.Response
			err    error
		}
		results := make([]result, 16)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() {
				o, k := newOrder(t, int64(10+i), 200), key(int64(10+i), "k")
				if i == 0 {
					o, k = newOrder(t, 5, 100), key(5, "k")
				}
				results[i].replay, results[i].err = uc.Create(ctx, o, k, answer)
			})
		}
		wg.Wait()
		if r := results[0]; r.err != nil || r.replay == nil || string(r.replay.Body) != `"`+first.ID.String()+`"` {
			t.Fatalf("the retry: %+v, want the first answer", r)
		}
		for i, r := range results[1:] {
			if r.err != nil || r.replay != nil {
				t.Fatalf("create %d: %+v", i+1, r)
			}
		}
		var orders int
		if err := db.NewSelect().Table("orders").ColumnExpr("count(*)").Scan(ctx, &orders); err != nil || orders != 16 {
			t.Fatalf("%d orders (%v), want 16", orders, err)
		}
	})
}

// On PostgreSQL an order and its payment request take one statement, a
// data-modifying WITH clause, atomic by itself and so sent outside any
// transaction; SQLite has no such clauses and takes two, in a transaction.
func TestCreateWithOneStatementOnPostgres(t *testing.T) {
	dbtest.Each(t, store.Migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		s := store.New(db)
		uc := usecase.New(usecase.Deps{DB: db, Orders: s, Outbox: outbox.New(db, outbox.Config{})}, usecase.Config{})
		stmts := dbtest.Count(t, db)
		o := newOrder(t, 7, 1230)
		if _, err := uc.Create(ctx, o, idempotency.Request{}, nil); err != nil {
			t.Fatal(err)
		}
		want := []string{"BEGIN", "INSERT", "INSERT", "COMMIT"}
		if database.IsPostgres(db) {
			// After the commit, the NOTIFY (a SELECT pg_notify) for the
			// relays of other processes: none runs in this one.
			want = []string{"WITH", "SELECT"}
		}
		if got := stmts.All(); !slices.Equal(got, want) {
			t.Fatalf("statements %v, want %v", got, want)
		}
		if _, err := s.Get(ctx, o.ID); err != nil {
			t.Fatal(err)
		}
		if n, err := db.NewSelect().Model((*outbox.Row)(nil)).Count(ctx); err != nil || n != 1 {
			t.Fatalf("%d outbox rows (%v), want 1", n, err)
		}
	})
}
