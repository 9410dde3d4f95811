package outbox_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"

	"shop/services/platform/database"
	"shop/services/platform/messaging"
	mt "shop/services/platform/messaging/messagingtest"
	"shop/services/platform/outbox"
)

// untraced runs the benchmark with tracing off, as a service without an
// OTel endpoint runs: the tests' span recorder would otherwise keep every
// span and count its allocations.
func untraced(b *testing.B) {
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(noop.NewTracerProvider())
	b.Cleanup(func() { otel.SetTracerProvider(prev) })
}

// eachBench runs fn on every database with every broker: SQLite and
// miniredis always, PostgreSQL and Redis when TEST_DATABASE_URL and
// TEST_REDIS_URL are set. The sub-benchmark's name says which.
func eachBench(b *testing.B, fn func(b *testing.B, d mt.Database, br mt.Broker)) {
	untraced(b)
	for _, d := range mt.Databases(b) {
		for _, br := range mt.Brokers(b) {
			b.Run(d.Name+"+"+br.Name, func(b *testing.B) { fn(b, d, br) })
		}
	}
}

// payload is the size of a real payment request.
const benchPayload = `{"order_id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","user_id":1000000001,"amount":1234}`

// backlog writes n unpublished rows for stream, 1000 per statement.
func backlog(b *testing.B, db *bun.DB, stream string, n int) {
	b.Helper()
	ctx := context.Background()
	rows := make([]outbox.Row, 0, 1000)
	for i := 0; i < n; i += len(rows) {
		rows = rows[:0]
		for range min(1000, n-i) {
			rows = append(rows, outbox.Row{
				ID: uuid.Must(uuid.NewV7()), Stream: stream, Type: "payment.requested", Payload: benchPayload,
				OccurredAt: time.Now().UTC().Truncate(time.Microsecond),
			})
		}
		if _, err := db.NewInsert().Model(&rows).Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRelayBacklog publishes a backlog of b.N outbox rows, one batch
// transaction after another (claim, pipelined XADD, mark published), as the
// relay's loop does; rows/s is the relay's throughput from a backlog.
func BenchmarkRelayBacklog(b *testing.B) {
	eachBench(b, func(b *testing.B, d mt.Database, br mt.Broker) {
		for _, batch := range []int{100, 500, 1000} {
			b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
				ctx := context.Background()
				s := br.Stream(b)
				o := outbox.New(d.DB, outbox.Config{})
				r := outbox.NewRelay(o, br.Client, outbox.RelayConfig{Batch: batch})
				backlog(b, d.DB, s, b.N)
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				for published := 0; published < b.N; {
					n, err := r.PublishBatch(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if n == 0 {
						b.Fatalf("%d of %d rows published, then none", published, b.N)
					}
					published += n
				}
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
				if got := br.Client.XLen(ctx, s).Val(); got != int64(b.N) {
					b.Fatalf("stream has %d entries, want %d", got, b.N)
				}
				// The next round starts from an empty outbox.
				if _, err := d.DB.NewDelete().Table("outbox").Where("TRUE").Exec(ctx); err != nil {
					b.Fatal(err)
				}
			})
		}
	})
}

// BenchmarkRelayIdleLatency commits one row at a time into an idle outbox
// while the relay runs, and measures commit → entry on the stream (read
// with a blocking XREAD). It reports the median and the 99th percentile,
// and on PostgreSQL how many transaction ids the idle relay used per
// second (it should use none: an idle poll is a plain read).
func BenchmarkRelayIdleLatency(b *testing.B) {
	eachBench(b, func(b *testing.B, d mt.Database, br mt.Broker) {
		ctx := context.Background()
		s := br.Stream(b)
		o := outbox.New(d.DB, outbox.Config{})
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			outbox.NewRelay(o, br.Client, outbox.RelayConfig{PollInterval: 100 * time.Millisecond}).Run(runCtx)
		}()
		b.Cleanup(func() { stop(); <-done })

		idleXIDs := -1.0
		if database.IsPostgres(d.DB) {
			// Idle for a second, polling ten times: no transaction ids used.
			time.Sleep(200 * time.Millisecond)
			before := nextXID(b, d.DB)
			time.Sleep(time.Second)
			idleXIDs = float64(nextXID(b, d.DB) - before)
		}

		last := "0-0" // the stream is new
		lat := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			time.Sleep(2 * time.Millisecond) // the relay is back waiting
			b.StartTimer()
			err := d.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				_, err := o.Add(ctx, tx, messaging.Message{Stream: s, Type: "payment.requested", Payload: []byte(benchPayload)})
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			committed := time.Now()
			o.Notify(ctx) // as every writer does after its commit
			res, err := br.Client.XRead(ctx, &redis.XReadArgs{Streams: []string{s, last}, Count: 1, Block: 5 * time.Second}).Result()
			if err != nil {
				b.Fatalf("entry not on the stream: %v", err)
			}
			lat = append(lat, time.Since(committed))
			last = res[0].Messages[0].ID
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		if idleXIDs >= 0 {
			b.ReportMetric(idleXIDs, "idle-xids/s")
		}
	})
}

// nextXID is the next transaction id PostgreSQL will assign, read without
// assigning one.
func nextXID(b *testing.B, db *bun.DB) int64 {
	b.Helper()
	var x int64
	if err := db.NewRaw("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").Scan(context.Background(), &x); err != nil {
		b.Fatal(err)
	}
	return x
}
