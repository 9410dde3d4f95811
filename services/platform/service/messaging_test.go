package service_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"shop/services/platform/database/dbtest"
	"shop/services/platform/messaging"
	mt "shop/services/platform/messaging/messagingtest"
	"shop/services/platform/outbox"
	"shop/services/platform/service"
	"shop/services/platform/service/servicetest"
	"shop/services/platform/stream"
)

// claimCounter counts the relay's claims (its UPDATE of the outbox).
type claimCounter struct{ claims atomic.Int64 }

func (q *claimCounter) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if strings.HasPrefix(e.Query, "UPDATE") && strings.Contains(e.Query, "outbox") {
		q.claims.Add(1)
	}
	return ctx
}
func (q *claimCounter) AfterQuery(context.Context, *bun.QueryEvent) {}

// A service's consumer wakes its relay after a commit only when the
// handler wrote messages: a batch that writes none costs the relay no
// claim, and one that writes some is published at once, long before the
// relay's poll. On SQLite, where no NOTIFY of another test's writer can
// wake the relay in between.
func TestConsumerWakesTheRelayOnlyForMessagesItWrote(t *testing.T) {
	infra, _ := servicetest.Infra(t, dbtest.SQLite, messaging.Migrations)
	hook := &claimCounter{}
	infra.DB.AddQueryHook(hook)
	const consumed, answers = "test.consumed", "test.answers"
	o := outbox.New(infra.DB, outbox.Config{})
	handler := func(ctx context.Context, tx bun.IDB, batch []stream.Delivery) error {
		for _, d := range batch {
			if string(d.Payload) != `{"answer":true}` {
				continue
			}
			answer := messaging.Message{Stream: answers, Type: "test.answered", Payload: []byte(`{}`)}
			if _, err := o.AddAll(ctx, tx, []outbox.Pending{{Message: answer}}); err != nil {
				return err
			}
		}
		return nil
	}
	m := service.Messaging{
		Outbox: o, Stream: consumed, Group: "g", Handler: handler,
		Relay:    outbox.RelayConfig{PollInterval: time.Hour},
		Consumer: stream.ConsumerConfig{Block: 20 * time.Millisecond},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, w := range m.Workers(infra, service.Config{ConsumerName: "c", ClaimIdle: time.Minute})[:2] { // relay, consumer
		go func() { _ = w.Run(ctx) }()
	}
	publish := func(payload string) {
		t.Helper()
		msg := messaging.Message{ID: uuid.Must(uuid.NewV7()), Stream: consumed, Type: "test.happened", Payload: []byte(payload), OccurredAt: time.Now().UTC()}
		if err := infra.Redis.XAdd(ctx, &redis.XAddArgs{Stream: consumed, Values: msg.Values()}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	acked := func(n int64) func() bool {
		return func() bool {
			inboxed, err := infra.DB.NewSelect().Table("inbox").Count(ctx)
			pending, perr := infra.Redis.XPending(ctx, consumed, "g").Result()
			return err == nil && perr == nil && int64(inboxed) == n && pending.Count == 0
		}
	}

	for i := range 3 {
		publish(`{}`)
		mt.Eventually(t, 5*time.Second, "consumed and acknowledged", acked(int64(i+1)))
		time.Sleep(20 * time.Millisecond) // room for a claim, were the relay woken
	}
	if n := hook.claims.Load(); n != 0 {
		t.Fatalf("batches that wrote no message woke the relay into %d claims", n)
	}
	publish(`{"answer":true}`)
	mt.Eventually(t, 5*time.Second, "the answer published", func() bool { return infra.Redis.XLen(ctx, answers).Val() == 1 })
	if n := hook.claims.Load(); n != 1 {
		t.Fatalf("%d claims, want the one that published the answer", n)
	}
}
