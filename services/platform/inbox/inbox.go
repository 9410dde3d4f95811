// Package inbox is the transactional inbox: a consumer records each message
// id in the same transaction as the message's effect, so a message delivered
// twice (a redelivery, a duplicate publish, a retried HTTP call) takes effect
// once.
package inbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"shop/services/platform/database"
)

// ErrDuplicate is returned by Process when the message was processed before.
var ErrDuplicate = errors.New("message already processed")

// Row is a row of the inbox table, which messaging.Migrations creates.
type Row struct {
	bun.BaseModel `bun:"table:inbox"`

	MessageID   uuid.UUID `bun:"message_id,pk,type:uuid"`
	Type        string    `bun:"type,notnull"`
	ProcessedAt time.Time `bun:"processed_at,notnull"`
}

// Process runs fn in one transaction with the record of messageID. If the
// message was processed before, fn does not run and Process returns
// ErrDuplicate. If fn fails, nothing is recorded and the message can be
// processed again.
func Process(ctx context.Context, db bun.IDB, messageID uuid.UUID, msgType string, fn func(ctx context.Context, tx bun.Tx) error) error {
	return db.RunInTx(ctx, &sql.TxOptions{}, func(ctx context.Context, tx bun.Tx) error {
		if err := record(ctx, tx, messageID, msgType); err != nil {
			return err
		}
		return fn(ctx, tx)
	})
}

// record notes messageID as processed within tx, or returns ErrDuplicate.
func record(ctx context.Context, tx bun.IDB, messageID uuid.UUID, msgType string) error {
	fresh, err := RecordAll(ctx, tx, []Entry{{ID: messageID, Type: msgType}})
	if err != nil {
		return err
	}
	if !fresh[0] {
		return ErrDuplicate
	}
	return nil
}

// Entry is a message to record: its id and type.
type Entry struct {
	ID   uuid.UUID
	Type string
}

// RecordAll notes the messages as processed within tx with one statement,
// and reports for each whether it is new: false for one processed before,
// and for a repeat of an id earlier in entries.
func RecordAll(ctx context.Context, tx bun.IDB, entries []Entry) (fresh []bool, err error) {
	if len(entries) == 0 {
		return make([]bool, 0), nil
	}
	inserted, err := insert(ctx, tx, entries, time.Now().UTC())
	if err != nil {
		return nil, fmt.Errorf("record %d messages: %w", len(entries), err)
	}
	return freshOf(entries, inserted), nil
}

// Recording is RecordAll as the statement that opens a transaction on
// PostgreSQL (database.RunInTxOpening), which sends it with BEGIN. Once
// the statement has run, fresh reports what RecordAll would; entries must
// not be empty.
func Recording(entries []Entry) (open database.Opening, fresh func() []bool) {
	ids, types := columns(entries)
	var inserted []uuid.UUID
	open = database.Opening{
		Statement: recordStatement,
		Args:      []any{ids, types, time.Now().UTC()},
		Rows: func(rows pgx.Rows) error {
			var err error
			if inserted, err = scanIDs(rows); err != nil {
				return fmt.Errorf("record %d messages: %w", len(entries), err)
			}
			return nil
		},
	}
	return open, func() []bool { return freshOf(entries, inserted) }
}

// freshOf reports for each of entries whether its id is among inserted,
// and not a repeat of an id earlier in entries.
func freshOf(entries []Entry, inserted []uuid.UUID) []bool {
	fresh := make([]bool, len(entries))
	added := make(map[uuid.UUID]bool, len(inserted))
	for _, id := range inserted {
		added[id] = true
	}
	for i, e := range entries {
		fresh[i] = added[e.ID]
		delete(added, e.ID) // a repeat within entries is a duplicate
	}
	return fresh
}

// columns are the ids and the types of entries, as recordStatement takes
// them.
func columns(entries []Entry) (ids []uuid.UUID, types []string) {
	ids, types = make([]uuid.UUID, len(entries)), make([]string, len(entries))
	for i, e := range entries {
		ids[i], types[i] = e.ID, e.Type
	}
	return ids, types
}

// recordStatement is RecordAll's insert on PostgreSQL, prepared: one text
// whatever the number of messages.
var recordStatement = database.NewStatement("INSERT", "inbox", `INSERT INTO inbox (message_id, type, processed_at)
SELECT id, type, $3 FROM unnest($1::uuid[], $2::text[]) AS m (id, type)
ON CONFLICT (message_id) DO NOTHING
RETURNING message_id`)

// insert adds the entries processed at now, skipping the ids recorded
// before, and returns the ids it added.
func insert(ctx context.Context, tx bun.IDB, entries []Entry, now time.Time) ([]uuid.UUID, error) {
	var inserted []uuid.UUID
	if !database.IsPostgres(tx) {
		rows := make([]Row, len(entries))
		for i, e := range entries {
			rows[i] = Row{MessageID: e.ID, Type: e.Type, ProcessedAt: now}
		}
		_, err := tx.NewInsert().Model(&rows).
			On("CONFLICT (message_id) DO NOTHING").
			Returning("message_id").
			Exec(ctx, &inserted)
		return inserted, err
	}
	ids, types := columns(entries)
	rows, err := recordStatement.Query(ctx, tx, ids, types, now)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanIDs(rows)
}

// scanIDs reads the message ids recordStatement returns, from
// database/sql's rows or pgx's.
func scanIDs(rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}
