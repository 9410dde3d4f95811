package outbox

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"shop/services/platform/database"
	"shop/services/platform/messaging"
	"shop/services/platform/telemetry"
)

// RelayConfig configures a Relay. The zero value is sensible.
type RelayConfig struct {
	// Batch is how many rows one transaction claims and publishes
	// (default 1000: from a backlog, a batch of 100 published about 7,000 rows/s on PostgreSQL and one of 1000 about 29,000).
	Batch int
	// PollInterval is how long the relay waits for a wake-up before it
	// looks anyway (default 1s): the fallback when a signal is lost.
	PollInterval time.Duration
	// MaxBackoff caps the wait between retries while Redis or the database
	// fails (default 5s).
	MaxBackoff time.Duration
	// Retention is how long published rows are kept, for inspection, before
	// the janitor deletes them (default 24h).
	Retention time.Duration
	// CleanupInterval is how often the janitor runs (default 1m).
	CleanupInterval time.Duration
	// CleanupBatch bounds the rows one DELETE removes, so the janitor never
	// holds long locks (default 1000).
	CleanupBatch int
	// FlushTimeout bounds the last publishing Run does after its context
	// ends (default 5s).
	FlushTimeout time.Duration
	// Logger receives errors and janitor reports (default slog.Default()).
	Logger *slog.Logger
	// Telemetry receives the publish spans and the relay's metrics
	// (default: the global providers).
	Telemetry telemetry.Providers
}

