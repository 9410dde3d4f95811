package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/messaging"
	mt "shop/services/platform/messaging/messagingtest"
	"shop/services/platform/outbox"
	"shop/services/platform/stream"
)

var spans = tracetest.NewSpanRecorder()

func TestMain(m *testing.M) {
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	otel.SetTextMapPropagator(propagation.TraceContext{})
	os.Exit(m.Run())
}

// add writes n messages to stream through o, in one transaction.
func add(t *testing.T, ctx context.Context, o *outbox.Outbox, stream string, n int) []messaging.Message {
	t.Helper()
	var msgs []messaging.Message
	err := o.DB().RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for i := range n {
			msg, err := o.Add(ctx, tx, messaging.Message{
				Stream: stream, Type: "test.happened", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)),
			})
			if err != nil {
				return err
			}
			msgs = append(msgs, msg)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	o.Notify(ctx)
	return msgs
}

// start runs r until the test ends, and checks that Run returns nil.
func start(t *testing.T, r *outbox.Relay) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func streamLen(rdb redis.UniversalClient, stream string) int64 {
	return rdb.XLen(context.Background(), stream).Val()
}

func unpublished(t *testing.T, db *bun.DB) int64 {
	t.Helper()
	n, err := db.NewSelect().Model((*outbox.Row)(nil)).Where("published_at IS NULL").Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// each runs fn on every database with every broker.
func each(t *testing.T, fn func(t *testing.T, d mt.Database, b mt.Broker)) {
	for _, d := range mt.Databases(t) {
		for _, b := range mt.Brokers(t) {
			t.Run(d.Name+"+"+b.Name, func(t *testing.T) { fn(t, d, b) })
		}
	}
}

// Full batches are published back to back: with a poll interval of an hour
// and one wake-up, 250 rows leave in batches of 100.
func TestRelayPublishesEveryRowInOrder(t *testing.T) {
	each(t, func(t *testing.T, d mt.Database, b mt.Broker) {
		ctx := context.Background()
		o := outbox.New(d.DB, outbox.Config{})
		s := b.Stream(t)
		msgs := add(t, ctx, o, s, 250)
		start(t, outbox.NewRelay(o, b.Client, outbox.RelayConfig{PollInterval: time.Hour}))

		mt.Eventually(t, 5*time.Second, "all rows published", func() bool { return unpublished(t, d.DB) == 0 })
		entries, err := b.Client.XRange(ctx, s, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(msgs) {
			t.Fatalf("stream has %d entries, want %d", len(entries), len(msgs))
		}
		for i, e := range entries {
			got, err := messaging.Decode(s, e.Values)
			if err != nil {
				t.Fatalf("entry %d: %v", i, err)
			}
			want := msgs[i]
			if got.ID != want.ID || got.Type != want.Type || string(got.Payload) != string(want.Payload) ||
				!got.OccurredAt.Equal(want.OccurredAt) {
				t.Fatalf("entry %d = %+v, want %+v", i, got, want)
			}
		}
	})
}

// Signal wakes the relay at once: the poll interval is an hour.
func TestRelayWakesOnSignal(t *testing.T) {
	each(t, func(t *testing.T, d mt.Database, b mt.Broker) {
		o := outbox.New(d.DB, outbox.Config{})
		s := b.Stream(t)
		start(t, outbox.NewRelay(o, b.Client, outbox.RelayConfig{PollInterval: time.Hour}))
		for i := range 3 {
			began := time.Now()
			add(t, context.Background(), o, s, 1)
			mt.Eventually(t, time.Second, "published after Signal", func() bool { return streamLen(b.Client, s) == int64(i+1) })
			t.Logf("published %v after the commit", time.Since(began))
		}
	})
}

// A row committed through another connection pool (another process) wakes the
// relay through LISTEN/NOTIFY.
func TestRelayWakesOnNotify(t *testing.T) {
	db, url := mt.Postgres(t)
	b := mt.Miniredis(t)
	s := b.Stream(t)
	listening := make(chan struct{}, 1)
	r := outbox.NewRelay(outbox.New(db, outbox.Config{}), b.Client, outbox.RelayConfig{PollInterval: time.Hour})
	outbox.SetListening(r, func() { listening <- struct{}{} })
	start(t, r)
	mt.Await(t, 5*time.Second, "LISTEN in place", listening)

	other, err := database.Open(context.Background(), url, database.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := range 3 {
		add(t, context.Background(), outbox.New(other, outbox.Config{}), s, 1)
		mt.Eventually(t, 2*time.Second, "published after NOTIFY", func() bool { return streamLen(b.Client, s) == int64(i+1) })
	}
}

// A writer whose process runs a relay wakes it in-process and sends no
// NOTIFY; one without a relay notifies the others.
func TestNotifyOnlyWithoutARelayHere(t *testing.T) {
	db, _ := mt.Postgres(t)
	b := mt.Miniredis(t)
	hook := &notifyCounter{}
	db.AddQueryHook(hook)
	o := outbox.New(db, outbox.Config{})
	s := b.Stream(t)
	add(t, context.Background(), o, s, 1)
	if hook.notifies.Load() != 1 {
		t.Fatalf("%d NOTIFYs without a relay, want 1", hook.notifies.Load())
	}
	r := outbox.NewRelay(o, b.Client, outbox.RelayConfig{PollInterval: time.Hour})
	listening := make(chan struct{}, 1)
	outbox.SetListening(r, func() { listening <- struct{}{} })
	start(t, r)
	mt.Await(t, 5*time.Second, "the relay runs", listening)
	for i := range 3 {
		time.Sleep(2 * time.Millisecond) // past the NOTIFY's debounce
		add(t, context.Background(), o, s, 1)
		mt.Eventually(t, 2*time.Second, "published after Notify", func() bool { return streamLen(b.Client, s) == int64(i+2) })
	}
	if hook.notifies.Load() != 1 {
		t.Fatalf("%d NOTIFYs, want none while the relay runs here", hook.notifies.Load()-1)
	}
}

// notifyCounter counts the NOTIFYs a database sends.
type notifyCounter struct{ notifies atomic.Int64 }

func (q *notifyCounter) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if strings.Contains(e.Query, "pg_notify") {
		q.notifies.Add(1)
	}
	return ctx
}
func (q *notifyCounter) AfterQuery(context.Context, *bun.QueryEvent) {}

// An idle relay polls with a plain read and opens no transaction: it takes
// no SQLite write lock and burns no PostgreSQL transaction id.
func TestIdleRelayOpensNoTransaction(t *testing.T) {
	each(t, func(t *testing.T, d mt.Database, b mt.Broker) {
		stmts := dbtest.Count(t, d.DB)
		r := outbox.NewRelay(outbox.New(d.DB, outbox.Config{}), b.Client, outbox.RelayConfig{PollInterval: time.Millisecond})
		start(t, r)
		mt.Eventually(t, 5*time.Second, "20 polls", func() bool { return len(stmts.All()) >= 20 })
		began := func(op string) bool { return strings.HasPrefix(op, "BEGIN") } // BEGIN+UPDATE too
		if ops := stmts.All(); slices.ContainsFunc(ops, began) {
			t.Fatalf("an idle relay began a transaction: %v", ops)
		}
		add(t, context.Background(), outbox.New(d.DB, outbox.Config{}), b.Stream(t), 1)
		mt.Eventually(t, 5*time.Second, "published", func() bool { return unpublished(t, d.DB) == 0 })
	})
}

// On PostgreSQL the claim goes to the server with BEGIN: a batch takes two
// round trips, the claim and, once the rows are on their streams, the
// commit.
func TestRelayClaimGoesWithBegin(t *testing.T) {
	_, url := mt.Postgres(t)
	db := dbtest.OpenURL(t, url)
	b := mt.Miniredis(t)
	o := outbox.New(db, outbox.Config{})
	s := b.Stream(t)
	add(t, context.Background(), o, s, 3)
	r := outbox.NewRelay(o, b.Client, outbox.RelayConfig{})
	for round, want := range []int{3, 0} {
		stmts := dbtest.Count(t, db)
		n, err := r.PublishBatch(context.Background())
		if err != nil || n != want {
			t.Fatalf("round %d: published %d (%v), want %d", round, n, err, want)
		}
		trips := []string{"SELECT", "BEGIN+UPDATE", "COMMIT"}
		if want == 0 {
			trips = trips[:1] // nothing waits: no transaction
		}
		if got := stmts.All(); !slices.Equal(got, trips) {
			t.Errorf("round %d: round trips %v, want %v", round, got, trips)
		}
	}
	if n := streamLen(b.Client, s); n != 3 {
		t.Fatalf("%d entries on the stream, want 3", n)
	}
}

// queryCounter counts the transactions a database runs through Bun, and
// the relay's reads of whether rows wait.
type queryCounter struct{ begins, looks atomic.Int64 }

func (q *queryCounter) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if e.Query == "BEGIN" {
		q.begins.Add(1)
	}
	if strings.HasPrefix(e.Query, "SELECT EXISTS") {
		q.looks.Add(1)
	}
	return ctx
}
func (q *queryCounter) AfterQuery(context.Context, *bun.QueryEvent) {}

// A relay woken by a Signal knows that rows wait, and claims them without
// reading first; at its first pass it reads, and idle it opens no
// transaction. On SQLite, where no NOTIFY of another test's writer can wake
// the relay in between.
func TestSignalledRelayClaimsWithoutLooking(t *testing.T) {
	db := mt.SQLite(t)
	b := mt.Miniredis(t)
	hook := &queryCounter{}
	db.AddQueryHook(hook)
	o := outbox.New(db, outbox.Config{})
	s := b.Stream(t)
	start(t, outbox.NewRelay(o, b.Client, outbox.RelayConfig{PollInterval: time.Hour}))
	mt.Eventually(t, 5*time.Second, "the first pass", func() bool { return hook.looks.Load() == 1 })
	if n := hook.begins.Load(); n != 0 {
		t.Fatalf("an idle relay began %d transactions", n)
	}
	for i := range 3 {
		add(t, context.Background(), o, s, 2)
		mt.Eventually(t, 5*time.Second, "published after Signal", func() bool { return streamLen(b.Client, s) == int64(2*(i+1)) })
	}
	if n := hook.looks.Load() - 1; n != 0 {
		t.Fatalf("the relay read %d times whether rows wait after a Signal, want none", n)
	}
}

// Two relays on one outbox share the work and never publish a row twice.
func TestRelaysOnOneOutboxPublishEachRowOnce(t *testing.T) {
	db, url := mt.Postgres(t)
	b := mt.Miniredis(t)
	s := b.Stream(t)
	const n = 600
	add(t, context.Background(), outbox.New(db, outbox.Config{}), s, n)
	var relays []*outbox.Relay
	for range 2 {
		db2, err := database.Open(context.Background(), url, database.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db2.Close() })
		relays = append(relays, outbox.NewRelay(outbox.New(db2, outbox.Config{}), b.Client, outbox.RelayConfig{Batch: 10, PollInterval: time.Hour}))
	}
	var published [2]atomic.Int64
	total := func() int64 { return published[0].Load() + published[1].Load() }
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	for i, r := range relays {
		wg.Go(func() {
			// Bounded: relays that publish rows again, or never mark them,
			// would otherwise loop on for ever, growing the stream.
			for total() <= n && time.Now().Before(deadline) {
				k, err := r.PublishBatch(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if k == 0 {
					return
				}
				published[i].Add(int64(k))
			}
		})
	}
	wg.Wait()
	if total() != n {
		t.Fatalf("relays published %d rows for %d: some twice, or not all within 30s", total(), n)
	}
	t.Logf("relays published %d and %d rows", published[0].Load(), published[1].Load())
	if got := streamLen(b.Client, s); got != n {
		t.Fatalf("stream has %d entries for %d rows", got, n)
	}
	if unpublished(t, db) != 0 {
		t.Fatal("rows left unpublished")
	}
	entries := b.Client.XRange(context.Background(), s, "-", "+").Val()
	seen := map[string]bool{}
	for _, e := range entries {
		id := e.Values[messaging.FieldID].(string)
		if seen[id] {
			t.Fatalf("message %s published twice", id)
		}
		seen[id] = true
	}
}

// A batch whose XADD fails is marked nothing: every row, those of streams
// whose XADD succeeded included, keeps published_at NULL and is published
// with the next batch once Redis takes it.
func TestFailedXAddMarksNothing(t *testing.T) {
	each(t, func(t *testing.T, d mt.Database, b mt.Broker) {
		ctx := context.Background()
		o := outbox.New(d.DB, outbox.Config{})
		good, bad := b.Stream(t), b.Stream(t)
		// A key of another type: Redis answers the XADD with WRONGTYPE.
		if err := b.Client.Set(ctx, bad, "not a stream", 0).Err(); err != nil {
			t.Fatal(err)
		}
		add(t, ctx, o, good, 2)
		add(t, ctx, o, bad, 1)
		add(t, ctx, o, good, 2)
		r := outbox.NewRelay(o, b.Client, outbox.RelayConfig{})
		// The rows of this test's streams: the database outlives the subtest.
		unmarked := func() int64 {
			n, err := d.DB.NewSelect().Model((*outbox.Row)(nil)).
				Where("published_at IS NULL").Where("stream IN (?)", bun.In([]string{good, bad})).Count(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}

		n, err := r.PublishBatch(ctx)
		if got := unmarked(); got != 5 {
			t.Fatalf("%d of 5 rows with published_at NULL after a failed XADD, want all 5", got)
		}
		if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
			t.Fatalf("PublishBatch = %d, %v; want the XADD's WRONGTYPE error", n, err)
		}

		if err := b.Client.Del(ctx, bad).Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := r.PublishBatch(ctx); err != nil || n != 5 {
			t.Fatalf("PublishBatch = %d, %v; want the 5 rows published", n, err)
		}
		if unmarked() != 0 || streamLen(b.Client, bad) != 1 {
			t.Fatalf("%d rows unpublished, %d entries on the stream that failed; want 0 and 1",
				unmarked(), streamLen(b.Client, bad))
		}
	})
}

// A relay that dies after XADD and before marking the rows publishes them
// again; the consumer's inbox absorbs the duplicates, so each message takes
// effect once.
func TestRelayCrashBeforeMarkPublishesAgainAndInboxAbsorbs(t *testing.T) {
	for _, b := range mt.Brokers(t) {
		for _, d := range mt.Databases(t, "CREATE TABLE effects (message_id TEXT NOT NULL)") {
			t.Run(d.Name+"+"+b.Name, func(t *testing.T) {
				ctx := context.Background()
				o := outbox.New(d.DB, outbox.Config{})
				s := b.Stream(t)
				msgs := add(t, ctx, o, s, 5)

				crashed := outbox.NewRelay(o, b.Client, outbox.RelayConfig{})
				outbox.SetBeforeCommit(crashed, func() error { return errors.New("crash") })
				if _, err := crashed.PublishBatch(ctx); err == nil {
					t.Fatal("the crashed batch committed")
				}
				if streamLen(b.Client, s) != 5 || unpublished(t, d.DB) != 5 {
					t.Fatal("want 5 entries on the stream and 5 rows still unpublished")
				}

				start(t, outbox.NewRelay(o, b.Client, outbox.RelayConfig{}))
				mt.Eventually(t, 5*time.Second, "published again", func() bool { return unpublished(t, d.DB) == 0 })
				if got := streamLen(b.Client, s); got != 10 {
					t.Fatalf("stream has %d entries, want each of 5 messages twice", got)
				}

				c := stream.NewConsumer(d.DB, b.Client, stream.ConsumerConfig{Stream: s, Group: "g", Name: "c", Block: 50 * time.Millisecond},
					func(ctx context.Context, tx bun.IDB, batch []stream.Delivery) error {
						for _, d := range batch {
							if _, err := tx.ExecContext(ctx, "INSERT INTO effects (message_id) VALUES (?)", d.ID.String()); err != nil {
								return err
							}
						}
						return nil
					})
				cctx, cancel := context.WithCancel(ctx)
				done := make(chan error)
				go func() { done <- c.Run(cctx) }()
				t.Cleanup(func() { cancel(); <-done })
				mt.Eventually(t, 5*time.Second, "all entries delivered and acknowledged", func() bool {
					// Delivered first: pending counts only delivered entries.
					info, _ := b.Client.XInfoGroups(ctx, s).Result()
					delivered := len(info) == 1 && info[0].LastDeliveredID == b.Client.XRevRangeN(ctx, s, "+", "-", 1).Val()[0].ID
					p, err := b.Client.XPending(ctx, s, "g").Result()
					return delivered && err == nil && p.Count == 0
				})
				for _, m := range msgs {
					n, err := d.DB.NewSelect().Table("effects").Where("message_id = ?", m.ID.String()).Count(ctx)
					if err != nil || n != 1 {
						t.Fatalf("message %s took effect %d times (%v), want once", m.ID, n, err)
					}
				}
			})
		}
	}
}

// While Redis is down the relay logs, backs off and retries; it publishes
// once Redis is back.
func TestRelayRecoversFromRedisOutage(t *testing.T) {
	db := mt.SQLite(t)
	b := mt.Miniredis(t)
	s := b.Stream(t)
	logs := &mt.LogRecorder{}
	o := outbox.New(db, outbox.Config{})
	b.Mini.Close()
	start(t, outbox.NewRelay(o, b.Client, outbox.RelayConfig{MaxBackoff: 50 * time.Millisecond, Logger: slog.New(logs)}))
	add(t, context.Background(), o, s, 3)
	mt.Eventually(t, 5*time.Second, "an error logged", func() bool { return logs.Contains("publish outbox batch") })
	if err := b.Mini.Restart(); err != nil {
		t.Fatal(err)
	}
	mt.Eventually(t, 5*time.Second, "published after Redis is back", func() bool { return streamLen(b.Client, s) == 3 })
}

// A relay whose context has ended still publishes what waits, then returns.
func TestRelayFlushesAtStop(t *testing.T) {
	each(t, func(t *testing.T, d mt.Database, b mt.Broker) {
		o := outbox.New(d.DB, outbox.Config{})
		s := b.Stream(t)
		add(t, context.Background(), o, s, 7)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := outbox.NewRelay(o, b.Client, outbox.RelayConfig{Batch: 3}).Run(ctx); err != nil {
			t.Fatal(err)
		}
		if got := streamLen(b.Client, s); got != 7 || unpublished(t, d.DB) != 0 {
			t.Fatalf("after stop: %d entries, %d rows unpublished; want 7 and 0", got, unpublished(t, d.DB))
		}
	})
}

// The insert is a span of the writer's trace, the publish span continues the
// trace stored in the row (the insert's), and the entry carries the publish
// span's context for the consumer.
func TestRelayPublishSpanContinuesTheWritersTrace(t *testing.T) {
	db := mt.SQLite(t)
	b := mt.Miniredis(t)
	s := b.Stream(t)
	o := outbox.New(db, outbox.Config{})
	ctx, parent := otel.Tracer("test").Start(context.Background(), "POST /orders")
	msg := add(t, ctx, o, s, 1)[0]
	parent.End()
	if _, err := outbox.NewRelay(o, b.Client, outbox.RelayConfig{}).PublishBatch(context.Background()); err != nil {
		t.Fatal(err)
	}

	var insert, publish sdktrace.ReadOnlySpan
	for _, sp := range spans.Ended() {
		switch sp.Name() {
		case s + " publish":
			publish = sp
		case "outbox insert":
			insert = sp
		}
	}
	if publish == nil || insert == nil {
		t.Fatalf("publish span %v, insert span %v; want both", publish, insert)
	}
	if insert.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Fatal("the insert span is not a child of the writer's span")
	}
	if publish.Parent().SpanID() != insert.SpanContext().SpanID() || publish.SpanContext().TraceID() != parent.SpanContext().TraceID() {
		t.Fatal("the publish span is not a child of the insert span")
	}
	if publish.SpanKind() != trace.SpanKindProducer {
		t.Fatalf("span kind %v, want producer", publish.SpanKind())
	}
	attrs := map[string]string{}
	for _, a := range publish.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	for k, v := range map[string]string{
		"messaging.system": "redis", "messaging.destination.name": s,
		"messaging.operation.type": "send", "messaging.message.id": msg.ID.String(),
	} {
		if attrs[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, attrs[k], v)
		}
	}
	entry := b.Client.XRange(context.Background(), s, "-", "+").Val()[0]
	if tp := entry.Values[messaging.FieldTraceparent].(string); !strings.Contains(tp, publish.SpanContext().SpanID().String()) {
		t.Fatalf("entry traceparent %q does not carry the publish span", tp)
	}
}

