package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"go.opentelemetry.io/otel/trace"
)

// Opening is the first statement of a transaction that RunInTxOpening
// sends to PostgreSQL together with the transaction's BEGIN.
type Opening struct {
	Statement Statement
	Args      []any
	// Rows reads the statement's rows, if it returns any worth reading.
	Rows func(pgx.Rows) error
}

// ErrRolledBack is the error of a transaction whose COMMIT PostgreSQL
// answered with ROLLBACK: a statement in it had failed.
var ErrRolledBack = errors.New("transaction rolled back at commit: a statement in it failed")

// endTimeout bounds the COMMIT or ROLLBACK that ends a transaction of
// RunInTxOpening, which runs even when the caller's context has ended.
const endTimeout = 5 * time.Second

// Tx is a transaction of RunInTxOpening: the bun.Conn it runs on, and the
// statement that goes with its COMMIT (Statement.ExecLast), if any.
type Tx struct {
	bun.Conn
	last *closing
}

// closing is a statement ExecLast left for the COMMIT, with the context of
// its span.
type closing struct {
	ctx  context.Context
	s    Statement
	args []any
}

// RunInTxOpening runs a transaction on PostgreSQL whose first statement is
// open, sent in one round trip with BEGIN (database/sql sends BEGIN alone
// and waits for its answer: a round trip per transaction that does
// nothing). Then fn runs with the transaction's connection as tx (a *Tx):
// what it sends there is part of the transaction, which commits when fn
// returns nil and rolls back otherwise. A statement fn runs with
// Statement.ExecLast goes to the server with the COMMIT, saving another
// round trip. fn must not begin or end transactions on tx itself.
//
// A connection whose transaction could not be ended leaves the pool, so no
// transaction outlives RunInTxOpening.
func RunInTxOpening(ctx context.Context, db *bun.DB, open Opening, fn func(ctx context.Context, tx bun.IDB) error) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	tx := &Tx{Conn: conn}
	err = tx.raw(func(pg *pgx.Conn) error { return open.begin(ctx, pg) })
	if errors.Is(err, errNotSent) {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.end(ctx, false)
			panic(p)
		}
	}()
	if err == nil {
		err = fn(ctx, tx)
	}
	if err != nil {
		return errors.Join(err, tx.end(ctx, false))
	}
	return tx.end(ctx, true)
}

// errNotSent marks the errors of RunInTxOpening that came before BEGIN was
// sent, when there is no transaction to end.
var errNotSent = errors.New("transaction not begun")

// raw runs f with the pgx connection below tx.
func (tx *Tx) raw(f func(pg *pgx.Conn) error) error {
	return tx.Conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("%w: a pipelined transaction needs the pgx driver, have %T", errNotSent, dc)
		}
		return f(sc.Conn())
	})
}

// begin sends BEGIN and o's statement in one pipeline and reads o's rows.
func (o Opening) begin(ctx context.Context, pg *pgx.Conn) (err error) {
	s := o.Statement
	ctx, span := s.start(ctx)
	defer func() { s.end(span, err, -1) }()
	results, err := pipeline(ctx, pg, piped{sql: "begin"}, piped{s: s, args: o.Args})
	if err != nil {
		return err
	}
	defer closeResults(results, &err)
	if _, err := closeNext(results, "BEGIN"); err != nil {
		return err
	}
	rr, err := next(results, s.operation+" "+s.table)
	if err != nil {
		return err
	}
	rows := pgx.RowsFromResultReader(pg.TypeMap(), rr)
	defer rows.Close()
	if o.Rows != nil {
		if err := o.Rows(rows); err != nil {
			return err
		}
	}
	rows.Close()
	return rows.Err()
}

// ExecLast runs s with args as the last statement of tx, whose answer is
// only its error. In a transaction of RunInTxOpening (a *Tx), s goes to
// the server with the COMMIT, in one round trip, and its error is the
// transaction's; nothing may be sent on tx after it. On any other db it
// runs at once, as Exec.
func (s Statement) ExecLast(ctx context.Context, db bun.IDB, args ...any) error {
	tx, ok := db.(*Tx)
	if !ok {
		_, err := s.Exec(ctx, db, args...)
		return err
	}
	if tx.last != nil {
		return fmt.Errorf("%s %s: the transaction's last statement is %s %s already", s.operation, s.table, tx.last.s.operation, tx.last.s.table)
	}
	tx.last = &closing{ctx: ctx, s: s, args: args}
	return nil
}

