package database_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/trace"

	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/polltest"
)

type thing struct {
	bun.BaseModel `bun:"table:things"`

	ID   int64  `bun:"id,pk"`
	Name string `bun:"name"`
}

// recorder is a GroupCommit write function that inserts things with one
// statement and notes the size of each batch it committed.
type recorder struct {
	mu      sync.Mutex
	batches []int
	// block, if set, holds the first batch until it is closed; started is
	// closed when the first batch is being written.
	block, started chan struct{}
}

// blocking returns a recorder that holds its first batch until block closes.
func blocking() *recorder {
	return &recorder{block: make(chan struct{}), started: make(chan struct{})}
}

func (r *recorder) write(ctx context.Context, tx bun.IDB, batch []database.Item[thing]) error {
	r.mu.Lock()
	first, block := len(r.batches) == 0, r.block
	r.mu.Unlock()
	if first && block != nil {
		close(r.started)
		<-block
	}
	rows := make([]thing, len(batch))
	for i, item := range batch {
		if item.Value.Name == "bad" {
			return errors.New("a bad thing")
		}
		rows[i] = item.Value
	}
	if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return err
	}
	// Counted once the write succeeded: a failed batch does not commit.
	r.mu.Lock()
	r.batches = append(r.batches, len(batch))
	r.mu.Unlock()
	return nil
}

func count(t *testing.T, db *bun.DB) int64 {
	t.Helper()
	n, err := db.NewSelect().Model((*thing)(nil)).Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitQueued waits until n callers of g are queued behind the batch in flight.
func waitQueued[T any](t *testing.T, g *database.GroupCommit[T], n int) {
	t.Helper()
	polltest.Until(t, 5*time.Second, func() error {
		if q := database.Queued(g); q < n {
			return fmt.Errorf("%d callers queued, want %d", q, n)
		}
		return nil
	})
}

// behindFirst has a first caller (id 1) start a batch that r holds, queues
// the values behind it, lets the batch go, and returns each caller's
// error, the first's at 0.
func behindFirst(t *testing.T, g *database.GroupCommit[thing], r *recorder, values []thing) []error {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 1+len(values))
	wg.Go(func() { errs[0] = g.Do(ctx, thing{ID: 1, Name: "first"}) })
	<-r.started
	for i, v := range values {
		wg.Go(func() { errs[i+1] = g.Do(ctx, v) })
	}
	waitQueued(t, g, len(values))
	close(r.block)
	wg.Wait()
	return errs
}

// Callers who arrive while a transaction is in flight are written together,
// in the next one.
func TestGroupCommitWritesWaitingCallersTogether(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, db *bun.DB) {
		r := blocking()
		g := database.NewGroupCommit(db, database.GroupCommitConfig{MaxInFlight: 1}, r.write)
		var next []thing
		for i := 1; i <= 20; i++ {
			next = append(next, thing{ID: int64(i + 1), Name: "next"})
		}
		if err := errors.Join(behindFirst(t, g, r, next)...); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.batches, []int{1, 20}) || count(t, db) != 21 {
			t.Fatalf("batches %v, %d rows; want [1 20] and 21", r.batches, count(t, db))
		}
	})
}

// A value that cannot be written fails its own caller only: the batch is
// written again one value at a time.
func TestGroupCommitFailsOnlyTheBadValue(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, db *bun.DB) {
		r := blocking()
		g := database.NewGroupCommit(db, database.GroupCommitConfig{MaxInFlight: 1}, r.write)
		var next []thing
		for i := 1; i <= 5; i++ {
			name := "good"
			if i == 3 {
				name = "bad"
			}
			next = append(next, thing{ID: int64(i + 1), Name: name})
		}
		for i, err := range behindFirst(t, g, r, next) {
			if (err != nil) != (i == 3) {
				t.Errorf("caller %d: %v", i, err)
			}
		}
		if count(t, db) != 5 {
			t.Fatalf("%d rows, want the 5 good ones", count(t, db))
		}
	})
}

