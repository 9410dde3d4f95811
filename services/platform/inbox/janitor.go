package inbox

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"shop/services/platform/database"
	"shop/services/platform/messaging"
)

// JanitorConfig configures a Janitor. The zero value is sensible.
type JanitorConfig struct {
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
	opts JanitorConfig
}

func (c JanitorConfig) withDefaults() JanitorConfig {
	c.Retention = cmp.Or(c.Retention, 7*24*time.Hour)
	c.Interval = cmp.Or(c.Interval, 10*time.Minute)
	c.Batch = cmp.Or(c.Batch, 1000)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

// NewJanitor returns a janitor for the inbox table of db.
func NewJanitor(db bun.IDB, cfg JanitorConfig) *Janitor {
	return &Janitor{db: db, opts: cfg.withDefaults()}
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
