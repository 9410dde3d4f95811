// Package stream consumes messages from Redis Streams into a service: each
// message takes effect once, applied by the handler in batches, each in one
// database transaction with the inbox records of its messages, and is
// acknowledged only after that transaction commits. Messages
// that can never succeed go to a dead-letter stream; a Trimmer keeps streams
// bounded without dropping what a group still needs.
//
// A failure is one of three kinds, and only two of them spend deliveries:
//
//   - Permanent (the handler marked it, or the entry is malformed): the
//     message goes to the dead-letter stream at once.
//   - Transient (transient.Is: the database unreachable, a timeout, a
//     serialization failure or deadlock): the message is not at fault, so
//     it never counts toward MaxDeliveries and is never dead-lettered. The
//     consumer keeps the failed entries in hand and pauses: it reads and
//     claims nothing new, pings the database at a growing interval (up to
//     MaxBackoff), and applies the entries it holds once the ping answers;
//     then it resumes. Redis counts a delivery each time an entry is read
//     or claimed, never on a retry in hand, and while it pauses the
//     consumer re-claims its entries for itself every ClaimIdle/4 with
//     their delivery count unchanged (XCLAIM … RETRYCOUNT n JUSTID), so no
//     other replica takes them over as idle and none is counted again,
//     however long the outage. Only a consumer that stops or crashes in
//     the meantime leaves its entries to be claimed, which counts one
//     delivery each, as any crash does.
//   - Anything else (a bug, a panic): the entry is left pending, claimed
//     again after ClaimIdle, and dead-lettered after MaxDeliveries.
package stream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"shop/services/platform/database"
	"shop/services/platform/inbox"
	"shop/services/platform/messaging"
	"shop/services/platform/telemetry"
	"shop/services/platform/transient"
)

// Delivery is one message handed to a Handler, with the span context of its
// process span (a child of the span that published it): what the handler
// does for the message, such as the messages it sends, belongs to that
// trace.
type Delivery struct {
	Trace trace.SpanContext
	messaging.Message

	span trace.Span
}

// NewDelivery returns the delivery of msg under its process span.
func NewDelivery(span trace.Span, msg messaging.Message) Delivery {
	return Delivery{Trace: span.SpanContext(), Message: msg, span: span}
}

// Span is the delivery's process span, where the handler records what it
// learned from and did with this message (attributes, events): each
// message of a batch has its own. A Delivery built without one returns a
// span that records nothing.
func (d Delivery) Span() trace.Span {
	if d.span != nil {
		return d.span
	}
	return trace.SpanFromContext(trace.ContextWithSpanContext(context.Background(), d.Trace))
}

// Handler applies a batch of messages, in stream order, within tx: the
// transaction that also records them in the inbox (on PostgreSQL its
// connection, on which the handler must not begin or end transactions of
// its own). Messages processed
// before are left out; a batch holds at least one. Applying a batch with
// a few statements rather than a few per message is what lets a consumer
// keep up with many writers. An error rolls the whole batch back; the
// consumer then applies its messages one at a time, so only the failing
// one fails: it is delivered again, or dead-lettered if the error is
// Permanent.
type Handler func(ctx context.Context, tx bun.IDB, batch []Delivery) error

// ConsumerConfig configures a Consumer. Stream and Group are required; the
// rest has defaults.
type ConsumerConfig struct {
	// Stream is the Redis stream read, e.g. "payments.requests".
	Stream string
	// Group is the consumer group, one per consuming service, e.g. "payments".
	Group string
	// Name is this consumer within the group (default: the host name, which
	// is the pod name on Kubernetes). Keep it stable across restarts so a
	// restarted consumer is the same member, not a new one, and distinct
	// between replicas.
	Name string
	// Block is how long one read waits for new entries (default 1s); the
	// consumer notices a stop between reads, so keep it short.
	Block time.Duration
	// Batch is how many entries one read or claim takes (default 64).
	Batch int
	// HandlerTimeout bounds one handler run with its transaction
	// (default 30s).
	HandlerTimeout time.Duration
	// ClaimIdle is how long an entry stays unacknowledged before another
	// consumer takes it over (default HandlerTimeout). Shorter than
	// HandlerTimeout, a slow handler would see its entry taken away.
	ClaimIdle time.Duration
	// ClaimInterval is how often idle entries are looked for
	// (default ClaimIdle/2).
	ClaimInterval time.Duration
	// MaxDeliveries is how often an entry is delivered before it goes to the
	// dead-letter stream <Stream>.dlq (default 5).
	MaxDeliveries int64
	// DLQMaxLen bounds the dead-letter stream, approximately (default 100000).
	DLQMaxLen int64
	// MaxBackoff caps the wait between retries while Redis or the database
	// fails, and so how soon a paused consumer notices that its database is
	// back (default 5s).
	MaxBackoff time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Telemetry receives the process spans and the consumer's metrics
	// (default: the global providers).
	Telemetry telemetry.Providers
}

