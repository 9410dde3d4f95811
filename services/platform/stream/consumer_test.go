package stream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"shop/services/platform/messaging"
	mt "shop/services/platform/messaging/messagingtest"
	"shop/services/platform/stream"
)

var spans = tracetest.NewSpanRecorder()

func TestMain(m *testing.M) {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	os.Exit(m.Run())
}

// effects is the table a test handler writes to: one row per time a message
// took effect, so a count above one is a double effect.
const effects = "CREATE TABLE effects (message_id TEXT NOT NULL)"

// env is one database with one broker and a stream of the test's own.
type env struct {
	mt.Database
	mt.Broker
	stream string
}

func each(t *testing.T, fn func(t *testing.T, e env)) {
	for _, d := range mt.Databases(t, effects) {
		for _, b := range mt.Brokers(t) {
			t.Run(d.Name+"+"+b.Name, func(t *testing.T) { fn(t, env{d, b, b.Stream(t)}) })
		}
	}
}

// fast is a configuration whose timeouts suit a test.
func (e env) fast(name string) stream.ConsumerConfig {
	return stream.ConsumerConfig{
		Stream: e.stream, Group: "g", Name: name,
		Block: 20 * time.Millisecond, ClaimIdle: 100 * time.Millisecond, ClaimInterval: 20 * time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	}
}

// publish appends a message to the stream as a relay would.
func (e env) publish(t *testing.T, msg messaging.Message) (messaging.Message, string) {
	t.Helper()
	if msg.ID == uuid.Nil {
		msg.ID = uuid.Must(uuid.NewV7())
	}
	msg.Stream, msg.Type, msg.OccurredAt = e.stream, "test.happened", time.Now().UTC()
	if msg.Payload == nil {
		msg.Payload = []byte(`{}`)
	}
	id, err := e.Client.XAdd(context.Background(), &redis.XAddArgs{Stream: e.stream, Values: msg.Values()}).Result()
	if err != nil {
		t.Fatal(err)
	}
	return msg, id
}

// record is a handler that writes the message's effect.
func record(ctx context.Context, tx bun.IDB, msg messaging.Message) error {
	_, err := tx.ExecContext(ctx, "INSERT INTO effects (message_id) VALUES (?)", msg.ID.String())
	return err
}

func (e env) effects(t *testing.T, id uuid.UUID) int64 {
	t.Helper()
	n, err := e.DB.NewSelect().Table("effects").Where("message_id = ?", id.String()).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e env) inboxed(t *testing.T, id uuid.UUID) int64 {
	t.Helper()
	n, err := e.DB.NewSelect().Table("inbox").Where("message_id = ?", id).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (e env) pending(t *testing.T) int64 {
	t.Helper()
	p, err := e.Client.XPending(context.Background(), e.stream, "g").Result()
	if err != nil {
		t.Fatal(err)
	}
	return p.Count
}

// delivered reports whether the group has read every entry of the stream.
func (e env) delivered(t *testing.T) bool {
	t.Helper()
	groups, err := e.Client.XInfoGroups(context.Background(), e.stream).Result()
	last := e.Client.XRevRangeN(context.Background(), e.stream, "+", "-", 1).Val()
	return err == nil && len(groups) == 1 && len(last) == 1 && groups[0].LastDeliveredID == last[0].ID
}

func (e env) dlq(t *testing.T) []redis.XMessage {
	t.Helper()
	return e.Client.XRange(context.Background(), stream.DLQ(e.stream), "-", "+").Val()
}

// run starts c; the returned stop cancels it and waits for Run to return nil.
func run(t *testing.T, c *stream.Consumer) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// A group created after messages were published still gets them; each
// message takes effect once, a duplicate publish included, and every entry
// is acknowledged.
func TestConsumerAppliesEachMessageOnce(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		var msgs []messaging.Message
		for range 3 {
			m, _ := e.publish(t, messaging.Message{})
			msgs = append(msgs, m)
		}
		e.publish(t, msgs[0]) // the same message again, as a relay retry would

		run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), stream.Each(record)))
		mt.Eventually(t, 5*time.Second, "all entries delivered and acknowledged", func() bool {
			return e.delivered(t) && e.pending(t) == 0
		})
		for _, m := range msgs {
			if n := e.effects(t, m.ID); n != 1 {
				t.Fatalf("message took effect %d times, want once", n)
			}
		}
	})
}

