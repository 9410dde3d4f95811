package inbox

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"shop/services/platform/database"
	"shop/services/platform/messaging"
)

// JanitorOptions tune a Janitor. The zero value is sensible.
type JanitorOptions struct {
	// Retention is how long a processed message's id is kept (default 7
	// days). It must exceed the longest time a message can be delivered
	// again (a stream's redelivery window, a relay republishing after a
	// crash, a client retrying an HTTP call); past it a duplicate would take
	// effect again.
	Retention time.Duration
	// Interval is how often the janitor runs (default 10m).
	Interval time.Duration
	// Batch bounds the rows one DELETE removes (default 1000).
	Batch int
	// Logger receives errors (default slog.Default()).
	Logger *slog.Logger
}

// Janitor keeps the inbox table bounded by deleting old records.
type Janitor struct {
	db   bun.IDB
	opts JanitorOptions
}

// NewJanitor returns a janitor for the inbox table of db.
func NewJanitor(db bun.IDB, opts JanitorOptions) *Janitor {
	if opts.Retention <= 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Minute
	}
	if opts.Batch <= 0 {
		opts.Batch = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Janitor{db: db, opts: opts}
}

// Run deletes expired records every Interval until ctx ends, then returns
// nil. Errors are logged and retried at the next interval.
func (j *Janitor) Run(ctx context.Context) error {
	messaging.Every(ctx, j.opts.Interval, func(ctx context.Context) {
		if _, err := DeleteProcessedBefore(ctx, j.db, time.Now().Add(-j.opts.Retention), j.opts.Batch); err != nil && ctx.Err() == nil {
			j.opts.Logger.WarnContext(ctx, "delete old inbox records", "error", err)
		}
	})
	return nil
}

// DeleteProcessedBefore deletes the records of messages processed before t,
// batch rows per statement, and reports how many it deleted.
func DeleteProcessedBefore(ctx context.Context, db bun.IDB, t time.Time, batch int) (int64, error) {
	n, err := database.DeleteInBatches(ctx, db, "inbox", "message_id", "processed_at", batch, "processed_at < ?", t.UTC())
	if err != nil {
		return n, fmt.Errorf("delete old inbox records: %w", err)
	}
	return n, nil
}
