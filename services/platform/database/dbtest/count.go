package dbtest

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
)

// Statements records the statements a database from Open sends, by
// operation. On PostgreSQL it sees
// what pgx sends, Bun's queries and prepared statements
// (database.Statement) alike, each a round trip, named by its first word
// (SELECT, INSERT, WITH, …), and a batch of statements sent in one round
// trip as one, their words joined by "+" (BEGIN+INSERT); on SQLite it sees
// Bun's queries, named by Bun's operation.
type Statements struct {
	mu     sync.Mutex
	on     bool
	marked bool     // only statements sent with a context from Mark
	all    []string // BEGIN and COMMIT too
}

type markKey struct{}

// Mark returns ctx marked for a Statements from CountMarked to record
// what is sent with it, when other work shares the database.
func Mark(ctx context.Context) context.Context { return context.WithValue(ctx, markKey{}, true) }

// CountMarked is Count for the statements sent with a context from Mark
// only.
func CountMarked(t testing.TB, db *bun.DB) *Statements {
	t.Helper()
	s := Count(t, db)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marked = true
	return s
}

// counters holds the Statements of each database Open returned.
var counters sync.Map // *bun.DB → *Statements

// Count starts recording the statements db sends, from none, and returns
// the record; db must come from Open or Each.
func Count(t testing.TB, db *bun.DB) *Statements {
	t.Helper()
	v, ok := counters.Load(db)
	if !ok {
		t.Fatal("dbtest.Count: the database does not come from dbtest.Open")
	}
	s := v.(*Statements)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.on, s.marked, s.all = true, false, nil
	return s
}

// Ops returns the operations recorded so far, in order, one per
// statement, without BEGIN, COMMIT and ROLLBACK.
func (s *Statements) Ops() []string {
	var ops []string
	for _, trip := range s.All() {
		for op := range strings.SplitSeq(trip, "+") {
			if op != "BEGIN" && op != "COMMIT" && op != "ROLLBACK" {
				ops = append(ops, op)
			}
		}
	}
	return ops
}

// All returns the round trips recorded so far, in order, BEGIN, COMMIT and
// ROLLBACK included.
func (s *Statements) All() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.all)
}

// Take returns Ops and forgets what was recorded.
func (s *Statements) Take() []string {
	ops := s.Ops()
	s.Reset()
	return ops
}

// Reset forgets the operations recorded so far.
func (s *Statements) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = nil
}

func (s *Statements) record(ctx context.Context, op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.on && (!s.marked || ctx.Value(markKey{}) != nil) {
		s.all = append(s.all, strings.ToUpper(op))
	}
}

// TraceQueryStart is pgx's hook (PostgreSQL).
func (s *Statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	s.record(ctx, operation(data.SQL))
	return ctx
}

func operation(sql string) string {
	op, _, _ := strings.Cut(strings.TrimSpace(sql), " ")
	return op
}

// TraceBatchStart is pgx's hook for batches (PostgreSQL).
func (s *Statements) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	ops := make([]string, len(data.Batch.QueuedQueries))
	for i, q := range data.Batch.QueuedQueries {
		ops[i] = operation(q.SQL)
	}
	s.record(ctx, strings.Join(ops, "+"))
	return ctx
}

// TraceBatchQuery is pgx's hook for batches (PostgreSQL).
func (s *Statements) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd is pgx's hook for batches (PostgreSQL).
func (s *Statements) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TraceQueryEnd is pgx's hook (PostgreSQL).
func (s *Statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// BeforeQuery is Bun's hook (SQLite).
func (s *Statements) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	s.record(ctx, e.Operation())
	return ctx
}

// AfterQuery is Bun's hook (SQLite).
func (s *Statements) AfterQuery(context.Context, *bun.QueryEvent) {}