func (o RelayConfig) withDefaults() RelayConfig {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	if o.CleanupBatch <= 0 {
		o.CleanupBatch = 1000
	}
	def(&o.PollInterval, time.Second)
	def(&o.MaxBackoff, 5*time.Second)
	def(&o.Retention, 24*time.Hour)
	def(&o.CleanupInterval, time.Minute)
	def(&o.FlushTimeout, 5*time.Second)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// batchTimeout bounds one claim-publish-mark transaction. A batch runs to
// its end even when Run's context ends, so that rows already on the stream
// are marked and not published again by the next relay.
const batchTimeout = 15 * time.Second

// Relay publishes the outbox's rows to their Redis streams, at least once and
// in id order, and deletes published rows past a retention. Any number of
// relays may share one outbox: on PostgreSQL each row is claimed by one of
// them at a time. On PostgreSQL a running relay holds one connection of the
// pool for LISTEN.
type Relay struct {
	outbox *Outbox
	rdb    redis.UniversalClient
	opts   RelayConfig
	log    *slog.Logger
	tracer trace.Tracer
	meter  metric.Meter
	// published counts messages put on their streams, batchSize the rows
	// one transaction published.
	published metric.Int64Counter
	batchSize metric.Int64Histogram
	// notified receives a token for each PostgreSQL notification.
	notified chan struct{}

	// Test hooks: beforeCommit runs after a batch is on its streams and before
	// it is marked published; listening runs each time LISTEN is in place.
	beforeCommit func() error
	listening    func()
}

// NewRelay returns a relay for o that publishes to rdb.
func NewRelay(o *Outbox, rdb redis.UniversalClient, opts RelayConfig) *Relay {
	opts = opts.withDefaults()
	r := &Relay{
		outbox:   o,
		rdb:      rdb,
		opts:     opts,
		log:      opts.Logger.With("component", "outbox relay"),
		tracer:   opts.Telemetry.TracerProvider().Tracer(scope),
		meter:    opts.Telemetry.MeterProvider().Meter(scope),
		notified: make(chan struct{}, 1),
	}
	// The API's errors here are only for invalid names, which these are not.
	r.published, _ = r.meter.Int64Counter("outbox.relay.published",
		metric.WithUnit("{message}"), metric.WithDescription("Messages the relay put on their streams"))
	r.batchSize, _ = r.meter.Int64Histogram("outbox.relay.batch.size",
		metric.WithUnit("{message}"), metric.WithDescription("Messages published by one relay transaction"),
		metric.WithExplicitBucketBoundaries(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000))
	return r
}

const scope = "shop/services/platform/outbox"

// Run publishes until ctx ends, then publishes what is still waiting (within
// FlushTimeout) and returns nil. Errors are logged and retried, never
// returned: a relay outlives outages of Redis and the database.
func (r *Relay) Run(ctx context.Context) error {
	if reg, err := r.observeBacklog(); err != nil {
		r.log.WarnContext(ctx, "outbox backlog metrics", "error", err)
	} else {
		defer reg.Unregister()
	}
	r.outbox.relays.Add(1)
	defer r.outbox.relays.Add(-1)
	var wg sync.WaitGroup
	if database.IsPostgres(r.outbox.db) {
		wg.Go(func() { r.listen(ctx) })
	}
	wg.Go(func() { r.cleanLoop(ctx) })
	r.publishLoop(ctx)
	r.flush(ctx)
	wg.Wait()
	return nil
}

// publishLoop publishes batch after batch. It looks whether rows wait
// before a batch only when it does not know: on the first pass, and after
// a poll or a notification, which may well find nothing. After a full batch
// or a Signal (a commit in this process just added rows) it claims at once,
// saving a round trip per batch under load.
func (r *Relay) publishLoop(ctx context.Context) {
	backoff := messaging.Backoff{Max: r.opts.MaxBackoff}
	look := true
	for ctx.Err() == nil {
		n, err := r.publish(ctx, look)
		if err != nil {
			if ctx.Err() == nil {
				r.log.ErrorContext(ctx, "publish outbox batch", "error", err)
				messaging.Sleep(ctx, backoff.Next())
			}
			continue
		}
		backoff.Reset()
		look = false
		if n < r.opts.Batch {
			look = !r.wait(ctx)
		}
	}
}

// wait returns on the first wake-up: a Signal in this process, a
// notification from PostgreSQL, the poll interval, or the end of ctx. It
// reports whether it was a Signal.
func (r *Relay) wait(ctx context.Context) (signalled bool) {
	poll := time.NewTimer(r.opts.PollInterval)
	defer poll.Stop()
	select {
	case <-ctx.Done():
	case <-r.outbox.Wake():
		return true
	case <-r.notified:
	case <-poll.C:
	}
	return false
}

// flush publishes what is left after ctx ended, so messages committed just
// before a shutdown leave with this process rather than the next one.
func (r *Relay) flush(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.FlushTimeout)
	defer cancel()
	for {
		n, err := r.PublishBatch(ctx)
		if err != nil {
			r.log.WarnContext(ctx, "flush outbox at stop", "error", err)
			return
		}
		if n < r.opts.Batch {
			return
		}
	}
}

// PublishBatch publishes up to Batch unpublished rows in one transaction and
// reports how many it published: it claims them, marking them published,
// appends them to their streams and commits, so the rows count as published
// once the XADDs succeeded and are left for another try if anything fails
// before the commit. When no row waits it opens no transaction.
func (r *Relay) PublishBatch(ctx context.Context) (int, error) {
	return r.publish(ctx, true)
}

// publish is PublishBatch, which looks whether rows wait before it claims
// any only if look is set: a relay that knows rows wait saves the round
// trip, and if it was wrong commits a transaction that claimed nothing.
func (r *Relay) publish(ctx context.Context, look bool) (int, error) {
	if look {
		// A plain read first: an idle relay must not take SQLite's write
		// lock or hold a PostgreSQL transaction open every poll. Being an
		// index scan, it also marks the index entries of rows published
		// before as dead, which keeps the claim's scan of the unpublished
		// rows short between vacuums.
		pending, err := r.pending(ctx)
		if err != nil || !pending {
			return 0, err
		}
	}
	ctx, cancel := detach(ctx, batchTimeout)
	defer cancel()
	var rows []Row
	publish := func(ctx context.Context) error {
		if len(rows) == 0 {
			return nil
		}
		if err := r.xadd(ctx, rows); err != nil {
			return err
		}
		if r.beforeCommit != nil {
			return r.beforeCommit()
		}
		return nil
	}
	var err error
	if database.IsPostgres(r.outbox.db) {
		// The claim goes with BEGIN, saving a round trip per batch.
		err = database.RunInTxOpening(ctx, r.outbox.db, r.claiming(&rows), func(ctx context.Context, _ bun.IDB) error {
			return publish(ctx)
		})
	} else {
		err = r.outbox.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var err error
			if rows, err = r.claim(ctx, tx); err != nil {
				return err
			}
			return publish(ctx)
		})
	}
	if err != nil {
		return 0, err
	}
	if len(rows) > 0 {
		r.count(ctx, rows)
	}
	return len(rows), nil
}

