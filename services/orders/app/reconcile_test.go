package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"shop/services/contract"
	"shop/services/orders/app"
	"shop/services/orders/internal/store"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/messaging"
	"shop/services/platform/outbox"
	"shop/services/platform/polltest"
	"shop/services/platform/service"
	"shop/services/platform/service/servicetest"
	"shop/services/platform/stream"
)

// The wired service reconciles: an order left NEW is requested again
// after RECONCILE_AFTER. A result naming another amount than the order's
// is dead-lettered with the reason, and the order stays NEW.
func TestReconcilesAndRefusesAMismatchedResult(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			infra, _ := servicetest.Infra(t, dialect, store.Migrations)
			a := app.New(infra, app.Config{ReconcileAfter: 100 * time.Millisecond})
			o := create(t, a.Handler, `{"user_id":5,"amount":"1.00"}`)

			m := a.Messaging
			m.Consumer.Block = 20 * time.Millisecond
			workers := append(a.Workers, m.Workers(infra, service.Config{})...)
			runCtx, stop := context.WithCancel(ctx)
			var running sync.WaitGroup
			defer func() { stop(); running.Wait() }()
			for _, w := range workers {
				if w.Name == "reconciler" || w.Name == "consumer of "+contract.PaymentResultsStream {
					running.Go(func() { w.Run(runCtx) })
				}
			}
			polltest.Until(t, 10*time.Second, func() error {
				n, err := infra.DB.NewSelect().Model((*outbox.Row)(nil)).
					Where("stream = ? AND payload LIKE ?", contract.PaymentRequestsStream, "%"+o.ID+"%").Count(ctx)
				if err != nil || n < 2 {
					return fmt.Errorf("%d payment requests of the order (%v), want a second", n, err)
				}
				return nil
			})

			payload, _ := json.Marshal(contract.PaymentCompleted{OrderID: uuid.MustParse(o.ID), Status: contract.PaymentFinished, UserID: 5, Amount: 999})
			msg := messaging.Message{ID: uuid.New(), Type: contract.PaymentCompletedType, Payload: payload, OccurredAt: time.Now()}
			if err := infra.Redis.XAdd(ctx, &redis.XAddArgs{Stream: contract.PaymentResultsStream, Values: msg.Values()}).Err(); err != nil {
				t.Fatal(err)
			}
			polltest.Until(t, 10*time.Second, func() error {
				dlq, err := infra.Redis.XRange(ctx, stream.DLQ(contract.PaymentResultsStream), "-", "+").Result()
				if err != nil || len(dlq) != 1 {
					return fmt.Errorf("dead letters %v, %v", dlq, err)
				}
				if reason := fmt.Sprint(dlq[0].Values[stream.FieldReason]); !strings.Contains(reason, "does not match") {
					t.Fatalf("dead-lettered for %q", reason)
				}
				return nil
			})
			servicetest.Do(t, a.Handler, "GET", "/orders/"+o.ID, "").JSON(t, &o)
			if o.Status != "NEW" {
				t.Fatalf("a mismatched result moved the order to %s", o.Status)
			}
		})
	}
}
