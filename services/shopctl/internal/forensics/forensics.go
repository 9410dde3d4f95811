// Package forensics gathers what the shop knows about one order, from both
// services' databases and the streams: the order, its payment outcome and
// debit, the outbox rows that carried its requests and results and whether
// each was published, the inbox records of those messages, the dead
// letters that mention it, and its traces. It only reads.
package forensics

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"shop/services/contract"
	"shop/services/platform/messaging"
	"shop/services/shopctl/internal/deadletter"
)

// ErrNotFound means the orders database holds no such order.
var ErrNotFound = errors.New("no such order")

// Order is an order as the orders database holds it.
type Order struct {
	ID                 uuid.UUID `bun:"id"`
	UserID             int64     `bun:"user_id"`
	Amount             int64     `bun:"amount"`
	Description        string    `bun:"description"`
	Status             string    `bun:"status"`
	CancelReason       *string   `bun:"cancel_reason"`
	CreatedAt          time.Time `bun:"created_at"`
	UpdatedAt          time.Time `bun:"updated_at"`
	PaymentRequests    int       `bun:"payment_requests"`
	PaymentRequestedAt time.Time `bun:"payment_requested_at"`
	PaymentRetryAt     time.Time `bun:"payment_retry_at"`
	// Traceparent is the W3C trace context of the order's first payment
	// request, which the requests sent again continue.
	Traceparent string `bun:"payment_traceparent"`
}

// Payment is the outcome the payments database recorded for the order.
type Payment struct {
	Status    string    `bun:"status"`
	Reason    string    `bun:"reason"`
	UserID    int64     `bun:"user_id"`
	Amount    int64     `bun:"amount"`
	CreatedAt time.Time `bun:"created_at"`
}

// Debit is the ledger entry that debited the payer for the order.
type Debit struct {
	ID        uuid.UUID `bun:"id"`
	Amount    int64     `bun:"amount"`
	CreatedAt time.Time `bun:"created_at"`
}

// Message is an outbox row that carried a request or result of the order,
// with the inbox record of the service that consumed it.
type Message struct {
	Service     string // whose outbox: orders or payments
	ID          uuid.UUID
	Stream      string
	Type        string
	Payload     string
	Traceparent string
	OccurredAt  time.Time
	PublishedAt *time.Time
	// ProcessedAt is when the consumer applied it (its inbox record);
	// nil when it has not, or its record is past the inbox retention.
	ProcessedAt *time.Time
}

// TraceID is the trace the message belongs to, "" when it carries none.
func (m Message) TraceID() string { return traceID(m.Traceparent) }

// TraceID is the order's trace, "" when it has none recorded.
func (o Order) TraceID() string { return traceID(o.Traceparent) }

// traceID is the trace id of a W3C traceparent.
func traceID(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 {
		return ""
	}
	return parts[1]
}

// Report is all the shop knows about one order.
type Report struct {
	Order    Order
	Payment  *Payment // nil: payments has not decided (or was not asked)
	Debit    *Debit
	Messages []Message // oldest first
	// DeadLetters mention the order in their payload.
	DeadLetters []deadletter.Letter
}

