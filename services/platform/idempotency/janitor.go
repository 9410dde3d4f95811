package idempotency

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
	// TTL is how long a recorded answer is kept (default DefaultTTL); it
	// should be the TTL of the service's Keys.
	TTL time.Duration
	// Interval is how often the janitor runs (default 10m).
	Interval time.Duration
	// Batch bounds the rows one DELETE removes (default 1000).
	Batch int
	// Logger receives errors (default slog.Default()).
	Logger *slog.Logger
}

func (c JanitorConfig) withDefaults() JanitorConfig {
	c.TTL = cmp.Or(c.TTL, DefaultTTL)
	c.Interval = cmp.Or(c.Interval, 10*time.Minute)
	c.Batch = cmp.Or(c.Batch, 1000)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

// Janitor keeps the idempotency_keys table bounded by deleting expired
// keys.
type Janitor struct {
	db   bun.IDB
	opts JanitorConfig
}

// NewJanitor returns a janitor for the idempotency_keys table of db.
func NewJanitor(db bun.IDB, cfg JanitorConfig) *Janitor {
	return &Janitor{db: db, opts: cfg.withDefaults()}
}

// Run deletes expired keys every Interval until ctx ends, then returns
// nil. Errors are logged and retried at the next interval.
func (j *Janitor) Run(ctx context.Context) error {
	messaging.Every(ctx, j.opts.Interval, func(ctx context.Context) {
		if _, err := DeleteCreatedBefore(ctx, j.db, time.Now().Add(-j.opts.TTL), j.opts.Batch); err != nil && ctx.Err() == nil {
			j.opts.Logger.WarnContext(ctx, "delete expired idempotency keys", "error", err)
		}
	})
	return nil
}

// DeleteCreatedBefore deletes the keys recorded before t, about batch rows
// per statement, and reports how many it deleted.
func DeleteCreatedBefore(ctx context.Context, db bun.IDB, t time.Time, batch int) (int64, error) {
	// The primary key has three columns; created_at picks the same rows
	// (every row with a selected time is older than t too).
	n, err := database.DeleteInBatches(ctx, db, "idempotency_keys", "created_at", "created_at", batch, "created_at < ?", t.UTC())
	if err != nil {
		return n, fmt.Errorf("delete expired idempotency keys: %w", err)
	}
	return n, nil
}
