// Package outbox is the transactional outbox: a service writes messages in
// the same database transaction as the state change they announce, and a
// relay publishes them to Redis Streams afterwards, at least once.
package outbox

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"shop/services/platform/database"
	"shop/services/platform/messaging"
	"shop/services/platform/telemetry"
)

// NotifyChannel is the PostgreSQL LISTEN/NOTIFY channel an insert into the
// outbox signals on commit, so a relay publishes without waiting for a poll.
const NotifyChannel = "outbox"

// Row is a row of the outbox table, which messaging.Migrations creates.
type Row struct {
	bun.BaseModel `bun:"table:outbox"`

	ID          uuid.UUID  `bun:"id,pk,type:uuid"`
	Stream      string     `bun:"stream,notnull"`
	Type        string     `bun:"type,notnull"`
	Payload     string     `bun:"payload,notnull"`
	Traceparent string     `bun:"traceparent,notnull"`
	Tracestate  string     `bun:"tracestate,notnull"`
	OccurredAt  time.Time  `bun:"occurred_at,notnull"`
	PublishedAt *time.Time `bun:"published_at"`
}

// Message converts the row to the message it carries.
func (r *Row) Message() messaging.Message {
	return messaging.Message{
		ID: r.ID, Stream: r.Stream, Type: r.Type, Payload: []byte(r.Payload),
		Traceparent: r.Traceparent, Tracestate: r.Tracestate, OccurredAt: r.OccurredAt,
	}
}

// Config configures an Outbox. The zero value is sensible.
type Config struct {
	// Telemetry receives the "outbox insert" spans (default: the global
	// providers).
	Telemetry telemetry.Providers
}

// Outbox writes messages into a service's outbox table and wakes the relay
// of the same process when it does.
type Outbox struct {
	db       *bun.DB
	tracer   trace.Tracer
	wake     chan struct{}
	notified atomic.Int64 // when Notify last sent a NOTIFY, in Unix nanoseconds
	relays   atomic.Int32 // relays running on this outbox in this process
}

// New returns the outbox of db.
func New(db *bun.DB, cfg Config) *Outbox {
	return &Outbox{db: db, tracer: cfg.Telemetry.TracerProvider().Tracer(scope), wake: make(chan struct{}, 1)}
}

// Pending is a message to add with the trace of the work that produced it:
// the message continues that trace (none: the trace of the context passed
// to AddAll). A batch of messages has one trace each, since each may belong
// to a request or message of its own.
type Pending struct {
	Trace trace.SpanContext
	messaging.Message
}

// AddAll writes the messages in tx with one statement, the transaction of
// the state change they announce, each under an "outbox insert" span of its
// own trace; ctx carries the statement's deadline. A zero ID becomes a new
// UUIDv7 and a zero OccurredAt becomes now (kept to the microsecond). It
// returns the stored messages. Call Notify once tx has committed (not
// needed under database.WithAfterCommit: see Insert).
func (o *Outbox) AddAll(ctx context.Context, tx bun.IDB, pending []Pending) ([]messaging.Message, error) {
	if len(pending) == 0 {
		return nil, nil
	}
	ins, err := o.Insert(ctx, tx, pending)
	if err != nil {
		return nil, err
	}
	if database.IsPostgres(tx) {
		_, err = addStatement.Exec(ctx, tx, ins.Args()...)
	} else {
		_, err = ins.Query.Exec(ctx)
	}
	ins.Done(err)
	if err != nil {
		return nil, fmt.Errorf("insert %d outbox messages: %w", len(pending), err)
	}
	return ins.Messages, nil
}

// Insert is AddAll's statement, not yet sent: for a writer that sends it as
// part of a statement of its own, such as a data-modifying WITH clause on
// PostgreSQL (query.With("outbox", ins.Query)), to save a round trip. The
// writer calls Done with the outcome of its statement, which ends the
// messages' "outbox insert" spans.
type Insert struct {
	// Query inserts the messages' rows.
	Query *bun.InsertQuery
	// Messages are the messages as they are stored, one per Pending.
	Messages []messaging.Message
	rows     []Row
	spans    []trace.Span
}

// Done ends the spans of the messages, marked failed if err is not nil.
func (ins *Insert) Done(err error) {
	for _, span := range ins.spans {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "outbox insert failed")
		}
		span.End()
	}
	ins.spans = nil
}

