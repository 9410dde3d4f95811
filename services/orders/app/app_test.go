package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"shop/services/contract"
	"shop/services/orders/app"
	"shop/services/orders/internal/store"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/messaging"
	"shop/services/platform/polltest"
	"shop/services/platform/service"
	"shop/services/platform/service/servicetest"
	"shop/services/platform/stream"
)

type orderBody struct {
	ID           string `json:"id"`
	UserID       int64  `json:"user_id"`
	Amount       string `json:"amount"`
	Description  string `json:"description"`
	Status       string `json:"status"`
	CancelReason string `json:"cancel_reason"`
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
}

func newApp(t *testing.T, dialect string) http.Handler {
	infra, _ := servicetest.Infra(t, dialect, store.Migrations)
	return app.New(infra, app.Config{}).Handler
}

func create(t *testing.T, h http.Handler, body string) orderBody {
	t.Helper()
	resp := servicetest.Do(t, h, "POST", "/orders", body)
	if resp.Status != 201 {
		t.Fatalf("create %s: %d %s", body, resp.Status, resp.Body)
	}
	var o orderBody
	resp.JSON(t, &o)
	return o
}

func TestOrdersAPI(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			h := newApp(t, dialect)
			first := create(t, h, `{"user_id":5,"amount":"30.00","description":"two coffees"}`)
			if first.Status != "NEW" || first.Amount != "30.00" || first.UserID != 5 || first.Description != "two coffees" ||
				first.ID == "" || first.CreatedAt == "" || first.CreatedAt != first.UpdatedAt || first.CancelReason != "" {
				t.Fatalf("created %+v", first)
			}
			second := create(t, h, `{"user_id":5,"amount":"12.5"}`)
			if second.Amount != "12.50" || second.Description != "" {
				t.Fatalf("created %+v", second)
			}
			create(t, h, `{"user_id":6,"amount":"1"}`)

			var got orderBody
			servicetest.Do(t, h, "GET", "/orders/"+first.ID, "").JSON(t, &got)
			if got != first {
				t.Fatalf("get = %+v, want %+v", got, first)
			}
			var list []orderBody
			servicetest.Do(t, h, "GET", "/orders?user_id=5", "").JSON(t, &list)
			if len(list) != 2 || list[0].ID != second.ID || list[1].ID != first.ID {
				t.Fatalf("list = %+v, want the two orders newest first", list)
			}
			servicetest.Do(t, h, "GET", "/orders?user_id=5&limit=1", "").JSON(t, &list)
			if len(list) != 1 || list[0].ID != second.ID {
				t.Fatalf("list limit 1 = %+v", list)
			}
			servicetest.Do(t, h, "GET", "/orders?user_id=77", "").JSON(t, &list)
			if list == nil || len(list) != 0 {
				t.Fatalf("list of a user without orders = %v, want []", list)
			}

			errs := []struct {
				method, path, body string
				status             int
				detail             string
			}{
				{"POST", "/orders", `{"user_id":5,"amount":"0"}`, 422, "must be greater than 0"},
				{"POST", "/orders", `{"user_id":5,"amount":"-1.00"}`, 422, "must be greater than 0"},
				{"POST", "/orders", `{"user_id":5,"amount":"1.001"}`, 422, "at most two fraction digits"},
				{"POST", "/orders", `{"user_id":5,"amount":"1e2"}`, 422, "decimal number such as 12.30"},
				{"POST", "/orders", `{"user_id":5,"amount":"1000000000.01"}`, 422, "at most 1000000000.00"},
				{"POST", "/orders", `{"user_id":5,"amount":12.5}`, 422, "must be a JSON string"},
				{"POST", "/orders", `{"user_id":5}`, 422, "amount"},
				{"POST", "/orders", `{"amount":"1.00"}`, 422, "user_id"},
				{"POST", "/orders", `{"user_id":0,"amount":"1.00"}`, 422, "user_id"},
				{"POST", "/orders", `{"user_id":5,"amount":"1.00","description":"` + strings.Repeat("x", 501) + `"}`, 422, "description"},
				{"POST", "/orders", `not json`, 400, ""},
				{"GET", "/orders", "", 422, "user_id"},
				{"GET", "/orders?user_id=abc", "", 422, "user_id"},
				{"GET", "/orders?user_id=-1", "", 422, "user_id"},
				{"GET", "/orders?user_id=5&limit=0", "", 422, "limit"},
				{"GET", "/orders?user_id=5&limit=1001", "", 422, "limit"},
				{"GET", "/orders/not-a-uuid", "", 422, "order_id"},
				{"GET", "/orders/0193a000-0000-7000-8000-000000000000", "", 404, "no such order"},
				{"PUT", "/orders", "", 405, ""},
			}
			for _, e := range errs {
				p := servicetest.Do(t, h, e.method, e.path, e.body).Problem(t, e.status)
				text, _ := json.Marshal(p)
				if !strings.Contains(string(text), e.detail) {
					t.Errorf("%s %s: problem %s lacks %q", e.method, e.path, text, e.detail)
				}
			}
			// Nothing above changed anything.
			servicetest.Do(t, h, "GET", "/orders?user_id=5", "").JSON(t, &list)
			if len(list) != 2 {
				t.Fatalf("rejected requests created orders: %d", len(list))
			}
		})
	}
}