func (c ConsumerConfig) withDefaults() ConsumerConfig {
	if c.Name == "" {
		c.Name, _ = os.Hostname()
		c.Name = cmp.Or(c.Name, "consumer")
	}
	c.Block = cmp.Or(c.Block, time.Second)
	c.Batch = cmp.Or(c.Batch, 64)
	c.HandlerTimeout = cmp.Or(c.HandlerTimeout, 30*time.Second)
	c.ClaimIdle = cmp.Or(c.ClaimIdle, c.HandlerTimeout)
	c.ClaimInterval = cmp.Or(c.ClaimInterval, c.ClaimIdle/2)
	c.MaxDeliveries = cmp.Or(c.MaxDeliveries, 5)
	c.DLQMaxLen = cmp.Or(c.DLQMaxLen, 100_000)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, 5*time.Second)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

// DLQ names the dead-letter stream of stream.
func DLQ(stream string) string { return stream + ".dlq" }

// The fields a dead-letter entry adds to those of the original entry.
const (
	FieldReason     = "reason"
	FieldGroup      = "group"
	FieldDeliveries = "deliveries"
	FieldOriginalID = "original_id"
)

// Consumer reads one stream as one member of a consumer group.
type Consumer struct {
	db      *bun.DB
	rdb     redis.UniversalClient
	cfg     ConsumerConfig
	handler Handler
	log     *slog.Logger
	tracer  trace.Tracer
	meter   metric.Meter
	metrics consumerMetrics

	groupReady bool
	nextClaim  time.Time

	// held are the entries whose handler failed transiently, in stream
	// order: while there are any the consumer is paused (see the package
	// documentation).
	held       []heldEntry
	pausedAt   time.Time
	keptAt     time.Time
	holdRetry  messaging.Backoff
	holdReason error

	// afterCommit is a test hook: it runs between a handler's commit and
	// the ack, and an error skips the ack, as a crash there would.
	afterCommit func(entryID string) error

	// unacked are entries whose effect committed, to be acknowledged with
	// the next read (see next) or by flushAcks.
	unacked []string
}

// NewConsumer returns a consumer that runs h for each message of cfg.Stream.
func NewConsumer(db *bun.DB, rdb redis.UniversalClient, cfg ConsumerConfig, h Handler) *Consumer {
	cfg = cfg.withDefaults()
	c := &Consumer{
		db:      db,
		rdb:     rdb,
		cfg:     cfg,
		handler: h,
		log:     cfg.Logger.With("stream", cfg.Stream, "group", cfg.Group, "consumer", cfg.Name),
		tracer:  cfg.Telemetry.TracerProvider().Tracer(scope),
		meter:   cfg.Telemetry.MeterProvider().Meter(scope),
	}
	c.metrics = newConsumerMetrics(c.meter)
	return c
}

const scope = "shop/services/platform/stream"

