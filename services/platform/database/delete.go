package database

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// DeleteInBatches deletes the rows of table that match where (with args),
// oldest first by orderBy, at most batch rows per statement so no statement
// holds long locks, and reports how many it deleted. key is the table's
// primary key column.
func DeleteInBatches(ctx context.Context, db bun.IDB, table, key, orderBy string, batch int, where string, args ...any) (int64, error) {
	var total int64
	for {
		oldest := db.NewSelect().Table(table).Column(key).
			Where(where, args...).
			OrderExpr(orderBy).
			Limit(int64(batch))
		res, err := db.NewDelete().Table(table).Where("? IN (?)", bun.Ident(key), oldest).Exec(ctx)
		if err != nil {
			return total, fmt.Errorf("delete from %s: %w", table, err)
		}
		n, _ := res.RowsAffected()
		total += n
		if n < int64(batch) || ctx.Err() != nil {
			return total, nil
		}
	}
}
