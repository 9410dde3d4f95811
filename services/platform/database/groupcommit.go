package database

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/trace"
)

// Item is one caller's value in a GroupCommit batch, with the caller's
// trace: what is written for the value belongs to it.
type Item[T any] struct {
	Trace trace.SpanContext
	Value T
}

// GroupCommitConfig configures a GroupCommit. The zero value is sensible.
type GroupCommitConfig struct {
	// MaxBatch bounds the values one transaction writes (default 64).
	MaxBatch int
	// MaxInFlight bounds the transactions open at once (default 2): while
	// they run, the next callers queue and form the next batch.
	MaxInFlight int
	// Timeout bounds one transaction (default 10s). It does not follow the
	// callers' deadlines: one caller giving up must not fail the others.
	Timeout time.Duration
}

func (c GroupCommitConfig) withDefaults() GroupCommitConfig {
	c.MaxBatch = cmp.Or(c.MaxBatch, 64)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, 2)
	c.Timeout = cmp.Or(c.Timeout, 10*time.Second)
	return c
}

// GroupCommit writes the values of concurrent callers together, in shared
// transactions: under load one commit (one WAL flush) and a few statements
// serve many callers, and a caller who arrives alone is written at once,
// waiting for nobody. Its write function must write a batch with a few
// statements whatever its size, or grouping gains nothing.
//
// A batch that fails is written again one value per transaction, so that a
// value that cannot be written fails only its own caller.
type GroupCommit[T any] struct {
	db    bun.IDB
	write func(ctx context.Context, tx bun.IDB, batch []Item[T]) error
	opts  GroupCommitConfig
	// atomic reports the batches write writes with one statement (WithoutTx).
	atomic func(batch []Item[T]) bool

	mu       sync.Mutex
	queue    []*call[T]
	inFlight int
}

type call[T any] struct {
	Item[T]
	gone <-chan struct{} // closed when the caller gives up
	err  error
	done chan struct{}
}

// errGone is a call's outcome when its caller gave up before its batch
// was written; Do returns the caller's context's error instead.
var errGone = errors.New("caller gone")

// NewGroupCommit returns a GroupCommit that writes batches on db with write,
// which gets the batch's transaction as tx.
func NewGroupCommit[T any](db bun.IDB, opts GroupCommitConfig, write func(ctx context.Context, tx bun.IDB, batch []Item[T]) error) *GroupCommit[T] {
	return &GroupCommit[T]{db: db, write: write, opts: opts.withDefaults()}
}

// WithoutTx makes g write the batches for which atomic reports true outside
// any transaction, write getting the database itself as tx: for a write
// that takes a single statement for such a batch, atomic by itself, which
// then costs no BEGIN and COMMIT round trips. A batch that fails is still
// written again one value at a time, atomic deciding for each. Call it before
// g is used; it returns g.
func (g *GroupCommit[T]) WithoutTx(atomic func(batch []Item[T]) bool) *GroupCommit[T] {
	g.atomic = atomic
	return g
}

// Do writes v in a transaction shared with other callers' values and
// returns once it committed or failed. If ctx ends before the batch of v is
// written, v is left out and Do returns ctx's error; once the batch is being
// written, Do waits for its outcome.
func (g *GroupCommit[T]) Do(ctx context.Context, v T) error {
	c := &call[T]{Item: Item[T]{Trace: trace.SpanContextFromContext(ctx), Value: v}, gone: ctx.Done(), done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if g.inFlight < g.opts.MaxInFlight {
		g.inFlight++
		go g.drain()
	}
	g.mu.Unlock()
	<-c.done
	if c.err == errGone {
		return ctx.Err()
	}
	return c.err
}

// drain writes batches from the queue until it is empty.
func (g *GroupCommit[T]) drain() {
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.inFlight--
			g.mu.Unlock()
			return
		}
		n := min(len(g.queue), g.opts.MaxBatch)
		batch := make([]*call[T], n)
		copy(batch, g.queue)
		g.queue = g.queue[n:]
		if len(g.queue) == 0 {
			g.queue = nil // let the backing array go
		}
		g.mu.Unlock()
		g.commit(batch)
	}
}

// commit writes batch in one transaction, or each of its values in one of
// its own if that fails, and reports to every caller.
func (g *GroupCommit[T]) commit(batch []*call[T]) {
	live := batch[:0]
	for _, c := range batch {
		select {
		case <-c.gone:
			c.finish(errGone)
		default:
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		return
	}
	err := g.run(live)
	if err == nil || len(live) == 1 {
		for _, c := range live {
			c.finish(err)
		}
		return
	}
	for _, c := range live {
		c.finish(g.run([]*call[T]{c}))
	}
}

// run writes batch in one transaction, or in one statement if it is atomic
// (WithoutTx). Its statements run in the trace of the first caller, which
// is the caller's own whenever it came alone, and not under any caller's
// cancellation.
func (g *GroupCommit[T]) run(batch []*call[T]) error {
	ctx := trace.ContextWithSpanContext(context.Background(), batch[0].Trace)
	ctx, cancel := context.WithTimeout(ctx, g.opts.Timeout)
	defer cancel()
	items := make([]Item[T], len(batch))
	for i, c := range batch {
		items[i] = c.Item
	}
	if g.atomic != nil && g.atomic(items) {
		return g.write(ctx, g.db, items)
	}
	return g.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		return g.write(ctx, tx, items)
	})
}

func (c *call[T]) finish(err error) {
	c.err = err
	close(c.done)
}
