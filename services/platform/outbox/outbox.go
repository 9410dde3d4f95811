// Package outbox is the transactional outbox: a service writes messages in
// the same database transaction as the state change they announce, and a
// relay publishes them to Redis Streams afterwards, at least once.
package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"shop/services/platform/database"
	"shop/services/platform/messaging"
)

// NotifyChannel is the PostgreSQL LISTEN/NOTIFY channel an insert into the
// outbox signals on commit, so a relay publishes without waiting for a poll.
const NotifyChannel = "outbox"

// Row is the outbox table, created by each service's migrations:
//
//	CREATE TABLE outbox (
//	    id           UUID PRIMARY KEY,
//	    stream       TEXT NOT NULL,
//	    type         TEXT NOT NULL,
//	    payload      TEXT NOT NULL,
//	    traceparent  TEXT NOT NULL DEFAULT '',
//	    tracestate   TEXT NOT NULL DEFAULT '',
//	    occurred_at  TIMESTAMPTZ NOT NULL,
//	    published_at TIMESTAMPTZ
//	);
//	CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
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

// Outbox writes messages into a service's outbox table and wakes the relay
// of the same process when it does.
type Outbox struct {
	db   *bun.DB
	wake chan struct{}
}

// New returns the outbox of db.
func New(db *bun.DB) *Outbox {
	return &Outbox{db: db, wake: make(chan struct{}, 1)}
}

// Add writes msg in tx, the transaction of the state change it announces. A
// zero ID becomes a new UUIDv7 and a zero OccurredAt becomes now (kept to
// the microsecond); the trace context of ctx is stored with the message. Add
// returns the stored message.
func (o *Outbox) Add(ctx context.Context, tx bun.IDB, msg messaging.Message) (messaging.Message, error) {
	if msg.ID == uuid.Nil {
		id, err := uuid.NewV7()
		if err != nil {
			return msg, fmt.Errorf("new message id: %w", err)
		}
		msg.ID = id
	}
	if msg.OccurredAt.IsZero() {
		msg.OccurredAt = time.Now()
	}
	// The precision the databases store, so the message returned is the one
	// consumers receive.
	msg.OccurredAt = msg.OccurredAt.UTC().Truncate(time.Microsecond)
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	if msg.Traceparent == "" {
		msg.Traceparent = carrier.Get("traceparent")
		msg.Tracestate = carrier.Get("tracestate")
	}
	row := &Row{
		ID: msg.ID, Stream: msg.Stream, Type: msg.Type, Payload: string(msg.Payload),
		Traceparent: msg.Traceparent, Tracestate: msg.Tracestate, OccurredAt: msg.OccurredAt,
	}
	if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
		return msg, fmt.Errorf("insert outbox message %s: %w", msg.ID, err)
	}
	if database.IsPostgres(tx) {
		// Delivered to listeners when tx commits, never if it rolls back.
		if _, err := tx.ExecContext(ctx, "SELECT pg_notify(?, '')", NotifyChannel); err != nil {
			return msg, fmt.Errorf("notify outbox: %w", err)
		}
	}
	o.Signal()
	return msg, nil
}

// Signal wakes this process's relay. On SQLite it may run before the commit:
// the relay then waits for the single connection, which the transaction frees
// by committing.
func (o *Outbox) Signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Wake is the channel Signal sends on; the relay selects on it.
func (o *Outbox) Wake() <-chan struct{} { return o.wake }

// DB is the database the outbox lives in.
func (o *Outbox) DB() *bun.DB { return o.db }
