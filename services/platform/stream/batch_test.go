package stream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/messaging"
	mt "shop/services/platform/messaging/messagingtest"
	"shop/services/platform/stream"
)

// batchRecorder is a batch handler that writes each message's effect and
// remembers the messages of each call.
type batchRecorder struct {
	mu    sync.Mutex
	calls [][]stream.Delivery
	// check, if set, runs after the effects are written and its error is
	// the handler's, so the effects of a failed batch that committed would
	// show.
	check func([]stream.Delivery) error
}

func (r *batchRecorder) handle(ctx context.Context, tx bun.IDB, batch []stream.Delivery) error {
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(batch))
	r.mu.Unlock()
	for _, d := range batch {
		if err := record(ctx, tx, d.Message); err != nil {
			return err
		}
	}
	if r.check != nil {
		return r.check(batch)
	}
	return nil
}

// sizes returns the size of each batch handled so far.
func (r *batchRecorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n []int
	for _, c := range r.calls {
		n = append(n, len(c))
	}
	return n
}

func (r *batchRecorder) batches() [][]stream.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// settled waits until the group has read every entry and acknowledged it.
func (e env) settled(t *testing.T) {
	t.Helper()
	mt.Eventually(t, 5*time.Second, "all entries delivered and acknowledged", func() bool {
		return e.delivered(t) && e.pending(t) == 0
	})
}

// Messages published before the consumer starts reach the handler together:
// one call with all ten, in stream order, each applied once.
func TestHandlerGetsMessagesInOneBatch(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		var msgs []messaging.Message
		for range 10 {
			m, _ := e.publish(t, messaging.Message{})
			msgs = append(msgs, m)
		}
		h := &batchRecorder{}
		run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), h.handle))
		e.settled(t)

		if got := h.sizes(); !slices.Equal(got, []int{10}) {
			t.Fatalf("batch sizes %v, want one batch of 10", got)
		}
		for i, d := range h.batches()[0] {
			if d.ID != msgs[i].ID {
				t.Fatalf("delivery %d is message %s, want %s (stream order)", i, d.ID, msgs[i].ID)
			}
			if n := e.effects(t, d.ID); n != 1 {
				t.Fatalf("message %s took effect %d times, want once", d.ID, n)
			}
		}
	})
}

// Each delivery of a batch carries the context of its own process span:
// a recording span in the trace of the span that published that message,
// whose parent is that publishing span.
func TestDeliveryContextContinuesItsMessagesTrace(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		publishers := map[uuid.UUID]trace.SpanContext{}
		for i := range 4 {
			pctx, publish := otel.Tracer("test").Start(context.Background(), fmt.Sprintf("publish %d", i),
				trace.WithSpanKind(trace.SpanKindProducer))
			m, _ := e.publish(t, messaging.Message{}.WithTrace(pctx))
			publish.End()
			publishers[m.ID] = publish.SpanContext()
		}
		var mu sync.Mutex
		seen := map[uuid.UUID]trace.SpanContext{}
		recording := map[uuid.UUID]bool{}
		h := &batchRecorder{check: func(batch []stream.Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			for _, d := range batch {
				seen[d.ID] = d.Trace
				recording[d.ID] = d.Trace.IsSampled()
			}
			return nil
		}}
		run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), h.handle))
		e.settled(t)

		if got := h.sizes(); !slices.Equal(got, []int{4}) {
			t.Fatalf("batch sizes %v, want one batch of 4", got)
		}
		mu.Lock()
		defer mu.Unlock()
		processes := map[trace.SpanID]trace.SpanID{} // process span → its parent
		mt.Eventually(t, time.Second, "process spans ended", func() bool {
			for _, s := range spans.Ended() {
				if s.Name() == e.stream+" process" {
					processes[s.SpanContext().SpanID()] = s.Parent().SpanID()
				}
			}
			return len(processes) >= len(publishers)
		})
		for id, publish := range publishers {
			got, ok := seen[id]
			switch {
			case !ok:
				t.Fatalf("message %s never reached the handler", id)
			case !recording[id]:
				t.Fatalf("message %s: the delivery's span is not sampled", id)
			case got.TraceID() != publish.TraceID():
				t.Fatalf("message %s: delivery in trace %s, want its publisher's %s", id, got.TraceID(), publish.TraceID())
			case got.SpanID() == publish.SpanID():
				t.Fatalf("message %s: delivery carries the publish span, want a process span of its own", id)
			case processes[got.SpanID()] != publish.SpanID():
				t.Fatalf("message %s: the delivery's span is not a process span below its publish span", id)
			}
		}
	})
}

