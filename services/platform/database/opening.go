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

// RunInTxOpening runs a transaction on PostgreSQL whose first statement is
// open, sent in one round trip with BEGIN (database/sql sends BEGIN alone
// and waits for its answer: a round trip per transaction that does
// nothing). Then fn runs with the transaction's connection as tx: what it
// sends there is part of the transaction, which commits when fn returns
// nil and rolls back otherwise. fn must not begin or end transactions on
// tx itself.
//
// A connection whose transaction could not be ended leaves the pool, so no
// transaction outlives RunInTxOpening.
func RunInTxOpening(ctx context.Context, db *bun.DB, open Opening, fn func(ctx context.Context, tx bun.IDB) error) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pg, err := pgxConn(dc)
		if err != nil {
			return err
		}
		return open.begin(ctx, pg)
	})
	if errors.Is(err, errNotSent) {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = end(ctx, conn, false)
			panic(p)
		}
	}()
	if err == nil {
		err = fn(ctx, conn)
	}
	if err != nil {
		return errors.Join(err, end(ctx, conn, false))
	}
	return end(ctx, conn, true)
}

// errNotSent marks the errors of RunInTxOpening that came before BEGIN was
// sent, when there is no transaction to end.
var errNotSent = errors.New("transaction not begun")

func pgxConn(dc any) (*pgx.Conn, error) {
	sc, ok := dc.(*stdlib.Conn)
	if !ok {
		return nil, fmt.Errorf("%w: a transaction opening needs the pgx driver, have %T", errNotSent, dc)
	}
	return sc.Conn(), nil
}

// begin sends BEGIN and o's statement in one pipeline and reads o's rows.
// The statement runs prepared, as Statement's Query runs it.
func (o Opening) begin(ctx context.Context, pg *pgx.Conn) (err error) {
	s := o.Statement
	ctx, span := s.start(ctx)
	defer func() { s.end(span, err, -1) }()
	// Prepare is a round trip only the first time on each connection.
	sd, err := pg.Prepare(ctx, s.query, s.query)
	if err != nil {
		return fmt.Errorf("%w: prepare: %w", errNotSent, err)
	}
	args := pgArgs(o.Args)[1:] // without the execution mode
	var eqb pgx.ExtendedQueryBuilder
	if err := eqb.Build(pg.TypeMap(), sd, args); err != nil {
		return fmt.Errorf("%w: encode arguments: %w", errNotSent, err)
	}
	batch := &pgconn.Batch{}
	batch.ExecParams("begin", nil, nil, nil, nil)
	batch.ExecPrepared(sd.Name, eqb.ParamValues, eqb.ParamFormats, eqb.ResultFormats)
	tracer, _ := pg.Config().Tracer.(pgx.BatchTracer)
	if tracer != nil {
		b := &pgx.Batch{}
		b.Queue("begin")
		b.Queue(s.query, args...)
		ctx = tracer.TraceBatchStart(ctx, pg, pgx.TraceBatchStartData{Batch: b})
		defer func() { tracer.TraceBatchEnd(ctx, pg, pgx.TraceBatchEndData{Err: err}) }()
	}
	results := pg.PgConn().ExecBatch(ctx, batch)
	defer func() { err = errors.Join(err, results.Close()) }()
	if !results.NextResult() {
		return errors.New("no answer to BEGIN")
	}
	if _, err := results.ResultReader().Close(); err != nil {
		return err
	}
	if !results.NextResult() {
		return fmt.Errorf("no answer to %s %s", s.operation, s.table)
	}
	rows := pgx.RowsFromResultReader(pg.TypeMap(), results.ResultReader())
	defer rows.Close()
	if o.Rows != nil {
		if err := o.Rows(rows); err != nil {
			return err
		}
	}
	rows.Close()
	return rows.Err()
}

// end commits or rolls back the transaction on conn. A connection left
// broken or still in a transaction leaves the pool.
func end(ctx context.Context, conn bun.Conn, commit bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	return conn.Raw(func(dc any) error {
		pg, err := pgxConn(dc)
		if err != nil {
			return err
		}
		if commit {
			var tag pgconn.CommandTag
			tag, err = pg.Exec(ctx, "commit")
			if err != nil {
				err = fmt.Errorf("commit: %w", err)
			} else if tag.String() == "ROLLBACK" {
				err = ErrRolledBack
			}
		} else if _, err = pg.Exec(ctx, "rollback"); err != nil {
			err = fmt.Errorf("rollback: %w", err)
		}
		if err != nil && (pg.IsClosed() || pg.PgConn().TxStatus() != 'I') {
			err = errors.Join(err, driver.ErrBadConn)
		}
		return err
	})
}