// TraceIDs lists the order's trace and any other its messages are in,
// each once: all of them are in the order's trace unless it was created
// before orders recorded it, or a message came from elsewhere.
func (r Report) TraceIDs() []string {
	var ids []string
	seen := map[string]bool{}
	if id := r.Order.TraceID(); id != "" {
		seen[id] = true
		ids = append(ids, id)
	}
	for _, m := range r.Messages {
		if id := m.TraceID(); id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// Gather reads the order id from the orders database, its payment from the
// payments database, and the dead letters of both streams from rdb. Outbox
// rows are found by the order id in their payload (a scan of the outbox,
// which the relay's janitor keeps to a day of rows); rows and inbox records
// past their retention are gone.
func Gather(ctx context.Context, ordersDB, paymentsDB bun.IDB, rdb redis.UniversalClient, id uuid.UUID) (Report, error) {
	var r Report
	err := ordersDB.NewRaw(`SELECT id, user_id, amount, description, status, cancel_reason, created_at, updated_at,
		payment_requests, payment_requested_at, payment_retry_at, payment_traceparent FROM orders WHERE id = ?`, id).Scan(ctx, &r.Order)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("order %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("read the order: %w", err)
	}

	var p []Payment
	if err := paymentsDB.NewRaw(`SELECT status, reason, user_id, amount, created_at FROM payments WHERE order_id = ?`, id).Scan(ctx, &p); err != nil {
		return r, fmt.Errorf("read the payment: %w", err)
	}
	if len(p) > 0 {
		r.Payment = &p[0]
	}
	var d []Debit
	if err := paymentsDB.NewRaw(`SELECT id, amount, created_at FROM ledger WHERE order_id = ? AND kind = 'debit'`, id).Scan(ctx, &d); err != nil {
		return r, fmt.Errorf("read the ledger: %w", err)
	}
	if len(d) > 0 {
		r.Debit = &d[0]
	}

	// Requests leave orders and are applied by payments; results the other way.
	requests, err := messages(ctx, "orders", ordersDB, paymentsDB, id)
	if err != nil {
		return r, err
	}
	results, err := messages(ctx, "payments", paymentsDB, ordersDB, id)
	if err != nil {
		return r, err
	}
	r.Messages = merge(requests, results)

	for _, s := range []string{contract.PaymentRequestsStream, contract.PaymentResultsStream} {
		letters, _, err := deadletter.List(ctx, rdb, s, 0)
		if err != nil {
			return r, err
		}
		for _, l := range letters {
			if strings.Contains(l.Message[messaging.FieldPayload], id.String()) {
				r.DeadLetters = append(r.DeadLetters, l)
			}
		}
	}
	return r, nil
}

type outboxRow struct {
	ID          uuid.UUID  `bun:"id"`
	Stream      string     `bun:"stream"`
	Type        string     `bun:"type"`
	Payload     string     `bun:"payload"`
	Traceparent string     `bun:"traceparent"`
	OccurredAt  time.Time  `bun:"occurred_at"`
	PublishedAt *time.Time `bun:"published_at"`
}

type inboxRow struct {
	MessageID   uuid.UUID `bun:"message_id"`
	ProcessedAt time.Time `bun:"processed_at"`
}

// messages returns the rows of from's outbox that name order id, oldest
// first, with the inbox records of to, their consumer.
func messages(ctx context.Context, service string, from, to bun.IDB, id uuid.UUID) ([]Message, error) {
	var rows []outboxRow
	err := from.NewRaw(`SELECT id, stream, type, payload, traceparent, occurred_at, published_at FROM outbox
		WHERE payload LIKE ? ORDER BY id`, "%"+id.String()+"%").Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("read the %s outbox: %w", service, err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]uuid.UUID, len(rows))
	for i, row := range rows {
		ids[i] = row.ID
	}
	var inbox []inboxRow
	if err := to.NewRaw(`SELECT message_id, processed_at FROM inbox WHERE message_id IN (?)`, bun.In(ids)).Scan(ctx, &inbox); err != nil {
		return nil, fmt.Errorf("read the inbox: %w", err)
	}
	processed := map[uuid.UUID]time.Time{}
	for _, in := range inbox {
		processed[in.MessageID] = in.ProcessedAt
	}
	out := make([]Message, len(rows))
	for i, row := range rows {
		out[i] = Message{Service: service, ID: row.ID, Stream: row.Stream, Type: row.Type, Payload: row.Payload,
			Traceparent: row.Traceparent, OccurredAt: row.OccurredAt, PublishedAt: row.PublishedAt}
		if at, ok := processed[row.ID]; ok {
			out[i].ProcessedAt = &at
		}
	}
	return out, nil
}

// merge orders the messages of both outboxes by time (their ids are
// UUIDv7s, but of two clocks).
func merge(a, b []Message) []Message {
	out := make([]Message, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if !b[0].OccurredAt.Before(a[0].OccurredAt) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return append(append(out, a...), b...)
}
