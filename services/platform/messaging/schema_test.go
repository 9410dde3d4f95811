package messaging_test

import (
	"context"
	"testing"

	"shop/services/platform/database"
	"shop/services/platform/messaging"
	mt "shop/services/platform/messaging/messagingtest"
)

// A database whose service created the outbox and inbox itself, with the
// published_at index, takes the platform's migration: the tables stay, the
// index goes.
func TestMigrationsUpgradeTablesTheServicesCreated(t *testing.T) {
	for _, d := range mt.Databases(t) {
		t.Run(d.Name, func(t *testing.T) {
			ctx := context.Background()
			// messagingtest applied the migrations: forget that, and bring
			// back what the services' first migration used to create.
			for _, stmt := range []string{
				"DELETE FROM bun_migrations",
				"CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL",
				"INSERT INTO outbox (id, stream, type, payload, occurred_at) VALUES ('01890a5d-ac96-774b-bcce-b302099a8057', 's', 't', '{}', CURRENT_TIMESTAMP)",
			} {
				if _, err := d.DB.ExecContext(ctx, stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			applied, err := database.Migrate(ctx, d.DB, messaging.Migrations)
			if err != nil || len(applied) != 2 {
				t.Fatalf("Migrate = %v, %v; want both platform migrations applied", applied, err)
			}
			if n, err := d.DB.NewSelect().Table("outbox").Count(ctx); err != nil || n != 1 {
				t.Fatalf("outbox holds %d rows (%v), want the 1 it had", n, err)
			}
			var indexes int
			q := "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'outbox_published_at'"
			if d.Name == "postgres" {
				q = "SELECT count(*) FROM pg_indexes WHERE indexname = 'outbox_published_at' AND schemaname = current_schema()"
			}
			if err := d.DB.NewRaw(q).Scan(ctx, &indexes); err != nil || indexes != 0 {
				t.Fatalf("%d indexes outbox_published_at (%v), want none", indexes, err)
			}
		})
	}
}
