package inbox_test

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"

	"shop/services/platform/inbox"
	mt "shop/services/platform/messaging/messagingtest"
)

// RecordAll reports each new id as fresh, and as not fresh an id recorded
// by an earlier call or repeated earlier in the same call; the table holds
// each id once.
func TestRecordAllReportsWhichMessagesAreNew(t *testing.T) {
	for _, d := range mt.Databases(t) {
		t.Run(d.Name, func(t *testing.T) {
			ctx := context.Background()
			var id [5]uuid.UUID
			for i := range id {
				id[i] = uuid.Must(uuid.NewV7())
			}
			entries := func(ids ...uuid.UUID) []inbox.Entry {
				var es []inbox.Entry
				for _, x := range ids {
					es = append(es, inbox.Entry{ID: x, Type: "t"})
				}
				return es
			}

			fresh, err := inbox.RecordAll(ctx, d.DB, entries(id[0], id[1], id[2]))
			if err != nil {
				t.Fatal(err)
			}
			if want := []bool{true, true, true}; !slices.Equal(fresh, want) {
				t.Fatalf("first call: fresh = %v, want %v", fresh, want)
			}

			// Old, new, a repeat of that new one, old, new, a repeat of an old one.
			fresh, err = inbox.RecordAll(ctx, d.DB, entries(id[1], id[3], id[3], id[0], id[4], id[0]))
			if err != nil {
				t.Fatal(err)
			}
			if want := []bool{false, true, false, false, true, false}; !slices.Equal(fresh, want) {
				t.Fatalf("second call: fresh = %v, want %v", fresh, want)
			}

			var rows []inbox.Row
			if err := d.DB.NewSelect().Model(&rows).Scan(ctx); err != nil {
				t.Fatal(err)
			}
			count := map[uuid.UUID]int{}
			for _, r := range rows {
				count[r.MessageID]++
				if r.Type != "t" || r.ProcessedAt.IsZero() {
					t.Errorf("row %+v: want type t and a processing time", r)
				}
			}
			if len(rows) != len(id) {
				t.Fatalf("table holds %d rows, want %d", len(rows), len(id))
			}
			for _, x := range id {
				if count[x] != 1 {
					t.Fatalf("id %s recorded %d times, want once", x, count[x])
				}
			}
		})
	}
}

// RecordAll of nothing is no error and reports nothing.
func TestRecordAllOfNothing(t *testing.T) {
	for _, d := range mt.Databases(t) {
		t.Run(d.Name, func(t *testing.T) {
			fresh, err := inbox.RecordAll(context.Background(), d.DB, nil)
			if err != nil || len(fresh) != 0 {
				t.Fatalf("RecordAll(nil) = %v, %v; want nothing and no error", fresh, err)
			}
		})
	}
}
