package database_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
)

var migrations = fstest.MapFS{
	"20260101000001_things.tx.up.sql": {Data: []byte("CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT NOT NULL)")},
	"20260101000002_more.tx.up.sql":   {Data: []byte("ALTER TABLE things ADD COLUMN note TEXT")},
}

func TestMigrateConcurrently(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			var url string
			if dialect == dbtest.Postgres {
				url = dbtest.PostgresURL(t)
			} else {
				url = "sqlite:" + t.TempDir() + "/m.db"
			}
			// Replicas starting together: each has its own pool; exactly one
			// applies the migrations, the others find them applied.
			const replicas = 5
			var wg sync.WaitGroup
			applied := make([][]string, replicas)
			errs := make([]error, replicas)
			for i := range replicas {
				wg.Go(func() {
					db, err := database.Open(ctx, url, database.Options{})
					if err != nil {
						errs[i] = err
						return
					}
					defer db.Close()
					applied[i], errs[i] = database.Migrate(ctx, db, migrations)
				})
			}
			wg.Wait()
			total := 0
			for i := range replicas {
				if errs[i] != nil {
					t.Fatalf("replica %d: %v", i, errs[i])
				}
				total += len(applied[i])
			}
			if total != 2 {
				t.Fatalf("migrations applied %d times in all, want 2: %v", total, applied)
			}
			db, err := database.Open(ctx, url, database.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if n, err := database.Pending(ctx, db, migrations); err != nil || n != 0 {
				t.Fatalf("Pending = %d, %v", n, err)
			}
			later := database.Join(migrations, fstest.MapFS{"29990101000000_later.tx.up.sql": {Data: []byte("SELECT 1")}})
			if n, err := database.Pending(ctx, db, later); err != nil || n != 1 {
				t.Fatalf("Pending with a migration not applied = %d, %v; want 1", n, err)
			}
			if _, err := db.ExecContext(ctx, "INSERT INTO things (id, name, note) VALUES (1, 'a', 'b')"); err != nil {
				t.Fatalf("schema not applied: %v", err)
			}
		})
	}
}

func TestValidateURL(t *testing.T) {
	good := []string{"postgres://u:p@h:5432/db?sslmode=disable", "postgresql://h/db", "sqlite:data/x.db", "sqlite::memory:"}
	bad := []string{"", "mysql://h/db", "sqlite:", "data/x.db", "postgres://h:notaport/db"}
	for _, u := range good {
		if err := database.ValidateURL(u); err != nil {
			t.Errorf("ValidateURL(%q) = %v", u, err)
		}
	}
	for _, u := range bad {
		if err := database.ValidateURL(u); err == nil {
			t.Errorf("ValidateURL(%q) accepted it", u)
		}
	}
}

func TestOpenHidesPassword(t *testing.T) {
	_, err := database.Open(context.Background(), "postgres://shop:hunter2@127.0.0.1:1/db?connect_timeout=1", database.Options{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Open error = %v; want an error without the password", err)
	}
}

func TestSQLiteMemory(t *testing.T) {
	db, err := database.Open(context.Background(), "sqlite::memory:", database.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := database.Migrate(context.Background(), db, migrations); err != nil {
		t.Fatal(err)
	}
	// One connection: the in-memory schema is visible to every query.
	if _, err := db.ExecContext(context.Background(), "INSERT INTO things (id, name) VALUES (1, 'a')"); err != nil {
		t.Fatal(err)
	}
}