func TestPaymentStatus(t *testing.T) {
	infra, _ := servicetest.Infra(t, dbtest.SQLite, store.Migrations)
	wired := app.New(infra, app.Config{})
	h := wired.Handler
	internal := servicetest.Bearer(servicetest.InternalToken, wired.InternalHandler(servicetest.InternalToken))
	o := create(t, h, `{"user_id":5,"amount":"30.00"}`)
	post := func(msgID, orderID, status, reason string) servicetest.Response {
		body := fmt.Sprintf(`{"message_id":%q,"order_id":%q,"status":%q,"reason":%q}`, msgID, orderID, status, reason)
		return servicetest.Do(t, internal, "POST", "/orders/payment-status", body)
	}
	// Not served publicly, and not even a 405 that would say something lives there.
	servicetest.Do(t, h, "POST", "/orders/payment-status", `{}`).Problem(t, 404)
	// GET of that path is GET /orders/{order_id}, with an id that is no UUID.
	servicetest.Do(t, h, "GET", "/orders/payment-status", "").Problem(t, 422)
	const msg1, msg2 = "0193a000-0000-7000-8000-000000000001", "0193a000-0000-7000-8000-000000000002"

	var got orderBody
	resp := post(msg1, o.ID, "CANCELLED", "insufficient funds")
	if resp.Status != 200 {
		t.Fatalf("payment-status: %d %s", resp.Status, resp.Body)
	}
	resp.JSON(t, &got)
	if got.Status != "CANCELLED" || got.CancelReason != "insufficient funds" {
		t.Fatalf("after result: %+v", got)
	}
	// The same message again, and a late contradicting one: no change.
	post(msg1, o.ID, "CANCELLED", "insufficient funds").JSON(t, &got)
	if got.Status != "CANCELLED" {
		t.Fatalf("after duplicate: %+v", got)
	}
	post(msg2, o.ID, "FINISHED", "").JSON(t, &got)
	if got.Status != "CANCELLED" || got.CancelReason != "insufficient funds" {
		t.Fatalf("a terminal status changed: %+v", got)
	}

	post("0193a000-0000-7000-8000-000000000003", "0193a000-0000-7000-8000-0000000000ff", "FINISHED", "").Problem(t, 404)
	post("0193a000-0000-7000-8000-000000000004", o.ID, "NEW", "").Problem(t, 422)
	post("not-a-uuid", o.ID, "FINISHED", "").Problem(t, 422)
	post("00000000-0000-0000-0000-000000000000", o.ID, "FINISHED", "").Problem(t, 422)
	// A rejected message is not recorded: once the order exists it applies.
	other := create(t, h, `{"user_id":5,"amount":"1.00"}`)
	post("0193a000-0000-7000-8000-000000000003", other.ID, "FINISHED", "").JSON(t, &got)
	if got.Status != "FINISHED" {
		t.Fatalf("message refused for an unknown order was remembered: %+v", got)
	}
}

