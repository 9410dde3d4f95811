package idempotency

import (
	"errors"

	"github.com/danielgtaylor/huma/v2"
)

// KeyInput is the Idempotency-Key header of an operation's input: embed it
// in the input struct. Its tags repeat Header, MaxKeyLength and KeyPattern.
type KeyInput struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" pattern:"^[!-~]+$" example:"8e03978e-40d5-43e8-bc93-6894a57f9324" doc:"Makes a retry safe: the same key with the same request within 24 hours answers the first answer again (with Idempotent-Replayed: true) and takes no second effect. The same key with a different request is 422; while the first request with the key is in progress, 409. Up to 255 printable ASCII characters, no spaces; a quoted structured-field string (\"…\") is taken without its quotes. Keys are per user and operation."`
}

// Replayed is the value of ReplayedHeader for an answer: "true" for a
// replay, "" (no header) otherwise.
func Replayed(replay bool) string {
	if replay {
		return "true"
	}
	return ""
}

// HTTPError maps ErrMismatch to 422 and ErrInFlight to 409, and passes
// other errors through.
func HTTPError(err error) error {
	switch {
	case errors.Is(err, ErrMismatch):
		return huma.Error422UnprocessableEntity(ErrMismatch.Error(),
			&huma.ErrorDetail{Location: "header." + Header, Message: "used before with a different request; use a new key for a new request"})
	case errors.Is(err, ErrInFlight):
		return huma.Error409Conflict(ErrInFlight.Error())
	}
	return err
}