// detach returns ctx without its cancellation, so that work begun is
// finished, but bounded by timeout and by ctx's own deadline, if any.
func detach(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}

// claim marks the oldest unpublished rows published, with one statement,
// and returns them in id order; the marks hold only if tx commits. On
// SQLite no lock clause is needed: its transactions (BEGIN IMMEDIATE) hold
// the only write lock. PostgreSQL's claim is claiming.
func (r *Relay) claim(ctx context.Context, tx bun.Tx) ([]Row, error) {
	var rows []Row
	oldest := tx.NewSelect().Model((*Row)(nil)).Column("id").
		Where("published_at IS NULL").
		OrderExpr("id").
		Limit(int64(r.opts.Batch))
	_, err := tx.NewUpdate().Model((*Row)(nil)).
		Set("published_at = ?", time.Now().UTC()).
		Where("id IN (?)", oldest).
		Returning("*").
		Exec(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	sortRows(rows)
	return rows, nil
}

// claiming is claim on PostgreSQL, as the statement that opens the
// relay's transaction: it claims with claimStatement and puts the rows in
// *rows, in id order. SKIP LOCKED lets concurrent relays each take
// different rows.
func (r *Relay) claiming(rows *[]Row) database.Opening {
	return database.Opening{
		Statement: claimStatement,
		Args:      []any{time.Now().UTC(), r.opts.Batch},
		Rows: func(pgRows pgx.Rows) error {
			for pgRows.Next() {
				var row Row
				if err := pgRows.Scan(&row.ID, &row.Stream, &row.Type, &row.Payload,
					&row.Traceparent, &row.Tracestate, &row.OccurredAt, &row.PublishedAt); err != nil {
					return fmt.Errorf("claim outbox rows: %w", err)
				}
				*rows = append(*rows, row)
			}
			if err := pgRows.Err(); err != nil {
				return fmt.Errorf("claim outbox rows: %w", err)
			}
			sortRows(*rows)
			return nil
		},
	}
}

func sortRows(rows []Row) {
	slices.SortFunc(rows, func(a, b Row) int { return bytes.Compare(a.ID[:], b.ID[:]) })
}

// pendingStatement is pending on PostgreSQL, prepared. Its LIMIT is a
// parameter only because pgx sends a statement without any unprepared.
var pendingStatement = database.NewStatement("SELECT", "outbox",
	"SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT $1)")

// pending reports whether unpublished rows wait.
func (r *Relay) pending(ctx context.Context) (bool, error) {
	if !database.IsPostgres(r.outbox.db) {
		return r.outbox.db.NewSelect().Model((*Row)(nil)).Where("published_at IS NULL").Limit(1).Exists(ctx)
	}
	var pending bool
	err := pendingStatement.Scan(ctx, r.outbox.db, &pending, 1)
	return pending, err
}

// claimStatement is claim on PostgreSQL, prepared. The ids go in as an
// array (= ANY) rather than a subquery (IN): with IN the planner may join
// the claimed ids to a sequential scan of the whole outbox (it did while
// the table was young); = ANY looks them up by primary key.
var claimStatement = database.NewStatement("UPDATE", "outbox", `UPDATE outbox SET published_at = $1
WHERE id = ANY (ARRAY (
	SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED))
RETURNING id, stream, type, payload, traceparent, tracestate, occurred_at, published_at`)

// xadd appends rows to their streams in one round trip, each under a publish
// span that continues the trace stored with the row; the entry carries the
// publish span's context so the consumer's span becomes its child.
func (r *Relay) xadd(ctx context.Context, rows []Row) error {
	pipe := r.rdb.Pipeline()
	spans := make([]trace.Span, len(rows))
	for i := range rows {
		msg := rows[i].Message()
		spanCtx, span := r.tracer.Start(msg.ContextWithTrace(ctx), msg.Stream+" publish",
			trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				semconv.MessagingSystemKey.String("redis"),
				semconv.MessagingDestinationName(msg.Stream),
				semconv.MessagingOperationTypeSend,
				semconv.MessagingOperationName("publish"),
				semconv.MessagingMessageID(msg.ID.String()),
			))
		spans[i] = span
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: msg.Stream, Values: msg.WithTrace(spanCtx).Values()})
	}
	cmds, err := pipe.Exec(ctx)
	for i, span := range spans {
		if i < len(cmds) && cmds[i].Err() != nil {
			span.RecordError(cmds[i].Err())
			span.SetStatus(codes.Error, "xadd failed")
		}
		span.End()
	}
	if err != nil {
		return fmt.Errorf("xadd %d outbox messages: %w", len(rows), err)
	}
	return nil
}