// Run consumes until ctx ends; call it once per Consumer. It then stops reading, lets the message in
// hand finish and acknowledges it if it committed, and returns nil. Failures
// of Redis or the database are logged and retried; only a configuration
// error is returned.
func (c *Consumer) Run(ctx context.Context) error {
	if c.cfg.Stream == "" || c.cfg.Group == "" || c.handler == nil {
		return errors.New("stream consumer: Stream, Group and a handler are required")
	}
	if reg, err := c.observePending(); err != nil {
		c.log.WarnContext(ctx, "pending entries metrics", "error", err)
	} else {
		defer reg.Unregister()
	}
	c.metrics.paused.Record(ctx, 0, c.attrs())
	backoff := messaging.Backoff{Max: c.cfg.MaxBackoff}
	for ctx.Err() == nil {
		if err := c.step(ctx); err != nil {
			if ctx.Err() == nil {
				c.log.ErrorContext(ctx, "consume stream", "error", err)
				messaging.Sleep(ctx, backoff.Next())
			}
			continue
		}
		backoff.Reset()
	}
	c.flushAcks(context.WithoutCancel(ctx))
	return nil
}

// step makes sure the group exists, takes over idle entries when it is time,
// and reads new entries.
func (c *Consumer) step(ctx context.Context) error {
	if len(c.held) > 0 {
		c.retryHeld(ctx)
		c.flushAcks(context.WithoutCancel(ctx))
		return nil
	}
	if !c.groupReady {
		if err := c.createGroup(ctx); err != nil {
			return err
		}
		c.groupReady = true
	}
	if !time.Now().Before(c.nextClaim) {
		if err := c.reclaim(ctx); err != nil {
			return c.checkGroup(err)
		}
		c.nextClaim = time.Now().Add(c.cfg.ClaimInterval)
	}
	return c.checkGroup(c.read(ctx))
}

// createGroup creates the group at the start of the stream, so messages
// published before the group existed are consumed too.
func (c *Consumer) createGroup(ctx context.Context) error {
	err := c.rdb.XGroupCreateMkStream(ctx, c.cfg.Stream, c.cfg.Group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return fmt.Errorf("create group: %w", err)
	}
	return nil
}

// checkGroup notes a missing group (Redis lost its data, or the stream was
// deleted) so the next step creates it again.
func (c *Consumer) checkGroup(err error) error {
	if redis.HasErrorPrefix(err, "NOGROUP") {
		c.groupReady = false
	}
	return err
}

// read takes new entries and processes them.
func (c *Consumer) read(ctx context.Context) error {
	entries, err := c.next(ctx)
	if err != nil {
		return err
	}
	return failedError(c.processBatch(ctx, entries))
}

// next reads new entries. The acknowledgements of what committed since the
// last read go with it, in one round trip with a read that does not wait;
// only if that finds nothing does a second read wait up to Block. Under
// load, when entries are waiting, each batch then costs one round trip to
// Redis for its ack and the next batch instead of two.
func (c *Consumer) next(ctx context.Context) ([]redis.XMessage, error) {
	args := &redis.XReadGroupArgs{
		Group:    c.cfg.Group,
		Consumer: c.cfg.Name,
		Streams:  []string{c.cfg.Stream, ">"},
		Count:    int64(c.cfg.Batch),
		Block:    c.cfg.Block,
	}
	if len(c.unacked) > 0 {
		ids := c.unacked
		c.unacked = nil
		// Neither command waits, so the round trip is seen through even
		// when ctx ends: the acks must not be lost to it.
		detached := context.WithoutCancel(ctx)
		pipe := c.rdb.Pipeline()
		ack := pipe.XAck(detached, c.cfg.Stream, c.cfg.Group, ids...)
		ready := *args
		ready.Block = -1 // no BLOCK: answer at once
		read := pipe.XReadGroup(detached, &ready)
		_, _ = pipe.Exec(detached) // each command's error is its own
		if err := ack.Err(); err != nil {
			c.ackFailed(ctx, ids, err)
		}
		entries, err := streamEntries(read.Result())
		if err != nil || len(entries) > 0 || ctx.Err() != nil {
			return entries, err
		}
	}
	return streamEntries(c.rdb.XReadGroup(ctx, args).Result())
}

// streamEntries are the entries of an XREADGROUP answer; none when the
// read timed out (redis.Nil).
func streamEntries(streams []redis.XStream, err error) ([]redis.XMessage, error) {
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read group: %w", err)
	}
	var entries []redis.XMessage
	for _, s := range streams {
		entries = append(entries, s.Messages...)
	}
	return entries, nil
}

