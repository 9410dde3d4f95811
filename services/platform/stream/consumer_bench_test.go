package stream_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"

	"shop/services/platform/inbox"
	"shop/services/platform/messaging"
	mt "shop/services/platform/messaging/messagingtest"
	"shop/services/platform/stream"
)

// BenchmarkConsumer reads b.N entries from a stream and commits each one's
// inbox transaction (inbox row plus one effect row, the record handler),
// acknowledging after the commit, as the services' consumers do. msgs/s is
// committed inbox transactions per second. SQLite and miniredis always;
// PostgreSQL and Redis when TEST_DATABASE_URL and TEST_REDIS_URL are set.
func BenchmarkConsumer(b *testing.B) {
	// Tracing off, as a service without an OTel endpoint runs.
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(noop.NewTracerProvider())
	b.Cleanup(func() { otel.SetTracerProvider(prev) })

	for _, d := range mt.Databases(b, effects) {
		for _, br := range mt.Brokers(b) {
			b.Run(d.Name+"+"+br.Name, func(b *testing.B) {
				ctx := context.Background()
				s := br.Stream(b)
				last := fill(b, br.Client, s, b.N)
				c := stream.NewConsumer(d.DB, br.Client, stream.ConsumerConfig{
					Stream: s, Group: "bench", Name: "c", Block: 50 * time.Millisecond,
				}, recordAll)
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				runCtx, stop := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); c.Run(runCtx) }()
				for deadline := start.Add(2 * time.Minute); !consumed(ctx, br.Client, s, last); time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						stop()
						<-done
						b.Fatalf("%d entries not all consumed and acknowledged within 2m", b.N)
					}
				}
				elapsed := time.Since(start)
				b.StopTimer()
				stop()
				<-done
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
				n, err := d.DB.NewSelect().Table("inbox").Count(ctx)
				if err != nil || n != int64(b.N) {
					b.Fatalf("inbox has %d rows (%v), want %d", n, err, b.N)
				}
				// The next round starts from empty tables.
				for _, table := range []string{"inbox", "effects"} {
					if _, err := d.DB.NewDelete().Table(table).Where("TRUE").Exec(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// fill appends n payment-request-sized messages to stream, pipelined, and
// returns the last entry's id.
func fill(b *testing.B, rdb redis.UniversalClient, stream string, n int) string {
	b.Helper()
	ctx := context.Background()
	var last string
	for i := 0; i < n; i += 1000 {
		pipe := rdb.Pipeline()
		cmds := make([]*redis.StringCmd, 0, 1000)
		for range min(1000, n-i) {
			msg := messaging.Message{
				ID: uuid.Must(uuid.NewV7()), Stream: stream, Type: "test.happened",
				Payload:    []byte(`{"order_id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","user_id":1000000001,"amount":1234}`),
				OccurredAt: time.Now().UTC(),
			}
			cmds = append(cmds, pipe.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: msg.Values()}))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
		last = cmds[len(cmds)-1].Val()
	}
	return last
}

// consumed reports whether the group has read up to last and acknowledged
// everything it read.
func consumed(ctx context.Context, rdb redis.UniversalClient, stream, last string) bool {
	groups, err := rdb.XInfoGroups(ctx, stream).Result()
	return err == nil && len(groups) == 1 && groups[0].LastDeliveredID == last && groups[0].Pending == 0
}

// BenchmarkInboxTransactions is what the consumer's database work costs
// alone, in other shapes: it commits b.N messages (inbox rows plus the
// effect rows of recordAll, no Redis) with `batch` messages per transaction
// and `workers` transactions in flight. batch=64/workers=1 is the consumer
// of today; the others measure smaller batches, and several batches in
// flight at once, on the same database.
func BenchmarkInboxTransactions(b *testing.B) {
	for _, d := range mt.Databases(b, effects) {
		for _, shape := range []struct{ batch, workers int }{{1, 1}, {1, 4}, {16, 1}, {64, 1}, {64, 2}} {
			b.Run(fmt.Sprintf("%s/batch=%d/workers=%d", d.Name, shape.batch, shape.workers), func(b *testing.B) {
				ctx := context.Background()
				msgs := make([]messaging.Message, b.N)
				for i := range msgs {
					msgs[i] = messaging.Message{ID: uuid.Must(uuid.NewV7()), Type: "test.happened"}
				}
				var next atomic.Int64
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for range shape.workers {
					wg.Go(func() {
						for {
							hi := int(next.Add(int64(shape.batch)))
							lo := hi - shape.batch
							if lo >= len(msgs) {
								return
							}
							chunk := msgs[lo:min(hi, len(msgs))]
							err := d.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
								entries := make([]inbox.Entry, len(chunk))
								batch := make([]stream.Delivery, len(chunk))
								for i, m := range chunk {
									entries[i] = inbox.Entry{ID: m.ID, Type: m.Type}
									batch[i] = stream.Delivery{Message: m}
								}
								if _, err := inbox.RecordAll(ctx, tx, entries); err != nil {
									return err
								}
								return recordAll(ctx, tx, batch)
							})
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
				for _, table := range []string{"inbox", "effects"} {
					if _, err := d.DB.NewDelete().Table(table).Where("TRUE").Exec(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// effectRow is a row of the effects table.
type effectRow struct {
	bun.BaseModel `bun:"table:effects"`

	MessageID string `bun:"message_id"`
}

// recordAll is record for a whole batch, in one statement, as the services'
// handlers apply theirs.
func recordAll(ctx context.Context, tx bun.IDB, batch []stream.Delivery) error {
	rows := make([]effectRow, len(batch))
	for i, d := range batch {
		rows[i].MessageID = d.ID.String()
	}
	_, err := tx.NewInsert().Model(&rows).Exec(ctx)
	return err
}