// A failed handler commits nothing and leaves the entry pending, unacked;
// it is delivered again after ClaimIdle and then takes effect once.
func TestFailedHandlerLeavesEntryPendingForRedelivery(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		var calls atomic.Int32
		retry := make(chan struct{})
		h := func(ctx context.Context, tx bun.IDB, msg messaging.Message) error {
			if err := record(ctx, tx, msg); err != nil {
				return err
			}
			if calls.Add(1) == 1 {
				return errors.New("first try fails")
			}
			<-retry
			return nil
		}
		m, _ := e.publish(t, messaging.Message{})
		run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), stream.Each(h)))

		mt.Eventually(t, 5*time.Second, "the handler ran", func() bool { return calls.Load() >= 1 })
		if e.pending(t) != 1 || e.effects(t, m.ID) != 0 || e.inboxed(t, m.ID) != 0 {
			t.Fatal("after a failure: want the entry pending, no effect, no inbox record")
		}
		close(retry)
		mt.Eventually(t, 5*time.Second, "redelivered and acknowledged", func() bool { return e.pending(t) == 0 })
		if calls.Load() != 2 || e.effects(t, m.ID) != 1 {
			t.Fatalf("%d calls and %d effects, want 2 and 1", calls.Load(), e.effects(t, m.ID))
		}
	})
}

// An entry read by a consumer that then died is taken over by another
// consumer after ClaimIdle.
func TestReclaimFromDeadConsumer(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		ctx := context.Background()
		m, id := e.publish(t, messaging.Message{})
		if err := e.Client.XGroupCreate(ctx, e.stream, "g", "0").Err(); err != nil {
			t.Fatal(err)
		}
		read := e.Client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "dead", Streams: []string{e.stream, ">"}}).Val()
		if len(read) != 1 || read[0].Messages[0].ID != id {
			t.Fatal("the dead consumer did not read the entry")
		}

		run(t, stream.NewConsumer(e.DB, e.Client, e.fast("alive"), stream.Each(record)))
		mt.Eventually(t, 5*time.Second, "taken over and acknowledged", func() bool { return e.pending(t) == 0 })
		if e.effects(t, m.ID) != 1 {
			t.Fatal("want one effect")
		}
	})
}

// A consumer that dies between its commit and its ack: another consumer
// takes the entry over, the inbox recognises it, and it is acknowledged
// without taking effect again.
func TestCrashBetweenCommitAndAck(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		m, _ := e.publish(t, messaging.Message{})
		crashing := stream.NewConsumer(e.DB, e.Client, e.fast("a"), stream.Each(record))
		crashed := make(chan struct{})
		crash := sync.OnceFunc(func() { close(crashed) }) // once: a may take the entry back before it stops
		stream.SetAfterCommit(crashing, func(string) error { crash(); return errors.New("crash") })
		stop := run(t, crashing)
		mt.Await(t, 5*time.Second, "the message committed", crashed)
		stop()
		if e.pending(t) != 1 || e.effects(t, m.ID) != 1 {
			t.Fatal("after the crash: want the entry pending and its effect committed")
		}

		var calls atomic.Int32
		run(t, stream.NewConsumer(e.DB, e.Client, e.fast("b"), stream.Each(func(ctx context.Context, tx bun.IDB, msg messaging.Message) error {
			calls.Add(1)
			return record(ctx, tx, msg)
		})))
		mt.Eventually(t, 5*time.Second, "acknowledged by b", func() bool { return e.pending(t) == 0 })
		if calls.Load() != 0 || e.effects(t, m.ID) != 1 {
			t.Fatalf("handler ran %d times again, %d effects; want 0 and 1", calls.Load(), e.effects(t, m.ID))
		}
	})
}

// A message whose handler keeps failing is delivered MaxDeliveries times,
// then moves to the dead-letter stream with the last error and is
// acknowledged.
func TestDeadLetterAfterMaxDeliveries(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		var calls atomic.Int32
		cfg := e.fast("c")
		cfg.MaxDeliveries = 3
		cfg.ClaimIdle = 30 * time.Millisecond
		m, id := e.publish(t, messaging.Message{})
		run(t, stream.NewConsumer(e.DB, e.Client, cfg, stream.Each(func(context.Context, bun.IDB, messaging.Message) error {
			calls.Add(1)
			return errors.New("boom")
		})))
		mt.Eventually(t, 5*time.Second, "dead-lettered", func() bool { return len(e.dlq(t)) == 1 })
		dead := e.dlq(t)[0].Values
		if !strings.Contains(dead[stream.FieldReason].(string), "boom") || dead[stream.FieldDeliveries] != "3" ||
			dead[stream.FieldGroup] != "g" || dead[stream.FieldOriginalID] != id || dead[messaging.FieldID] != m.ID.String() {
			t.Fatalf("dead-letter entry %v", dead)
		}
		if calls.Load() != 3 || e.pending(t) != 0 || e.inboxed(t, m.ID) != 0 {
			t.Fatalf("%d calls, %d pending; want 3 calls and the entry acknowledged", calls.Load(), e.pending(t))
		}
	})
}