// Insert prepares the statement that adds pending in tx (see AddAll), each
// message under an "outbox insert" span of its own trace, which the
// caller ends with Done; pending must not be empty. When ctx is that of a
// transaction with after-commit work (database.WithAfterCommit, as a
// stream consumer's handlers run), the relay is woken after its commit,
// and the writer need not call Notify.
func (o *Outbox) Insert(ctx context.Context, tx bun.IDB, pending []Pending) (*Insert, error) {
	now := time.Now()
	ins := &Insert{Messages: make([]messaging.Message, len(pending)), spans: make([]trace.Span, 0, len(pending))}
	rows := make([]Row, len(pending))
	for i, p := range pending {
		msg, err := prepare(p.Message, now)
		if err != nil {
			ins.Done(err)
			return nil, err
		}
		pctx := ctx
		if p.Trace.IsValid() {
			pctx = trace.ContextWithSpanContext(ctx, p.Trace)
		}
		// The insert is a span of the writer's trace, and the context stored
		// is this span's, so the relay's publish span hangs below it.
		mctx, span := o.tracer.Start(pctx, "outbox insert",
			trace.WithAttributes(
				semconv.MessagingSystemKey.String("redis"),
				semconv.MessagingDestinationName(msg.Stream),
				semconv.MessagingOperationTypeCreate,
				semconv.MessagingMessageID(msg.ID.String()),
				attribute.String("messaging.message.type", msg.Type),
			))
		ins.spans = append(ins.spans, span)
		if msg.Traceparent == "" {
			carrier := propagation.MapCarrier{}
			otel.GetTextMapPropagator().Inject(mctx, carrier)
			msg.Traceparent = carrier.Get("traceparent")
			msg.Tracestate = carrier.Get("tracestate")
		}
		ins.Messages[i] = msg
		rows[i] = Row{
			ID: msg.ID, Stream: msg.Stream, Type: msg.Type, Payload: string(msg.Payload),
			Traceparent: msg.Traceparent, Tracestate: msg.Tracestate, OccurredAt: msg.OccurredAt,
		}
	}
	ins.Query = tx.NewInsert().Model(&rows)
	ins.rows = rows
	database.AfterCommit(ctx, func() { o.Notify(ctx) }) // see the doc comment
	return ins, nil
}

// addStatement is AddAll's insert on PostgreSQL, prepared.
var addStatement = database.NewStatement("INSERT", "outbox", InsertSQL(1))

// InsertSQL is the insert of Insert's messages for a prepared statement on
// PostgreSQL (database.Statement): an INSERT from unnest whose seven arrays
// are the statement's parameters first to first+6, which Args gives. Its
// text depends on first alone, so a statement that holds it, as a WITH
// clause or alone, keeps one text for any number of messages.
func InsertSQL(first int) string {
	return "INSERT INTO outbox (id, stream, type, payload, traceparent, tracestate, occurred_at) SELECT * FROM " +
		database.Unnest(first, "uuid", "text", "text", "text", "text", "text", "timestamptz")
}

// Args are the seven arrays InsertSQL inserts: the messages' ids, streams,
// types, payloads, traceparents, tracestates and times; empty ones for a
// nil Insert, which inserts nothing.
func (ins *Insert) Args() []any {
	var rows []Row
	if ins != nil {
		rows = ins.rows
	}
	n := len(rows)
	ids, occurred := make([]uuid.UUID, n), make([]time.Time, n)
	streams, types, payloads, parents, states := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, r := range rows {
		ids[i], streams[i], types[i], payloads[i], parents[i], states[i], occurred[i] = r.ID, r.Stream, r.Type, r.Payload, r.Traceparent, r.Tracestate, r.OccurredAt
	}
	return []any{ids, streams, types, payloads, parents, states, occurred}
}

// prepare gives msg an id and a time if it has none, the time at the
// precision the databases store, so the message returned is the one
// consumers receive.
func prepare(msg messaging.Message, now time.Time) (messaging.Message, error) {
	if msg.ID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return msg, fmt.Errorf("new message id: %w", err)
		}
		msg.ID = id
	}
	if msg.OccurredAt.IsZero() {
		msg.OccurredAt = now
	}
	msg.OccurredAt = msg.OccurredAt.UTC().Truncate(time.Microsecond)
	return msg, nil
}

// Notify tells the relays that messages were committed. Writers call it
// after their commit. It wakes the relay of this process at once; if none
// runs here, on PostgreSQL it wakes the relays of other processes with a
// NOTIFY sent outside any transaction, at most once a millisecond. Two
// costs are avoided: a NOTIFY inside the writer's transaction serialises
// the commits of all notifying transactions on one lock (it cost two thirds
// of the order-creating commit rate), and one per commit when the relay is
// right here is a statement per write for nothing. A missed Notify costs
// latency (the relays' poll), never a message.
func (o *Outbox) Notify(ctx context.Context) {
	o.Signal()
	if o.relays.Load() > 0 || !database.IsPostgres(o.db) {
		return
	}
	now := time.Now().UnixNano()
	last := o.notified.Load()
	if now-last < int64(time.Millisecond) || !o.notified.CompareAndSwap(last, now) {
		return
	}
	if _, err := o.db.ExecContext(context.WithoutCancel(ctx), "SELECT pg_notify(?, '')", NotifyChannel); err != nil {
		slog.WarnContext(ctx, "notify outbox relays", "error", err)
	}
}

// Signal wakes this process's relay; Notify does that and more.
func (o *Outbox) Signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Wake is the channel Signal sends on; the relay selects on it.
func (o *Outbox) Wake() <-chan struct{} { return o.wake }
