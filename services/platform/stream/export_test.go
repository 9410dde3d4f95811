package stream

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/trace"

	"shop/services/platform/messaging"
)

// Each makes a Handler of fn, which applies one message at a time in the
// trace of its process span.
func Each(fn func(ctx context.Context, tx bun.IDB, msg messaging.Message) error) Handler {
	return func(ctx context.Context, tx bun.IDB, batch []Delivery) error {
		for _, d := range batch {
			if err := fn(trace.ContextWithSpanContext(ctx, d.Trace), tx, d.Message); err != nil {
				return fmt.Errorf("message %s: %w", d.ID, err)
			}
		}
		return nil
	}
}

// SetAfterCommit makes c call f between a handler's commit and the ack; an
// error from f skips the ack, as a crash there would.
func SetAfterCommit(c *Consumer, f func(entryID string) error) { c.afterCommit = f }