// A message published twice (two entries, one id) in one batch reaches the
// handler once; a batch holding only messages processed before does not
// call the handler at all.
func TestDuplicatesInABatchAreLeftOut(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		a, _ := e.publish(t, messaging.Message{})
		b, _ := e.publish(t, messaging.Message{})
		e.publish(t, a) // the same message again, as a relay retry would
		c, _ := e.publish(t, messaging.Message{})

		h := &batchRecorder{}
		stop := run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), h.handle))
		e.settled(t)
		stop()
		batches := h.batches()
		if len(batches) != 1 {
			t.Fatalf("batch sizes %v, want one batch", h.sizes())
		}
		var ids []uuid.UUID
		for _, d := range batches[0] {
			ids = append(ids, d.ID)
		}
		if want := []uuid.UUID{a.ID, b.ID, c.ID}; !slices.Equal(ids, want) {
			t.Fatalf("handler got %v, want %v", ids, want)
		}
		for _, m := range []messaging.Message{a, b, c} {
			if n := e.effects(t, m.ID); n != 1 {
				t.Fatalf("message %s took effect %d times, want once", m.ID, n)
			}
		}

		// Both again, read as one batch by a consumer started afterwards.
		e.publish(t, a)
		e.publish(t, c)
		run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), h.handle))
		e.settled(t)
		if got := h.sizes(); len(got) != 1 {
			t.Fatalf("batch sizes %v: the handler ran for a batch of duplicates", got)
		}
	})
}

// A batch that fails because of one bad message is rolled back and its
// messages are applied one at a time, at once rather than on redelivery:
// each good one takes effect once, the bad one (a Permanent error) goes to
// the dead-letter stream on its first delivery, without effect.
func TestFailedBatchIsAppliedMessageByMessage(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		var good []messaging.Message
		var bad messaging.Message
		for i := range 5 {
			if i == 2 {
				bad, _ = e.publish(t, messaging.Message{Payload: []byte(`{"bad":true}`)})
				continue
			}
			m, _ := e.publish(t, messaging.Message{})
			good = append(good, m)
		}
		h := &batchRecorder{check: func(batch []stream.Delivery) error {
			for _, d := range batch {
				if bytes.Contains(d.Payload, []byte("bad")) {
					return stream.Permanent(errors.New("bad message in the batch"))
				}
			}
			return nil
		}}
		run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), h.handle))
		mt.Eventually(t, 5*time.Second, "dead-lettered", func() bool { return len(e.dlq(t)) == 1 })
		e.settled(t)

		if got := h.sizes(); !slices.Equal(got, []int{5, 1, 1, 1, 1, 1}) {
			t.Fatalf("batch sizes %v, want the batch of 5, then each message alone", got)
		}
		for _, m := range good {
			if n := e.effects(t, m.ID); n != 1 {
				t.Fatalf("good message %s took effect %d times, want once", m.ID, n)
			}
		}
		if e.effects(t, bad.ID) != 0 || e.inboxed(t, bad.ID) != 0 {
			t.Fatal("the bad message's writes were committed")
		}
		dead := e.dlq(t)[0].Values
		if dead[messaging.FieldID] != bad.ID.String() || !strings.Contains(dead[stream.FieldReason].(string), "bad message") ||
			dead[stream.FieldDeliveries] != "1" {
			t.Fatalf("dead-letter entry %v, want the bad message, on its first delivery", dead)
		}
	})
}

// A consumer that dies between a batch's commit and its ack leaves every
// entry of the batch pending; another consumer takes them over, the inbox
// recognises each, and they are acknowledged without taking effect again.
func TestCrashBetweenBatchCommitAndAck(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		var msgs []messaging.Message
		for range 3 {
			m, _ := e.publish(t, messaging.Message{})
			msgs = append(msgs, m)
		}
		h := &batchRecorder{}
		cfg := e.fast("a")
		cfg.ClaimIdle = time.Minute // a never takes its own entries back
		crashing := stream.NewConsumer(e.DB, e.Client, cfg, h.handle)
		crashed := make(chan struct{})
		crash := sync.OnceFunc(func() { close(crashed) })
		stream.SetAfterCommit(crashing, func(string) error { crash(); return errors.New("crash") })
		stop := run(t, crashing)
		mt.Await(t, 5*time.Second, "the batch committed", crashed)
		stop()
		if got := h.sizes(); !slices.Equal(got, []int{3}) {
			t.Fatalf("batch sizes %v, want the 3 entries read and applied together", got)
		}
		if n := e.pending(t); n != 3 {
			t.Fatalf("after the crash %d entries pending, want all 3: the batch was acknowledged before its commit", n)
		}
		for _, m := range msgs {
			if n := e.effects(t, m.ID); n != 1 {
				t.Fatalf("after the crash message %s took effect %d times, want once (committed)", m.ID, n)
			}
		}

		again := &batchRecorder{}
		run(t, stream.NewConsumer(e.DB, e.Client, e.fast("b"), again.handle))
		mt.Eventually(t, 5*time.Second, "all 3 acknowledged by b", func() bool { return e.pending(t) == 0 })
		if got := again.sizes(); len(got) != 0 {
			t.Fatalf("the handler ran again for batches %v; the inbox should have absorbed every redelivery", got)
		}
		for _, m := range msgs {
			if n := e.effects(t, m.ID); n != 1 {
				t.Fatalf("message %s took effect %d times, want once", m.ID, n)
			}
		}
	})
}

