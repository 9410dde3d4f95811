// Package messaging defines the message that travels between the services:
// written to a transactional outbox, carried on a Redis stream, and accepted
// once through a transactional inbox.
package messaging

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Message is one event or command between services.
type Message struct {
	// ID (UUIDv7) is the deduplication key: a consumer applies a message
	// with a given ID at most once.
	ID uuid.UUID
	// Stream is the Redis stream the message is published to.
	Stream string
	// Type names the payload's shape, e.g. "payment.requested".
	Type string
	// Payload is the message body as JSON.
	Payload json.RawMessage
	// Traceparent and Tracestate carry the W3C trace context of the
	// transaction that wrote the message, so its consumer continues the trace.
	Traceparent string
	Tracestate  string
	// OccurredAt is when the message was written to the outbox.
	OccurredAt time.Time
}