// An entry that a crashing consumer kept taking (delivered more than
// MaxDeliveries times) goes to the dead-letter stream without running the
// handler again.
func TestDeadLetterWhenDeliveriesExceeded(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		ctx := context.Background()
		_, id := e.publish(t, messaging.Message{})
		e.Client.XGroupCreate(ctx, e.stream, "g", "0")
		e.Client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "dead", Streams: []string{e.stream, ">"}})
		if err := e.Client.Do(ctx, "XCLAIM", e.stream, "g", "dead", 0, id, "RETRYCOUNT", 5).Err(); err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int32
		run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), stream.Each(func(context.Context, bun.IDB, messaging.Message) error {
			calls.Add(1)
			return nil
		})))
		mt.Eventually(t, 5*time.Second, "dead-lettered", func() bool { return len(e.dlq(t)) == 1 })
		dead := e.dlq(t)[0].Values
		if dead[stream.FieldDeliveries] != "6" || !strings.Contains(dead[stream.FieldReason].(string), "never acknowledged") {
			t.Fatalf("dead-letter entry %v", dead)
		}
		if calls.Load() != 0 || e.pending(t) != 0 {
			t.Fatal("want no handler call and the entry acknowledged")
		}
	})
}

// An entry deleted from the stream while still pending is reported by
// XAUTOCLAIM (Redis 7; miniredis does not) and recorded in the dead-letter
// stream by id, its content being gone.
func TestDeletedPendingEntryIsDeadLettered(t *testing.T) {
	b := mt.Redis(t)
	e := env{Database: mt.Databases(t, effects)[0], Broker: b, stream: b.Stream(t)}
	ctx := context.Background()
	_, id := e.publish(t, messaging.Message{})
	e.publish(t, messaging.Message{}) // keeps the stream alive after the XDEL
	e.Client.XGroupCreate(ctx, e.stream, "g", "0")
	e.Client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "dead", Streams: []string{e.stream, ">"}, Count: 1})
	e.Client.XDel(ctx, e.stream, id)

	run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), stream.Each(record)))
	mt.Eventually(t, 5*time.Second, "dead-lettered", func() bool { return len(e.dlq(t)) == 1 })
	dead := e.dlq(t)[0].Values
	if dead[stream.FieldOriginalID] != id || !strings.Contains(dead[stream.FieldReason].(string), "deleted") {
		t.Fatalf("dead-letter entry %v", dead)
	}
}

// An entry that is not a message goes to the dead-letter stream at once.
func TestMalformedEntryIsDeadLettered(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		id := e.Client.XAdd(context.Background(), &redis.XAddArgs{Stream: e.stream, Values: map[string]any{"id": "nope", "payload": "{"}}).Val()
		var calls atomic.Int32
		run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), stream.Each(func(context.Context, bun.IDB, messaging.Message) error {
			calls.Add(1)
			return nil
		})))
		mt.Eventually(t, 5*time.Second, "dead-lettered", func() bool { return len(e.dlq(t)) == 1 })
		dead := e.dlq(t)[0].Values
		if !strings.HasPrefix(dead[stream.FieldReason].(string), "malformed entry") || dead[stream.FieldOriginalID] != id || dead["payload"] != "{" {
			t.Fatalf("dead-letter entry %v", dead)
		}
		mt.Eventually(t, time.Second, "acknowledged", func() bool { return e.pending(t) == 0 })
		if calls.Load() != 0 {
			t.Fatal("the handler ran for a malformed entry")
		}
	})
}