// The tables of a constraint checked only at COMMIT: a row of checked
// needs its message id in allowed by then.
const (
	allowed = "CREATE TABLE allowed (message_id TEXT PRIMARY KEY)"
	checked = `CREATE TABLE checked (
	    message_id TEXT NOT NULL REFERENCES allowed (message_id) DEFERRABLE INITIALLY DEFERRED
	)`
)

// A batch whose COMMIT fails, though every statement of the handler
// succeeded, acknowledges nothing: its messages are tried again one by
// one, fail the same way, and stay pending without effect or inbox record.
// Once the commit can succeed, each is delivered again and takes effect
// once.
func TestFailedBatchCommitAcknowledgesNothing(t *testing.T) {
	for _, d := range mt.Databases(t, effects, allowed, checked) {
		for _, b := range mt.Brokers(t) {
			t.Run(d.Name+"+"+b.Name, func(t *testing.T) {
				e := env{d, b, b.Stream(t)}
				var msgs []messaging.Message
				for range 3 {
					m, _ := e.publish(t, messaging.Message{})
					msgs = append(msgs, m)
				}
				h := &batchRecorder{}
				var statementErrors atomic.Int32
				handle := func(ctx context.Context, tx bun.IDB, batch []stream.Delivery) error {
					err := h.handle(ctx, tx, batch)
					for _, d := range batch {
						if err == nil {
							_, err = tx.ExecContext(ctx, "INSERT INTO checked (message_id) VALUES (?)", d.ID.String())
						}
					}
					if err != nil {
						statementErrors.Add(1)
					}
					return err
				}

				cfg := e.fast("a")
				cfg.ClaimIdle = time.Minute // no redelivery until b runs
				stop := run(t, stream.NewConsumer(e.DB, e.Client, cfg, handle))
				mt.Eventually(t, 5*time.Second, "the batch, then each message alone, tried", func() bool { return len(h.sizes()) >= 4 })
				stop()
				if got := h.sizes(); !slices.Equal(got, []int{3, 1, 1, 1}) {
					t.Fatalf("batch sizes %v, want the 3 entries read together, then each alone", got)
				}
				if n := statementErrors.Load(); n != 0 {
					t.Fatalf("%d handler runs failed before COMMIT; the test wants the COMMIT to fail", n)
				}
				if n := e.pending(t); n != 3 {
					t.Fatalf("after failed commits %d entries pending, want all 3", n)
				}
				for _, m := range msgs {
					if e.effects(t, m.ID) != 0 || e.inboxed(t, m.ID) != 0 {
						t.Fatalf("message %s: a failed commit left an effect or an inbox record", m.ID)
					}
				}

				for _, m := range msgs {
					if _, err := e.DB.Exec("INSERT INTO allowed (message_id) VALUES (?)", m.ID.String()); err != nil {
						t.Fatal(err)
					}
				}
				run(t, stream.NewConsumer(e.DB, e.Client, e.fast("b"), handle))
				mt.Eventually(t, 5*time.Second, "all 3 redelivered and acknowledged", func() bool { return e.pending(t) == 0 })
				redelivered := map[uuid.UUID]int{}
				for _, batch := range h.batches()[4:] {
					for _, d := range batch {
						redelivered[d.ID]++
					}
				}
				for _, m := range msgs {
					if redelivered[m.ID] != 1 || e.effects(t, m.ID) != 1 || e.inboxed(t, m.ID) != 1 {
						t.Fatalf("message %s: redelivered %d times, %d effects, %d inbox records; want 1 each",
							m.ID, redelivered[m.ID], e.effects(t, m.ID), e.inboxed(t, m.ID))
					}
				}
				if n := len(e.dlq(t)); n != 0 {
					t.Fatalf("%d messages dead-lettered, want none", n)
				}
			})
		}
	}
}

// commandCounter counts the Redis commands a client sends, alone and in
// pipelines, by name.
type commandCounter struct {
	mu           sync.Mutex
	alone, piped map[string]int
}

func countCommands(c redis.UniversalClient) *commandCounter {
	h := &commandCounter{alone: map[string]int{}, piped: map[string]int{}}
	c.AddHook(h)
	return h
}

