package stream

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"shop/services/platform/messaging"
	"shop/services/platform/transient"
)

// heldEntry is an entry whose handler failed transiently, with how often
// Redis delivered it.
type heldEntry struct {
	entry redis.XMessage
	n     int64
}

// hold keeps entries (delivered counts[i] times; nil: once) after the
// transient failure err, and pauses the consumer if it is not paused yet.
func (c *Consumer) hold(ctx context.Context, err error, entries []redis.XMessage, counts []int64) {
	for i, entry := range entries {
		n := int64(1)
		if counts != nil {
			n = counts[i]
		}
		c.held = append(c.held, heldEntry{entry: entry, n: n})
	}
	c.holdReason = err
	// The entries went idle when they were read, before the failed run:
	// keep them now.
	c.keptAt = time.Time{}
	c.keepHeld(ctx)
	if !c.pausedAt.IsZero() {
		return
	}
	c.pausedAt = time.Now()
	c.holdRetry = messaging.Backoff{Min: min(100*time.Millisecond, c.cfg.MaxBackoff), Max: c.cfg.MaxBackoff}
	c.metrics.paused.Record(ctx, 1, c.attrs())
	c.log.WarnContext(ctx, "consumer paused: a dependency is unavailable; holding its messages until it is back",
		"held", len(c.held), "error", err)
}

// retryHeld is a step of a paused consumer: it waits, keeps its entries
// from being claimed, pings the database, and once that answers applies the
// held entries in order. The first transient failure keeps it and the rest
// for the next step; when none is left the consumer resumes.
func (c *Consumer) retryHeld(ctx context.Context) {
	// Never so long that the held entries go idle for ClaimIdle unkept.
	if !messaging.Sleep(ctx, min(c.holdRetry.Next(), c.cfg.ClaimIdle/4)) {
		return // stopping: the entries stay pending, for this consumer or another
	}
	c.keepHeld(ctx)
	pctx, cancel := context.WithTimeout(ctx, c.cfg.HandlerTimeout)
	err := c.db.PingContext(pctx)
	cancel()
	if err != nil {
		c.holdReason = err
		return
	}
	held := c.held
	c.held = nil
	for i, h := range held {
		c.held = held[i:] // what keepHeld keeps while this one runs
		c.keepHeld(ctx)
		c.held = nil
		switch err := c.process(ctx, h.entry, h.n); {
		case err == nil:
		case transient.Is(err):
			c.held = held[i:]
			c.holdReason = err
			return
		default:
			// Left pending: claimed again after ClaimIdle, and counted.
		}
	}
	c.metrics.paused.Record(ctx, 0, c.attrs())
	c.log.InfoContext(ctx, "consumer resumed", "paused_for", time.Since(c.pausedAt).Round(time.Millisecond).String(),
		"after", c.holdReason)
	c.pausedAt, c.holdReason = time.Time{}, nil
	c.nextClaim = time.Time{} // look for entries other consumers left meanwhile
}

// keepHeld re-claims the held entries for this consumer every ClaimIdle/4,
// which resets their idle time so no other consumer claims them, and sets
// their delivery count to what it was: waiting is not a delivery. Redis
// failing here is no reason to stop: the entries are at worst claimed and
// counted once more.
func (c *Consumer) keepHeld(ctx context.Context) {
	if time.Since(c.keptAt) < c.cfg.ClaimIdle/4 {
		return
	}
	_, err := c.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, h := range c.held {
			pipe.Do(ctx, "XCLAIM", c.cfg.Stream, c.cfg.Group, c.cfg.Name, 0, h.entry.ID, "RETRYCOUNT", h.n, "JUSTID")
		}
		return nil
	})
	if err != nil {
		c.log.DebugContext(ctx, "keep held entries", "error", err)
		return
	}
	c.keptAt = time.Now()
}