// processBatch applies newly delivered entries in one transaction, commits
// once and acknowledges them with one XACK: a commit (a WAL flush) per batch
// rather than per message. If the batch fails, each entry is applied alone,
// so one failing message neither holds back nor fails the others. It
// returns how many entries were left pending for another delivery.
func (c *Consumer) processBatch(ctx context.Context, entries []redis.XMessage) (failed int) {
	ctx = context.WithoutCancel(ctx) // entries in hand are seen through
	var batch []redis.XMessage
	var msgs []messaging.Message
	for _, entry := range entries {
		msg, err := messaging.Decode(c.cfg.Stream, entry.Values)
		if err != nil {
			c.deadLetter(ctx, entry, 1, "malformed entry: "+err.Error())
			continue
		}
		batch, msgs = append(batch, entry), append(msgs, msg)
	}
	if len(batch) <= 1 {
		return c.processEach(ctx, batch, nil)
	}
	err := c.apply(ctx, msgs)
	if err != nil {
		c.metrics.failed.Add(ctx, 1, c.attrs(errorType(err)...))
		if transient.Is(err) {
			// Nothing in the batch is at fault: keep it all for later.
			c.hold(ctx, err, batch, nil)
			return 0
		}
		c.log.WarnContext(ctx, "batch rolled back, applying its messages one by one", "size", len(batch), "error", err)
		return c.processEach(ctx, batch, nil)
	}
	c.metrics.processed.Add(ctx, int64(len(batch)), c.attrs())
	ids := make([]string, 0, len(batch))
	for _, entry := range batch {
		if c.afterCommit != nil && c.afterCommit(entry.ID) != nil {
			continue
		}
		ids = append(ids, entry.ID)
	}
	c.ack(ids...)
	return 0
}

// reclaim takes over the entries idle longer than ClaimIdle, whoever holds
// them (a crashed consumer, or this one after a failed handler), and
// processes them again.
func (c *Consumer) reclaim(ctx context.Context) error {
	var failed int
	for start := "0-0"; ctx.Err() == nil; {
		entries, next, deleted, err := c.rdb.XAutoClaimWithDeleted(ctx, &redis.XAutoClaimArgs{
			Stream:   c.cfg.Stream,
			Group:    c.cfg.Group,
			Consumer: c.cfg.Name,
			MinIdle:  c.cfg.ClaimIdle,
			Start:    start,
			Count:    int64(c.cfg.Batch),
		}).Result()
		if err != nil {
			return fmt.Errorf("claim idle entries: %w", err)
		}
		for _, id := range deleted {
			c.deadLetterDeleted(ctx, id)
		}
		deliveries, err := c.deliveries(ctx, entries)
		if err != nil {
			return err
		}
		var todo []redis.XMessage
		var counts []int64
		for _, entry := range entries {
			n, pending := deliveries[entry.ID]
			switch {
			case !pending: // acknowledged meanwhile
			case n > c.cfg.MaxDeliveries:
				c.deadLetter(ctx, entry, n, fmt.Sprintf("delivered %d times, never acknowledged (max %d)", n, c.cfg.MaxDeliveries))
			default:
				todo, counts = append(todo, entry), append(counts, n)
			}
		}
		failed += c.processEach(ctx, todo, counts)
		if len(c.held) > 0 {
			break // paused: the rest stays idle until the database is back
		}
		if next == "0-0" || next == "" {
			break
		}
		start = next
	}
	return failedError(failed)
}

// deliveries looks up how often each entry was delivered, counting the
// claim that just took it.
func (c *Consumer) deliveries(ctx context.Context, entries []redis.XMessage) (map[string]int64, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.XPendingExtCmd, len(entries))
	for i, entry := range entries {
		cmds[i] = pipe.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: c.cfg.Stream, Group: c.cfg.Group, Start: entry.ID, End: entry.ID, Count: 1,
		})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("delivery counts: %w", err)
	}
	counts := make(map[string]int64, len(entries))
	for _, cmd := range cmds {
		for _, p := range cmd.Val() {
			if p.Consumer == c.cfg.Name {
				counts[p.ID] = p.RetryCount
			}
		}
	}
	return counts, nil
}