// listen wakes the relay on every NOTIFY of NotifyChannel, which Notify
// sends after a writer's commit: other processes' writes are published at
// once. It reconnects after errors until ctx ends.
func (r *Relay) listen(ctx context.Context) {
	backoff := messaging.Backoff{Max: r.opts.MaxBackoff}
	for ctx.Err() == nil {
		err := r.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		r.log.WarnContext(ctx, "listen for outbox notifications", "error", err)
		messaging.Sleep(ctx, backoff.Next())
	}
}

func (r *Relay) listenOnce(ctx context.Context) error {
	conn, err := r.outbox.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(driverConn any) error {
		sc, ok := driverConn.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("listen needs the pgx driver, have %T", driverConn)
		}
		err := waitForNotifications(ctx, sc.Conn(), func() {
			if r.listening != nil {
				r.listening()
			}
		}, r.poke)
		// The connection goes, never back to the pool still listening.
		return errors.Join(err, driver.ErrBadConn)
	})
}

// waitForNotifications runs LISTEN on conn, then calls ready once and
// notified for each notification, until an error or the end of ctx.
func waitForNotifications(ctx context.Context, conn *pgx.Conn, ready, notified func()) error {
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{NotifyChannel}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	// Rows committed while nobody listened would otherwise wait for a poll.
	notified()
	ready()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		notified()
	}
}

// poke wakes the publish loop without blocking: one pending wake-up is enough.
func (r *Relay) poke() {
	select {
	case r.notified <- struct{}{}:
	default:
	}
}

// cleanLoop is the janitor: it keeps the outbox table bounded.
func (r *Relay) cleanLoop(ctx context.Context) {
	messaging.Every(ctx, r.opts.CleanupInterval, func(ctx context.Context) {
		n, err := DeletePublishedBefore(ctx, r.outbox.db, time.Now().Add(-r.opts.Retention), r.opts.CleanupBatch)
		if err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "delete published outbox rows", "error", err)
		}
		if n > 0 {
			r.log.DebugContext(ctx, "deleted published outbox rows", "rows", n)
		}
	})
}

// DeletePublishedBefore deletes the rows published before t, batch rows per
// statement, and reports how many it deleted.
func DeletePublishedBefore(ctx context.Context, db bun.IDB, t time.Time, batch int) (int64, error) {
	// Walking the primary key from the oldest id (UUIDv7 sort by time) finds
	// old published rows first, so published_at needs no index, which
	// would cost every claim (see messaging.Migrations).
	n, err := database.DeleteInBatches(ctx, db, "outbox", "id", "id", batch, "published_at < ?", t.UTC())
	if err != nil {
		return n, fmt.Errorf("delete published outbox rows: %w", err)
	}
	return n, nil
}