func (h *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		h.alone[cmd.Name()]++
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		for _, cmd := range cmds {
			h.piped[cmd.Name()]++
		}
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (h *commandCounter) counts(name string) (alone, piped int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.alone[name], h.piped[name]
}

// While entries wait, the ack of each batch goes to Redis in one round trip
// with the read of the next, never on its own: three batches waiting cost
// three such round trips and one read, and every entry ends acknowledged.
func TestAcksGoWithTheNextRead(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		for range 30 {
			e.publish(t, messaging.Message{})
		}
		counter := countCommands(e.Client)
		h := &batchRecorder{}
		cfg := e.fast("c")
		cfg.Batch = 10
		stop := run(t, stream.NewConsumer(e.DB, e.Client, cfg, h.handle))
		e.settled(t)
		stop()

		if got := h.sizes(); !slices.Equal(got, []int{10, 10, 10}) {
			t.Fatalf("batch sizes %v, want three of 10", got)
		}
		if alone, piped := counter.counts("xack"); alone != 0 || piped != 3 {
			t.Errorf("XACK sent %d times alone and %d times in a pipeline, want 0 and 3 (one per batch, each with the next read)", alone, piped)
		}
		if _, piped := counter.counts("xreadgroup"); piped != 3 {
			t.Errorf("XREADGROUP sent %d times with an ack, want 3", piped)
		}
	})
}

// On PostgreSQL a batch's inbox records go to the server with BEGIN: the
// consumer adds two round trips to its handler's, the records and the
// commit.
func TestInboxGoesWithBegin(t *testing.T) {
	_, url := mt.Postgres(t, effects)
	b := mt.Miniredis(t)
	e := env{mt.Database{Name: "postgres", DB: dbtest.OpenURL(t, url), URL: url}, b, b.Stream(t)}
	for range 3 {
		e.publish(t, messaging.Message{})
	}
	stmts := dbtest.Count(t, e.DB)
	h := &batchRecorder{}
	stop := run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), h.handle))
	e.settled(t)
	stop()
	if got := h.sizes(); !slices.Equal(got, []int{3}) {
		t.Fatalf("batch sizes %v, want one of 3", got)
	}
	want := []string{"BEGIN+INSERT", "INSERT", "INSERT", "INSERT", "COMMIT"}
	if got := stmts.All(); !slices.Equal(got, want) {
		t.Errorf("round trips %v, want %v", got, want)
	}
}

// What a handler leaves for after the commit (database.AfterCommit) runs
// once its transaction has committed, once per message, and never for a
// transaction that rolled back: the batch with the bad message, and the bad
// message alone.
func TestAfterCommitRunsOnlyOnCommit(t *testing.T) {
	each(t, func(t *testing.T, e env) {
		var good []messaging.Message
		for i := range 4 {
			if i == 1 {
				e.publish(t, messaging.Message{Payload: []byte(`{"bad":true}`)})
				continue
			}
			m, _ := e.publish(t, messaging.Message{})
			good = append(good, m)
		}
		var mu sync.Mutex
		after := map[uuid.UUID][]int64{} // message → its effects seen from outside, per run
		h := &batchRecorder{check: func(batch []stream.Delivery) error {
			for _, d := range batch {
				if bytes.Contains(d.Payload, []byte("bad")) {
					return stream.Permanent(errors.New("bad message in the batch"))
				}
			}
			return nil
		}}
		handler := func(ctx context.Context, tx bun.IDB, batch []stream.Delivery) error {
			for _, d := range batch {
				if !database.AfterCommit(ctx, func() {
					// Another connection sees the effect only after the commit.
					n, err := e.DB.NewSelect().Table("effects").Where("message_id = ?", d.ID.String()).Count(context.Background())
					if err != nil {
						n = -1
					}
					mu.Lock()
					after[d.ID] = append(after[d.ID], int64(n))
					mu.Unlock()
				}) {
					return errors.New("the handler's context has no after-commit work")
				}
			}
			return h.handle(ctx, tx, batch)
		}
		run(t, stream.NewConsumer(e.DB, e.Client, e.fast("c"), handler))
		mt.Eventually(t, 5*time.Second, "dead-lettered", func() bool { return len(e.dlq(t)) == 1 })
		e.settled(t)

		mu.Lock()
		defer mu.Unlock()
		if len(after) != len(good) {
			t.Fatalf("after-commit work ran for %d messages, want the %d good ones alone: %v", len(after), len(good), after)
		}
		for _, m := range good {
			if got := after[m.ID]; !slices.Equal(got, []int64{1}) {
				t.Errorf("message %s: after-commit work saw %v effects, want one run that sees the committed effect", m.ID, got)
			}
		}
	})
}