// processEach processes entries one at a time, each delivered counts[i]
// times (nil: once). After a transient failure it holds that entry and
// the rest untried. It returns how many were left pending for redelivery.
func (c *Consumer) processEach(ctx context.Context, entries []redis.XMessage, counts []int64) (failed int) {
	for i, entry := range entries {
		n := int64(1)
		if counts != nil {
			n = counts[i]
		}
		switch err := c.process(ctx, entry, n); {
		case err == nil:
		case transient.Is(err):
			var rest []int64
			if counts != nil {
				rest = counts[i:]
			}
			c.hold(ctx, err, entries[i:], rest)
			return failed
		default:
			failed++
		}
	}
	return failed
}

// process runs the handler for one entry that was delivered n times, and
// acknowledges or dead-letters it. It returns the handler's error when the
// entry is left pending: for another delivery, or, if the error is
// transient, to be held.
func (c *Consumer) process(ctx context.Context, entry redis.XMessage, n int64) error {
	// An entry in hand is seen through even when ctx ends: finishing it is
	// quicker than another consumer reclaiming it after ClaimIdle.
	ctx = context.WithoutCancel(ctx)
	msg, err := messaging.Decode(c.cfg.Stream, entry.Values)
	if err != nil {
		c.deadLetter(ctx, entry, n, "malformed entry: "+err.Error())
		return nil
	}
	if n > 1 {
		c.metrics.redelivered.Add(ctx, 1, c.attrs())
	}
	err = c.apply(ctx, []messaging.Message{msg})
	if err == nil {
		c.metrics.processed.Add(ctx, 1, c.attrs())
	} else {
		c.metrics.failed.Add(ctx, 1, c.attrs(errorType(err)...))
	}
	switch {
	case err == nil:
		if c.afterCommit != nil && c.afterCommit(entry.ID) != nil {
			return nil
		}
		c.ack(entry.ID)
	case IsPermanent(err):
		c.deadLetter(ctx, entry, n, err.Error())
	case transient.Is(err):
		// Not the message's fault: never counted, never dead-lettered.
		return err
	case n >= c.cfg.MaxDeliveries:
		c.deadLetter(ctx, entry, n, fmt.Sprintf("failed %d deliveries, last: %v", n, err))
	default:
		c.log.WarnContext(ctx, "message failed, left for redelivery",
			"message_id", msg.ID, "entry_id", entry.ID, "deliveries", n, "error", err)
		return err
	}
	return nil
}

// apply runs the handler for msgs in one transaction with their inbox
// records, each message under a process span that is a child of the
// relay's publish span, and records the run's duration in the trace of the
// first message (the exemplar of a slow bucket leads to it). A message
// processed before is a success that changes nothing.
func (c *Consumer) apply(ctx context.Context, msgs []messaging.Message) (err error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HandlerTimeout)
	defer cancel()
	// What the handler leaves for after the commit (database.AfterCommit),
	// such as waking the outbox relay when it wrote messages, runs once
	// the transaction has committed, before the entries are acknowledged.
	ctx, ended := database.WithAfterCommit(ctx)
	defer func() { ended(err == nil) }()
	batch := make([]Delivery, len(msgs))
	spans := make([]trace.Span, len(msgs))
	entries := make([]inbox.Entry, len(msgs))
	var first context.Context
	for i, msg := range msgs {
		mctx, span := c.startProcessSpan(ctx, msg)
		if i == 0 {
			first = mctx
		}
		batch[i], spans[i] = NewDelivery(span, msg), span
		entries[i] = inbox.Entry{ID: msg.ID, Type: msg.Type}
	}
	defer func() {
		c.metrics.duration.Record(first, time.Since(start).Seconds(), c.attrs(errorType(err)...))
		for _, span := range spans {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, "handler failed")
			}
			span.End()
		}
	}()
	run := func(ctx context.Context, tx bun.IDB, fresh []bool) error {
		todo := make([]Delivery, 0, len(batch))
		for i, d := range batch {
			if fresh[i] {
				todo = append(todo, d)
			} else {
				spans[i].AddEvent("duplicate message skipped")
			}
		}
		if len(todo) == 0 {
			return nil
		}
		return c.runHandler(ctx, tx, todo)
	}
	// The transaction's statements appear in the trace of the first message.
	if database.IsPostgres(c.db) {
		// The inbox records go with BEGIN, saving a round trip per batch.
		open, fresh := inbox.Recording(entries)
		return database.RunInTxOpening(first, c.db, open, func(ctx context.Context, tx bun.IDB) error {
			return run(ctx, tx, fresh())
		})
	}
	return c.db.RunInTx(first, nil, func(ctx context.Context, tx bun.Tx) error {
		fresh, err := inbox.RecordAll(ctx, tx, entries)
		if err != nil {
			return err
		}
		return run(ctx, tx, fresh)
	})
}