// A Permanent error sends the message to the dead-letter stream on its
// first delivery.
func TestPermanentErrorIsDeadLetteredAtOnce(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		m, _ := e.publish(t, messaging.Message{})
		run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), stream.Each(func(ctx context.Context, tx bun.IDB, msg messaging.Message) error {
			if err := record(ctx, tx, msg); err != nil {
				return err
			}
			return stream.Permanent(fmt.Errorf("result for unknown order"))
		})))
		mt.Eventually(t, 5*time.Second, "dead-lettered", func() bool { return len(e.dlq(t)) == 1 })
		dead := e.dlq(t)[0].Values
		if !strings.Contains(dead[stream.FieldReason].(string), "unknown order") || dead[stream.FieldDeliveries] != "1" {
			t.Fatalf("dead-letter entry %v", dead)
		}
		mt.Eventually(t, time.Second, "acknowledged", func() bool { return e.pending(t) == 0 })
		if e.effects(t, m.ID) != 0 || e.inboxed(t, m.ID) != 0 {
			t.Fatal("a failed handler's writes were committed")
		}
	})
}

// A stop while a handler runs lets it finish, commits, acknowledges and
// only then returns.
func TestGracefulStopFinishesTheMessageInHand(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		m, _ := e.publish(t, messaging.Message{})
		entered, release := make(chan struct{}), make(chan struct{})
		stop := run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), stream.Each(func(ctx context.Context, tx bun.IDB, msg messaging.Message) error {
			close(entered)
			<-release
			return record(ctx, tx, msg)
		})))
		mt.Await(t, 5*time.Second, "the handler runs", entered)
		stopped := make(chan struct{})
		go func() { stop(); close(stopped) }()
		close(release)
		<-stopped
		if e.effects(t, m.ID) != 1 || e.pending(t) != 0 {
			t.Fatal("after stop: want the effect committed and the entry acknowledged")
		}
	})
}

// While Redis is down the consumer logs and retries. Redis comes back
// empty, as a server without persistence restarts: the consumer creates its
// group again and consumes new messages.
func TestConsumerRecoversFromRedisRestart(t *testing.T) {
	e := env{Database: mt.Databases(t, effects)[0], Broker: mt.Miniredis(t)}
	e.stream = e.Broker.Stream(t)
	logs := &mt.LogRecorder{}
	cfg := e.fast("c")
	cfg.Logger = slog.New(logs)
	run(t, stream.NewConsumer(e.DB, e.Client, cfg, stream.Each(record)))
	first, _ := e.publish(t, messaging.Message{})
	mt.Eventually(t, 5*time.Second, "first message applied", func() bool { return e.effects(t, first.ID) == 1 })

	addr := e.Mini.Addr()
	e.Mini.Close()
	mt.Eventually(t, 5*time.Second, "an error logged", func() bool { return logs.Contains("consume stream") })
	// A new server rather than Restart: miniredis v2.40 never answers a
	// blocking command after Restart.
	restarted := miniredis.NewMiniRedis()
	if err := restarted.StartAddr(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(restarted.Close)
	second, _ := e.publish(t, messaging.Message{})
	mt.Eventually(t, 10*time.Second, "second message applied", func() bool { return e.effects(t, second.ID) == 1 })
}

// The process span is a child of the publish span whose context the entry
// carries.
func TestProcessSpanIsChildOfPublishSpan(t *testing.T) {
	e := env{Database: mt.Databases(t, effects)[0], Broker: mt.Miniredis(t)}
	e.stream = e.Broker.Stream(t)
	pctx, publish := otel.Tracer("test").Start(context.Background(), "publish", trace.WithSpanKind(trace.SpanKindProducer))
	m, _ := e.publish(t, messaging.Message{}.WithTrace(pctx))
	publish.End()
	run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), stream.Each(record)))
	mt.Eventually(t, 5*time.Second, "applied", func() bool { return e.effects(t, m.ID) == 1 })

	var process sdktrace.ReadOnlySpan
	mt.Eventually(t, time.Second, "process span ended", func() bool {
		for _, s := range spans.Ended() {
			if s.Name() == e.stream+" process" {
				process = s
			}
		}
		return process != nil
	})
	if process.Parent().SpanID() != publish.SpanContext().SpanID() || process.SpanContext().TraceID() != publish.SpanContext().TraceID() {
		t.Fatal("the process span is not a child of the publish span")
	}
	attrs := map[string]string{}
	for _, a := range process.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	for k, v := range map[string]string{
		"messaging.system": "redis", "messaging.destination.name": e.stream, "messaging.operation.type": "process",
		"messaging.message.id": m.ID.String(), "messaging.consumer.group.name": "g",
	} {
		if attrs[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], v)
		}
	}
	if process.SpanKind() != trace.SpanKindConsumer {
		t.Fatalf("span kind %v, want consumer", process.SpanKind())
	}
}
