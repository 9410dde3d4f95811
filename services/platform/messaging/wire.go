package messaging

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// The fields of a message's stream entry: the wire format between a relay
// and a consumer.
const (
	FieldID          = "id"
	FieldType        = "type"
	FieldPayload     = "payload"
	FieldTraceparent = "traceparent"
	FieldTracestate  = "tracestate"
	FieldOccurredAt  = "occurred_at"
)

// Values returns the fields of m's stream entry. The stream itself is the
// entry's key, so it is not among them.
func (m Message) Values() map[string]any {
	return map[string]any{
		FieldID:          m.ID.String(),
		FieldType:        m.Type,
		FieldPayload:     string(m.Payload),
		FieldTraceparent: m.Traceparent,
		FieldTracestate:  m.Tracestate,
		FieldOccurredAt:  m.OccurredAt.UTC().Format(time.RFC3339Nano),
	}
}

// Decode reads the message of a stream entry with the given fields, as
// written by Values. An entry that is not a well-formed message is an error:
// no retry can fix it.
func Decode(stream string, values map[string]any) (Message, error) {
	field := func(name string) string {
		s, _ := values[name].(string)
		return s
	}
	msg := Message{
		Stream:      stream,
		Type:        field(FieldType),
		Payload:     json.RawMessage(field(FieldPayload)),
		Traceparent: field(FieldTraceparent),
		Tracestate:  field(FieldTracestate),
	}
	var errs []error
	id, err := uuid.Parse(field(FieldID))
	if err != nil {
		errs = append(errs, fmt.Errorf("field %s: %w", FieldID, err))
	}
	msg.ID = id
	if msg.Type == "" {
		errs = append(errs, fmt.Errorf("field %s: missing", FieldType))
	}
	if !json.Valid(msg.Payload) {
		errs = append(errs, fmt.Errorf("field %s: not JSON", FieldPayload))
	}
	at, err := time.Parse(time.RFC3339Nano, field(FieldOccurredAt))
	if err != nil {
		errs = append(errs, fmt.Errorf("field %s: %w", FieldOccurredAt, err))
	}
	msg.OccurredAt = at
	return msg, errors.Join(errs...)
}
