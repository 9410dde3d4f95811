package database

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Statement is PostgreSQL SQL with parameters ($1, $2, …) that runs as a
// prepared statement: pgx prepares it once per connection and then runs it
// by name, so PostgreSQL parses and plans it once. The SQL Bun builds has
// the values written into its text, so PostgreSQL parses and plans it on
// every call; for the hot statements, planning cost about as much CPU as
// executing (pg_stat_statements with track_planning). A statement for a
// varying number of rows takes arrays (unnest, = ANY) so that its text, and
// its plan, stay one. PostgreSQL only: on SQLite the callers keep Bun's
// portable queries.
//
// Each run is a client span in the caller's trace, if there is one, named
// by the operation and table and carrying the SQL (placeholders, never
// values), like the spans Bun's queries get.
type Statement struct {
	operation, table, query string
}

// NewStatement returns the statement query, which does operation (SELECT,
// INSERT, UPDATE, …) mainly on table.
func NewStatement(operation, table, query string) Statement {
	return Statement{operation: operation, table: table, query: query}
}

// SQL is the statement's text.
func (s Statement) SQL() string { return s.query }

// Unnest is "unnest($first::t1[], $first+1::t2[], …)": rows from arrays
// that are a statement's parameters from first on, one array per column
// type, as a prepared statement takes a varying number of rows.
func Unnest(first int, types ...string) string {
	var b strings.Builder
	b.WriteString("unnest(")
	for i, t := range types {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d::%s[]", first+i, t)
	}
	b.WriteString(")")
	return b.String()
}

// sqlRunner is what a *bun.DB, a bun.Tx, a bun.Conn and a *Tx run SQL on.
type sqlRunner interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// runner returns the database/sql handle below db, which runs SQL with its
// arguments as they are (Bun's own methods write them into the text).
func runner(db bun.IDB) (sqlRunner, error) {
	switch d := db.(type) {
	case *bun.DB:
		return d.DB, nil
	case bun.Tx:
		return d.Tx, nil
	case *bun.Tx:
		return d.Tx, nil
	case bun.Conn:
		return d.Conn, nil
	case *Tx:
		if d.last != nil {
			return nil, fmt.Errorf("a statement after the transaction's last (%s %s)", d.last.s.operation, d.last.s.table)
		}
		return d.Conn.Conn, nil
	}
	return nil, fmt.Errorf("prepared statement on %T: want *bun.DB, bun.Tx, bun.Conn or *database.Tx", db)
}

// Query runs s on db (a *bun.DB, bun.Tx or bun.Conn on PostgreSQL) with
// args and returns its rows, which the caller closes.
func (s Statement) Query(ctx context.Context, db bun.IDB, args ...any) (_ *sql.Rows, err error) {
	r, err := runner(db)
	if err != nil {
		return nil, err
	}
	ctx, span := s.start(ctx)
	defer func() { s.end(span, err, -1) }()
	return r.QueryContext(ctx, s.query, pgArgs(args)...)
}

// Scan runs s on db with args and scans its rows into dest as Bun does
// (a slice of models or of values; a model or values for one row).
func (s Statement) Scan(ctx context.Context, db bun.IDB, dest any, args ...any) error {
	rows, err := s.Query(ctx, db, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	// NewSelect's DB is the *bun.DB below a bun.Tx or bun.Conn too.
	return db.NewSelect().DB().ScanRows(ctx, rows, dest)
}

// Exec runs s on db with args.
func (s Statement) Exec(ctx context.Context, db bun.IDB, args ...any) (_ sql.Result, err error) {
	r, err := runner(db)
	if err != nil {
		return nil, err
	}
	ctx, span := s.start(ctx)
	var affected int64 = -1
	defer func() { s.end(span, err, affected) }()
	res, err := r.ExecContext(ctx, s.query, pgArgs(args)...)
	if err == nil {
		affected, _ = res.RowsAffected()
	}
	return res, err
}

// pgArgs are args as pgx takes them for a cached prepared statement. UUIDs
// go as their 16 bytes: as uuid.UUID pgx would ask each for its text
// (driver.Valuer) and parse it back.
func pgArgs(args []any) []any {
	out := make([]any, 0, 1+len(args))
	out = append(out, pgx.QueryExecModeCacheStatement)
	for _, a := range args {
		switch v := a.(type) {
		case uuid.UUID:
			a = [16]byte(v)
		case []uuid.UUID:
			b := make([][16]byte, len(v))
			for i, id := range v {
				b[i] = id
			}
			a = b
		}
		out = append(out, a)
	}
	return out
}

// start starts the statement's span below the span in ctx, with that
// span's provider; with none, it starts none (as Bun's queries outside a
// request or message make none).
func (s Statement) start(ctx context.Context) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, nil
	}
	return parent.TracerProvider().Tracer(scope).Start(ctx, s.operation+" "+s.table,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("db.system.name", "postgresql"),
			attribute.String("db.operation.name", s.operation),
			attribute.String("db.collection.name", s.table),
			attribute.String("db.query.text", s.query),
		))
}

func (s Statement) end(span trace.Span, err error, affected int64) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	if affected >= 0 {
		span.SetAttributes(attribute.Int64("db.response.affected_rows", affected))
	}
	span.End()
}

const scope = "shop/services/platform/database"