func TestConsumesPaymentResults(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			infra, _ := servicetest.Infra(t, dialect, store.Migrations)
			a := app.New(infra, app.Config{})
			paid := create(t, a.Handler, `{"user_id":5,"amount":"1.00"}`)
			declined := create(t, a.Handler, `{"user_id":5,"amount":"2.00"}`)
			later := create(t, a.Handler, `{"user_id":5,"amount":"3.00"}`)
			// publish adds results to the stream at once (MULTI), so that one
			// read takes them all.
			publish := func(results ...contract.PaymentCompleted) (ids []uuid.UUID) {
				t.Helper()
				_, err := infra.Redis.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
					for _, res := range results {
						payload, _ := json.Marshal(res)
						msg := messaging.Message{ID: uuid.New(), Type: contract.PaymentCompletedType, Payload: payload, OccurredAt: time.Now()}
						pipe.XAdd(ctx, &redis.XAddArgs{Stream: contract.PaymentResultsStream, Values: msg.Values()})
						ids = append(ids, msg.ID)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				return ids
			}
			// await polls the order until its status is no longer NEW.
			await := func(o orderBody) orderBody {
				t.Helper()
				polltest.Until(t, 10*time.Second, func() error {
					servicetest.Do(t, a.Handler, "GET", "/orders/"+o.ID, "").JSON(t, &o)
					if o.Status == "NEW" {
						return fmt.Errorf("order %s still NEW", o.ID)
					}
					return nil
				})
				return o
			}

			// One batch: the late result sees the first one's effect.
			publish(
				contract.PaymentCompleted{OrderID: uuid.MustParse(paid.ID), Status: contract.PaymentFinished},
				contract.PaymentCompleted{OrderID: uuid.MustParse(declined.ID), Status: contract.PaymentCancelled, Reason: "insufficient funds"},
				contract.PaymentCompleted{OrderID: uuid.MustParse(paid.ID), Status: contract.PaymentCancelled, Reason: "late"},
			)
			m := a.Messaging
			m.Consumer.Block = 20 * time.Millisecond
			workers := m.Workers(infra, service.Config{})
			i := slices.IndexFunc(workers, func(w service.Worker) bool {
				return w.Name == "consumer of "+contract.PaymentResultsStream
			})
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error)
			go func() { done <- workers[i].Run(runCtx) }()
			defer func() {
				stop()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			if p, d := await(paid), await(declined); p.Status != "FINISHED" || d.Status != "CANCELLED" || d.CancelReason != "insufficient funds" {
				t.Fatalf("orders after the results: %+v, %+v", p, d)
			}

			// A result for an unknown order fails its batch: the consumer
			// applies the results one by one, and dead-letters that one.
			ids := publish(
				contract.PaymentCompleted{OrderID: uuid.New(), Status: contract.PaymentFinished},
				contract.PaymentCompleted{OrderID: uuid.MustParse(later.ID), Status: contract.PaymentFinished},
			)
			if l := await(later); l.Status != "FINISHED" {
				t.Fatalf("order after a batch with a bad result: %+v", l)
			}
			dlq, err := infra.Redis.XRange(ctx, stream.DLQ(contract.PaymentResultsStream), "-", "+").Result()
			if err != nil || len(dlq) != 1 || dlq[0].Values[messaging.FieldID] != ids[0].String() ||
				!strings.Contains(fmt.Sprint(dlq[0].Values[stream.FieldReason]), "order not found") {
				t.Fatalf("dead letters %+v, %v; want only the result for the unknown order", dlq, err)
			}
		})
	}
}
