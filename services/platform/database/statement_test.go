package database_test

import (
	"context"
	"slices"
	"testing"

	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
)

var (
	insertNumbers = database.NewStatement("INSERT", "numbers",
		"INSERT INTO numbers (n) SELECT * FROM unnest($1::bigint[])")
	selectNumbers = database.NewStatement("SELECT", "numbers",
		"SELECT n FROM numbers WHERE n = ANY($1::bigint[]) ORDER BY n")
)

// A statement runs prepared: one text for any number of rows, parsed and
// planned once per connection, on a connection, a transaction or the pool.
func TestStatementRunsPrepared(t *testing.T) {
	ctx := context.Background()
	db := dbtest.Open(t, dbtest.Postgres, nil)
	if _, err := db.ExecContext(ctx, "CREATE TABLE numbers (n BIGINT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, batch := range [][]int64{{1, 2, 3}, {4}} {
			res, err := insertNumbers.Exec(ctx, tx, batch)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != int64(len(batch)) {
				t.Errorf("inserted %d rows, want %d", n, len(batch))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := selectNumbers.Query(ctx, conn, []int64{4, 2, 9})
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int64{2, 4}) {
		t.Errorf("selected %v, want [2 4]", got)
	}

	var prepared int
	err = conn.QueryRowContext(ctx, "SELECT count(*) FROM pg_prepared_statements WHERE statement IN (?, ?)",
		insertNumbers.SQL(), selectNumbers.SQL()).Scan(&prepared)
	if err != nil {
		t.Fatal(err)
	}
	if prepared != 2 {
		t.Errorf("%d of the 2 statements are prepared on the connection that ran them, want 2", prepared)
	}

	// The pool works too, whatever connection it picks.
	if _, err := selectNumbers.Query(ctx, db, []int64{1}); err != nil {
		t.Fatal(err)
	}
}

// A statement run inside a trace is a client span of it, with the SQL and
// no values; outside one it makes no span.
func TestStatementSpan(t *testing.T) {
	ctx := context.Background()
	db := dbtest.Open(t, dbtest.Postgres, nil)
	if _, err := db.ExecContext(ctx, "CREATE TABLE numbers (n BIGINT PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	if _, err := insertNumbers.Exec(ctx, db, []int64{7}); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 0 {
		t.Fatalf("%d spans outside a trace, want none", n)
	}

	parentCtx, parent := tp.Tracer("test").Start(ctx, "request")
	if _, err := insertNumbers.Exec(parentCtx, db, []int64{8, 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := insertNumbers.Exec(parentCtx, db, []int64{9}); err == nil {
		t.Fatal("inserting 9 twice succeeded")
	}
	parent.End()

	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 2 statements and their parent", len(spans))
	}
	ok, failed := spans[0], spans[1]
	for _, s := range []sdktrace.ReadOnlySpan{ok, failed} {
		if s.Name() != "INSERT numbers" || s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %q with parent %s, want \"INSERT numbers\" below the request", s.Name(), s.Parent().SpanID())
		}
	}
	attrs := attribute.NewSet(ok.Attributes()...)
	if v, _ := attrs.Value("db.query.text"); v.AsString() != insertNumbers.SQL() {
		t.Errorf("db.query.text = %q, want the statement's SQL", v.AsString())
	}
	if v, _ := attrs.Value("db.response.affected_rows"); v.AsInt64() != 2 {
		t.Errorf("db.response.affected_rows = %d, want 2", v.AsInt64())
	}
	if failed.Status().Code.String() != "Error" {
		t.Errorf("failed statement's span status %v, want Error", failed.Status())
	}
}