func TestDeletePublishedBefore(t *testing.T) {
	for _, d := range mt.Databases(t) {
		t.Run(d.Name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now().UTC()
			old, recent := now.Add(-48*time.Hour), now.Add(-time.Hour)
			var keep []string
			for i, at := range []*time.Time{&old, &old, &old, &old, &old, &recent, nil} {
				msg := add(t, ctx, outbox.New(d.DB, outbox.Config{}), "s", 1)[0]
				if at != nil {
					if _, err := d.DB.NewUpdate().Model((*outbox.Row)(nil)).Set("published_at = ?", *at).Where("id = ?", msg.ID).Exec(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if i >= 5 {
					keep = append(keep, msg.ID.String())
				}
			}
			n, err := outbox.DeletePublishedBefore(ctx, d.DB, now.Add(-24*time.Hour), 2)
			if err != nil || n != 5 {
				t.Fatalf("deleted %d rows (%v), want 5", n, err)
			}
			var left []outbox.Row
			if err := d.DB.NewSelect().Model(&left).OrderExpr("id").Scan(ctx); err != nil {
				t.Fatal(err)
			}
			if len(left) != 2 || left[0].ID.String() != keep[0] || left[1].ID.String() != keep[1] {
				t.Fatalf("left %v, want the recent and the unpublished row", left)
			}
		})
	}
}
