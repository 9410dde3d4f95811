package stream_test

import (
	"context"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"shop/services/platform/messaging"
	mt "shop/services/platform/messaging/messagingtest"
	"shop/services/platform/stream"
)

// A message whose handler fails only because its database is unavailable
// (a transient error) is held and retried, however many more times than
// MaxDeliveries it fails: never dead-lettered, never delivered again by
// Redis (its delivery count stays 1 although ClaimIdle passes many times
// and a healthy replica looks for idle entries all along), and applied
// once when the database is back. Meanwhile the consumer reads nothing
// new, and it logs its pause and its resumption once.
func TestTransientFailureIsHeldNeverDeadLettered(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		var down atomic.Bool
		down.Store(true)
		var calls atomic.Int32
		var seen sync.Map
		h := stream.Each(func(ctx context.Context, tx bun.IDB, msg messaging.Message) error {
			calls.Add(1)
			seen.Store(msg.ID, true)
			if down.Load() {
				return fmt.Errorf("insert effect: %w", driver.ErrBadConn)
			}
			return record(ctx, tx, msg)
		})
		logs := &mt.LogRecorder{}
		cfg := e.fast("a")
		cfg.MaxDeliveries = 2
		// Long enough that a stall of the test machine does not let the
		// entry go idle between two re-claims (every ClaimIdle/4).
		cfg.ClaimIdle = 500 * time.Millisecond
		cfg.ClaimInterval = 10 * time.Millisecond
		cfg.Logger = slog.New(logs)
		first, _ := e.publish(t, messaging.Message{})
		run(t, stream.NewConsumer(e.DB, e.Client, cfg, h))
		mt.Eventually(t, 5*time.Second, "the handler failed", func() bool { return calls.Load() >= 1 })
		other := cfg
		other.Name = "b"
		var claimedByOther atomic.Bool
		run(t, stream.NewConsumer(e.DB, e.Client, other, stream.Each(func(ctx context.Context, tx bun.IDB, msg messaging.Message) error {
			claimedByOther.Store(msg.ID == first.ID)
			return record(ctx, tx, msg)
		})))

		// Many times the dead-letter limit, in attempts and in claim time.
		deadline := time.Now().Add(3 * cfg.ClaimIdle * time.Duration(cfg.MaxDeliveries))
		for calls.Load() < 10*int32(cfg.MaxDeliveries) || time.Now().Before(deadline) {
			p := e.Client.XPendingExt(context.Background(), &redis.XPendingExtArgs{Stream: e.stream, Group: "g", Start: "-", End: "+", Count: 10}).Val()
			if len(p) != 1 || p[0].Consumer != "a" || p[0].RetryCount != 1 {
				t.Fatalf("pending %+v, want the entry held by a, delivered once", p)
			}
			if len(e.dlq(t)) != 0 || claimedByOther.Load() {
				t.Fatal("a transient failure was dead-lettered or claimed")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if logs.Count("consumer paused: a dependency is unavailable; holding its messages until it is back") != 1 {
			t.Fatal("want one log line for the pause")
		}

		down.Store(false)
		mt.Eventually(t, 5*time.Second, "applied", func() bool { return e.pending(t) == 0 })
		if e.effects(t, first.ID) != 1 || len(e.dlq(t)) != 0 || claimedByOther.Load() {
			t.Fatalf("%d effects, %d dead letters; want 1 effect by a, none dead", e.effects(t, first.ID), len(e.dlq(t)))
		}
		if logs.Count("consumer resumed") != 1 {
			t.Fatal("want one log line for the resumption")
		}
		second, _ := e.publish(t, messaging.Message{})
		mt.Eventually(t, 5*time.Second, "reading again", func() bool { return e.delivered(t) && e.pending(t) == 0 })
		if e.effects(t, second.ID) != 1 {
			t.Fatal("the next message was not applied")
		}
	})
}

// While the database is down a consumer reads nothing new: what it holds
// waits, and what is published meanwhile stays undelivered until it is back.
func TestPausedConsumerReadsNothingNew(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		var down atomic.Bool
		down.Store(true)
		var calls atomic.Int32
		var seen sync.Map
		cfg := e.fast("a")
		first, _ := e.publish(t, messaging.Message{})
		run(t, stream.NewConsumer(e.DB, e.Client, cfg, stream.Each(func(ctx context.Context, tx bun.IDB, msg messaging.Message) error {
			calls.Add(1)
			seen.Store(msg.ID, true)
			if down.Load() {
				return fmt.Errorf("begin: %w", context.DeadlineExceeded)
			}
			return record(ctx, tx, msg)
		})))
		mt.Eventually(t, 5*time.Second, "the handler failed", func() bool { return calls.Load() >= 1 })
		later, _ := e.publish(t, messaging.Message{})
		mt.Eventually(t, 5*time.Second, "retried", func() bool { return calls.Load() >= 5 })
		if _, ok := seen.Load(later.ID); ok || e.delivered(t) {
			t.Fatal("a paused consumer read a new entry")
		}
		down.Store(false)
		mt.Eventually(t, 5*time.Second, "both applied", func() bool { return e.delivered(t) && e.pending(t) == 0 })
		if e.effects(t, first.ID) != 1 || e.effects(t, later.ID) != 1 {
			t.Fatal("want each message applied once")
		}
	})
}

// A failure that is not transient still counts: the message is dead-lettered
// after MaxDeliveries even when transient failures came first.
func TestFailureAfterTransientOnesStillDeadLetters(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		var calls atomic.Int32
		cfg := e.fast("c")
		cfg.MaxDeliveries = 3
		cfg.ClaimIdle = 30 * time.Millisecond
		m, _ := e.publish(t, messaging.Message{})
		run(t, stream.NewConsumer(e.DB, e.Client, cfg, stream.Each(func(context.Context, bun.IDB, messaging.Message) error {
			if calls.Add(1) <= 10 {
				return fmt.Errorf("query: %w", context.DeadlineExceeded)
			}
			return fmt.Errorf("handler bug")
		})))
		mt.Eventually(t, 10*time.Second, "dead-lettered", func() bool { return len(e.dlq(t)) == 1 })
		dead := e.dlq(t)[0].Values
		if dead[messaging.FieldID] != m.ID.String() || dead[stream.FieldDeliveries] != "3" {
			t.Fatalf("dead-letter entry %v, want the message after 3 deliveries", dead)
		}
		if got := calls.Load(); got != 10+3 {
			t.Fatalf("%d handler calls, want 10 transient ones and 3 counted ones", got)
		}
	})
}
