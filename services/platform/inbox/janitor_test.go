package inbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"shop/services/platform/inbox"
	mt "shop/services/platform/messaging/messagingtest"
)

func TestDeleteProcessedBefore(t *testing.T) {
	for _, d := range mt.Databases(t) {
		t.Run(d.Name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now().UTC()
			var recent uuid.UUID
			for i, at := range []time.Time{now.Add(-8 * 24 * time.Hour), now.Add(-9 * 24 * time.Hour), now.Add(-10 * 24 * time.Hour), now.Add(-time.Hour)} {
				row := &inbox.Row{MessageID: uuid.Must(uuid.NewV7()), Type: "t", ProcessedAt: at}
				if _, err := d.DB.NewInsert().Model(row).Exec(ctx); err != nil {
					t.Fatal(err)
				}
				if i == 3 {
					recent = row.MessageID
				}
			}
			n, err := inbox.DeleteProcessedBefore(ctx, d.DB, now.Add(-7*24*time.Hour), 2)
			if err != nil || n != 3 {
				t.Fatalf("deleted %d (%v), want 3", n, err)
			}
			var left []inbox.Row
			if err := d.DB.NewSelect().Model(&left).Scan(ctx); err != nil {
				t.Fatal(err)
			}
			if len(left) != 1 || left[0].MessageID != recent {
				t.Fatalf("left %v, want only the recent record", left)
			}
			// The record still works as one: the message stays a duplicate.
			if err := inbox.Record(ctx, d.DB, recent, "t"); err != inbox.ErrDuplicate {
				t.Fatalf("Record of a kept message = %v, want ErrDuplicate", err)
			}
		})
	}
}