// A caller who gave up before its batch started is left out of it.
func TestGroupCommitLeavesOutCallersWhoGaveUp(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, db *bun.DB) {
		r := blocking()
		g := database.NewGroupCommit(db, database.GroupCommitConfig{MaxInFlight: 1}, r.write)
		var wg sync.WaitGroup
		var first, gaveUp error
		wg.Go(func() { first = g.Do(context.Background(), thing{ID: 1, Name: "first"}) })
		<-r.started
		ctx, cancel := context.WithCancel(context.Background())
		wg.Go(func() { gaveUp = g.Do(ctx, thing{ID: 2, Name: "impatient"}) })
		waitQueued(t, g, 1)
		cancel()
		close(r.block)
		wg.Wait()
		if first != nil || !errors.Is(gaveUp, context.Canceled) || count(t, db) != 1 {
			t.Fatalf("first: %v, gave up: %v, %d rows; want nil, context.Canceled, 1", first, gaveUp, count(t, db))
		}
	})
}

// Many callers at once are all written, in fewer transactions than callers.
func TestGroupCommitUnderLoad(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		r := &recorder{}
		g := database.NewGroupCommit(db, database.GroupCommitConfig{MaxBatch: 8}, r.write)
		const callers = 200
		var wg sync.WaitGroup
		errs := make([]error, callers)
		for i := range callers {
			wg.Go(func() { errs[i] = g.Do(ctx, thing{ID: int64(i + 1), Name: "many"}) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, n := range r.batches {
			if n > 8 {
				t.Errorf("a batch of %d, above MaxBatch 8", n)
			}
			total += n
		}
		if total != callers || count(t, db) != callers {
			t.Fatalf("batches sum to %d, %d rows; want %d", total, count(t, db), callers)
		}
		t.Logf("%d callers in %d transactions", callers, len(r.batches))
	})
}

// A caller who comes alone has its value written in its own trace, even
// though a caller's cancellation never reaches the batch.
func TestGroupCommitWritesALoneCallerInItsTrace(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, db *bun.DB) {
		var seen trace.SpanContext
		var items []database.Item[thing]
		g := database.NewGroupCommit(db, database.GroupCommitConfig{}, func(ctx context.Context, tx bun.IDB, batch []database.Item[thing]) error {
			seen, items = trace.SpanContextFromContext(ctx), batch
			return nil
		})
		caller := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}})
		ctx, cancel := context.WithCancel(trace.ContextWithSpanContext(context.Background(), caller))
		defer cancel()
		if err := g.Do(ctx, thing{ID: 1}); err != nil || !seen.Equal(caller) {
			t.Fatalf("Do = %v; the write ran in trace %v, want the caller's %v", err, seen.TraceID(), caller.TraceID())
		}
		if len(items) != 1 || !items[0].Trace.Equal(caller) {
			t.Fatalf("items %+v, want the value with the caller's trace", items)
		}
	})
}

// begins counts the transactions a database begins.
type begins struct{ n atomic.Int64 }

func (b *begins) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if e.Query == "BEGIN" {
		b.n.Add(1)
	}
	return ctx
}
func (b *begins) AfterQuery(context.Context, *bun.QueryEvent) {}

// A batch its write declares atomic is written outside any transaction,
// and when its statement fails, written again one value at a time: the
// value that cannot be written fails its own caller only.
func TestGroupCommitWithoutTx(t *testing.T) {
	dbtest.Each(t, migrations, func(t *testing.T, db *bun.DB) {
		ctx := context.Background()
		if _, err := db.NewInsert().Model(&thing{ID: 4, Name: "there before"}).Exec(ctx); err != nil {
			t.Fatal(err)
		}
		hook := &begins{}
		db.AddQueryHook(hook)
		r := blocking()
		g := database.NewGroupCommit(db, database.GroupCommitConfig{MaxInFlight: 1}, r.write).
			WithoutTx(func([]database.Item[thing]) bool { return true })
		var next []thing
		for i := 1; i <= 5; i++ {
			// Caller 3 inserts id 4, which exists: the batch's one statement fails.
			next = append(next, thing{ID: int64(i + 1), Name: "next"})
		}
		for i, err := range behindFirst(t, g, r, next) {
			if (err != nil) != (i == 3) {
				t.Errorf("caller %d: %v", i, err)
			}
		}
		if count(t, db) != 6 {
			t.Fatalf("%d rows, want the 5 written and the one there before", count(t, db))
		}
		if !slices.Equal(r.batches, []int{1, 1, 1, 1, 1}) {
			t.Errorf("batches %v, want the first and, after the batch failed, the 4 good values one by one", r.batches)
		}
		if n := hook.n.Load(); n != 0 {
			t.Fatalf("%d transactions begun, want none", n)
		}
	})
}