// startProcessSpan starts the process span of msg: a child of the relay's
// publish span, with the messaging attributes.
func (c *Consumer) startProcessSpan(ctx context.Context, msg messaging.Message) (context.Context, trace.Span) {
	return c.tracer.Start(msg.ContextWithTrace(ctx), c.cfg.Stream+" process",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String("redis"),
			semconv.MessagingDestinationName(c.cfg.Stream),
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingMessageID(msg.ID.String()),
			semconv.MessagingConsumerGroupName(c.cfg.Group),
		))
}

// runHandler turns a handler's panic into an error, so one bad message
// rolls back and is retried or dead-lettered rather than crashing the
// service on every redelivery.
func (c *Consumer) runHandler(ctx context.Context, tx bun.IDB, batch []Delivery) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	return c.handler(ctx, tx, batch)
}

// ack notes entries whose effect committed, for the next read to
// acknowledge (or flushAcks, when no read follows at once). If the ack
// fails, or the process stops before it is sent, the entries are reclaimed
// later, and the inbox absorbs the second delivery.
func (c *Consumer) ack(ids ...string) {
	c.unacked = append(c.unacked, ids...)
}

// flushAcks acknowledges the entries ack noted, on their own.
func (c *Consumer) flushAcks(ctx context.Context) {
	if len(c.unacked) == 0 {
		return
	}
	ids := c.unacked
	c.unacked = nil
	if err := c.rdb.XAck(ctx, c.cfg.Stream, c.cfg.Group, ids...).Err(); err != nil {
		c.ackFailed(ctx, ids, err)
	}
}

func (c *Consumer) ackFailed(ctx context.Context, ids []string, err error) {
	c.log.WarnContext(ctx, "ack committed messages", "entry_ids", ids, "error", err)
}

// deadLetter copies an entry to the dead-letter stream with why it failed,
// and acknowledges it, both in one MULTI so that it is never lost between
// the two nor dead-lettered twice.
func (c *Consumer) deadLetter(ctx context.Context, entry redis.XMessage, deliveries int64, reason string) {
	values := maps.Clone(entry.Values)
	if values == nil {
		values = map[string]any{}
	}
	values[FieldReason] = reason
	values[FieldGroup] = c.cfg.Group
	values[FieldDeliveries] = deliveries
	values[FieldOriginalID] = entry.ID
	_, err := c.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: DLQ(c.cfg.Stream), MaxLen: c.cfg.DLQMaxLen, Approx: true, Values: values})
		pipe.XAck(ctx, c.cfg.Stream, c.cfg.Group, entry.ID)
		return nil
	})
	if err != nil {
		c.log.ErrorContext(ctx, "dead-letter message", "entry_id", entry.ID, "reason", reason, "error", err)
		return
	}
	c.metrics.deadLettered.Add(ctx, 1, c.attrs())
	c.log.ErrorContext(ctx, "message dead-lettered", "entry_id", entry.ID, "dlq", DLQ(c.cfg.Stream),
		"deliveries", deliveries, "reason", reason)
}

// deadLetterDeleted records an entry that was deleted from the stream while
// still pending, which XAUTOCLAIM reports (and drops from the group). Its
// content is gone; the dead-letter entry says which one it was.
func (c *Consumer) deadLetterDeleted(ctx context.Context, id string) {
	c.deadLetter(ctx, redis.XMessage{ID: id}, 0, "deleted from the stream before it was acknowledged")
}

func failedError(n int) error {
	if n == 0 {
		return nil
	}
	// Reported so the loop backs off: when the database is down every
	// handler fails, and reading on at full speed would help nobody.
	return fmt.Errorf("%d messages failed and wait for redelivery", n)
}
