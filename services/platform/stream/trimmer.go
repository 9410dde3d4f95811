package stream

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"shop/services/platform/messaging"
)

// TrimmerConfig configures a Trimmer. Stream is required.
type TrimmerConfig struct {
	// Stream is the stream kept bounded.
	Stream string
	// Interval is how often it is trimmed (default 1m).
	Interval time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Trimmer keeps a stream bounded without dropping an entry that some group
// has not acknowledged: it removes only the entries older than every
// group's oldest pending or undelivered entry. Any number of trimmers may
// run on one stream (a pass is idempotent); one per consuming service is
// plenty. Dead-letter streams are bounded where they are written (see
// ConsumerConfig.DLQMaxLen).
type Trimmer struct {
	rdb redis.UniversalClient
	cfg TrimmerConfig
}

func (c TrimmerConfig) withDefaults() TrimmerConfig {
	c.Interval = cmp.Or(c.Interval, time.Minute)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

// NewTrimmer returns a trimmer of cfg.Stream.
func NewTrimmer(rdb redis.UniversalClient, cfg TrimmerConfig) *Trimmer {
	cfg = cfg.withDefaults()
	return &Trimmer{rdb: rdb, cfg: cfg}
}

// Run trims every Interval until ctx ends, then returns nil. Errors are
// logged and retried at the next interval.
func (t *Trimmer) Run(ctx context.Context) error {
	messaging.Every(ctx, t.cfg.Interval, func(ctx context.Context) {
		if _, err := t.Trim(ctx); err != nil && ctx.Err() == nil {
			t.cfg.Logger.WarnContext(ctx, "trim stream", "stream", t.cfg.Stream, "error", err)
		}
	})
	return nil
}

// Trim removes the entries every group of the stream has acknowledged and
// reports how many. A stream without groups is left alone: a group created
// later starts at its beginning.
func (t *Trimmer) Trim(ctx context.Context) (int64, error) {
	groups, err := t.rdb.XInfoGroups(ctx, t.cfg.Stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return 0, nil
		}
		return 0, fmt.Errorf("groups of %s: %w", t.cfg.Stream, err)
	}
	if len(groups) == 0 {
		return 0, nil
	}
	var floor entryID
	for i, g := range groups {
		keep, err := t.oldestNeeded(ctx, g)
		if err != nil {
			return 0, err
		}
		if i == 0 || keep.less(floor) {
			floor = keep
		}
	}
	n, err := t.rdb.XTrimMinID(ctx, t.cfg.Stream, floor.String()).Result()
	if err != nil {
		return 0, fmt.Errorf("trim %s below %s: %w", t.cfg.Stream, floor, err)
	}
	return n, nil
}

// oldestNeeded is the oldest entry group g still needs: its oldest pending
// entry, else the first entry after the last one delivered to it.
func (t *Trimmer) oldestNeeded(ctx context.Context, g redis.XInfoGroup) (entryID, error) {
	last, err := parseEntryID(g.LastDeliveredID)
	if err != nil {
		return entryID{}, fmt.Errorf("group %s: %w", g.Name, err)
	}
	keep := last.next()
	if g.Pending == 0 {
		return keep, nil
	}
	p, err := t.rdb.XPending(ctx, t.cfg.Stream, g.Name).Result()
	if err != nil {
		return entryID{}, fmt.Errorf("pending of group %s: %w", g.Name, err)
	}
	if p.Count == 0 { // acknowledged since XINFO: the last delivered bound holds
		return keep, nil
	}
	oldest, err := parseEntryID(p.Lower)
	if err != nil {
		return entryID{}, fmt.Errorf("group %s: %w", g.Name, err)
	}
	if keep.less(oldest) { // cannot happen: pending entries were delivered
		return keep, nil
	}
	return oldest, nil
}

// entryID is a stream entry id, "<ms>-<seq>", compared as numbers (as
// strings "9-0" would sort after "10-0").
type entryID struct{ ms, seq uint64 }

func parseEntryID(s string) (entryID, error) {
	msPart, seqPart, ok := strings.Cut(s, "-")
	ms, err1 := strconv.ParseUint(msPart, 10, 64)
	seq, err2 := strconv.ParseUint(seqPart, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return entryID{}, fmt.Errorf("bad stream entry id %q", s)
	}
	return entryID{ms, seq}, nil
}

func (id entryID) String() string { return fmt.Sprintf("%d-%d", id.ms, id.seq) }

func (id entryID) less(o entryID) bool {
	return id.ms < o.ms || id.ms == o.ms && id.seq < o.seq
}

// next is the smallest id after id.
func (id entryID) next() entryID {
	if id.seq == ^uint64(0) {
		return entryID{id.ms + 1, 0}
	}
	return entryID{id.ms, id.seq + 1}
}
