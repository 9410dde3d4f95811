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
	"github.com/uptrace/bun"
)

// ErrDuplicate is returned by Process when the message was processed before.
var ErrDuplicate = errors.New("message already processed")

// Row is the inbox table, created by each service's migrations:
//
//	CREATE TABLE inbox (
//	    message_id   UUID PRIMARY KEY,
//	    type         TEXT NOT NULL,
//	    processed_at TIMESTAMPTZ NOT NULL
//	);
//	CREATE INDEX inbox_processed_at ON inbox (processed_at);
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
		if err := Record(ctx, tx, messageID, msgType); err != nil {
			return err
		}
		return fn(ctx, tx)
	})
}

// Record notes messageID as processed within tx, or returns ErrDuplicate.
func Record(ctx context.Context, tx bun.IDB, messageID uuid.UUID, msgType string) error {
	res, err := tx.NewInsert().
		Model(&Row{MessageID: messageID, Type: msgType, ProcessedAt: time.Now().UTC()}).
		On("CONFLICT (message_id) DO NOTHING").
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("record message %s: %w", messageID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrDuplicate
	}
	return nil
}
