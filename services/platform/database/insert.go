package database

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// InsertWith runs q and the inserts in with, which go first. On PostgreSQL
// they are one statement, each of with a data-modifying WITH clause of q:
// one round trip for all, and atomic even outside a transaction. SQLite has
// no such clauses: each of with is a statement of its own, and db must be a
// transaction for them to be atomic.
func InsertWith(ctx context.Context, db bun.IDB, q *bun.InsertQuery, with ...*bun.InsertQuery) error {
	if !IsPostgres(db) {
		for _, w := range with {
			if _, err := w.Exec(ctx); err != nil {
				return fmt.Errorf("insert into %s: %w", w.GetTableName(), err)
			}
		}
		_, err := q.Exec(ctx)
		return err
	}
	for i, w := range with {
		q = q.With(fmt.Sprintf("insert_%d", i+1), w)
	}
	_, err := q.Exec(ctx)
	return err
}