// end commits or rolls back tx, sending with the COMMIT the statement
// ExecLast left. A connection left broken or still in a transaction leaves
// the pool.
func (tx *Tx) end(ctx context.Context, commit bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	return tx.raw(func(pg *pgx.Conn) (err error) {
		switch {
		case !commit:
			if _, err = pg.Exec(ctx, "rollback"); err != nil {
				err = fmt.Errorf("rollback: %w", err)
			}
		case tx.last != nil:
			err = tx.last.commit(ctx, pg)
			if err != nil && pg.PgConn().TxStatus() != 'I' {
				_, rerr := pg.Exec(ctx, "rollback")
				err = errors.Join(err, rerr)
			}
		default:
			err = commitResult(pg.Exec(ctx, "commit"))
		}
		if err != nil && (pg.IsClosed() || pg.PgConn().TxStatus() != 'I') {
			err = errors.Join(err, driver.ErrBadConn)
		}
		return err
	})
}

// commit sends c's statement and COMMIT in one pipeline. The statement's
// span, in c's trace, covers the round trip.
func (c *closing) commit(ctx context.Context, pg *pgx.Conn) (err error) {
	s := c.s
	_, span := s.start(c.ctx)
	affected := int64(-1)
	defer func() { s.end(span, err, affected) }()
	results, err := pipeline(trace.ContextWithSpan(ctx, span), pg, piped{s: s, args: c.args}, piped{sql: "commit"})
	if err != nil {
		return err
	}
	defer closeResults(results, &err)
	tag, err := closeNext(results, s.operation+" "+s.table)
	if err != nil {
		return err
	}
	affected = tag.RowsAffected()
	return commitResult(closeNext(results, "COMMIT"))
}

// closeResults closes results and reports its error in *err, unless
// *err holds one already (which Close would report again).
func closeResults(results *pgconn.MultiResultReader, err *error) {
	if cerr := results.Close(); *err == nil {
		*err = cerr
	}
}

// commitResult is the error of a COMMIT that PostgreSQL answered with tag.
func commitResult(tag pgconn.CommandTag, err error) error {
	switch {
	case err != nil:
		return fmt.Errorf("commit: %w", err)
	case tag.String() == "ROLLBACK":
		return ErrRolledBack
	}
	return nil
}

// piped is a statement of a pipeline: a prepared Statement with its
// arguments, or plain SQL without any.
type piped struct {
	s    Statement
	args []any
	sql  string
}

// pipeline sends stmts to pg in one round trip (one Sync), each prepared
// Statement as Statement's Query runs it, and returns their results, which
// the caller closes. A pgx.BatchTracer on the connection sees it as a batch.
func pipeline(ctx context.Context, pg *pgx.Conn, stmts ...piped) (_ *pgconn.MultiResultReader, err error) {
	batch := &pgconn.Batch{}
	traced := &pgx.Batch{}
	for _, p := range stmts {
		if p.sql != "" {
			batch.ExecParams(p.sql, nil, nil, nil, nil)
			traced.Queue(p.sql)
			continue
		}
		// A round trip only the first time on each connection.
		sd, err := pg.Prepare(ctx, p.s.query, p.s.query)
		if err != nil {
			return nil, fmt.Errorf("%w: prepare: %w", errNotSent, err)
		}
		args := pgArgs(p.args)[1:] // without the execution mode
		var eqb pgx.ExtendedQueryBuilder
		if err := eqb.Build(pg.TypeMap(), sd, args); err != nil {
			return nil, fmt.Errorf("%w: encode arguments: %w", errNotSent, err)
		}
		batch.ExecPrepared(sd.Name, eqb.ParamValues, eqb.ParamFormats, eqb.ResultFormats)
		traced.Queue(p.s.query, args...)
	}
	if tracer, ok := pg.Config().Tracer.(pgx.BatchTracer); ok {
		ctx = tracer.TraceBatchStart(ctx, pg, pgx.TraceBatchStartData{Batch: traced})
		defer tracer.TraceBatchEnd(ctx, pg, pgx.TraceBatchEndData{})
	}
	return pg.PgConn().ExecBatch(ctx, batch), nil
}

// next is the reader of the next result of results, which is what's; an
// error if there is none (the pipeline failed).
func next(results *pgconn.MultiResultReader, what string) (*pgconn.ResultReader, error) {
	if results.NextResult() {
		return results.ResultReader(), nil
	}
	err := results.Close()
	if err == nil {
		err = errors.New("no answer")
	}
	return nil, fmt.Errorf("%s: %w", what, err)
}

// closeNext closes the next result of results, which is what's, and
// returns its command tag; its error says what failed.
func closeNext(results *pgconn.MultiResultReader, what string) (pgconn.CommandTag, error) {
	rr, err := next(results, what)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := rr.Close()
	if err != nil {
		return tag, fmt.Errorf("%s: %w", what, err)
	}
	return tag, nil
}
