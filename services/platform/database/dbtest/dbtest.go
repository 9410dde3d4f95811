// Package dbtest gives tests a migrated database: SQLite always, and
// PostgreSQL when TEST_DATABASE_URL is set, each test in a schema of its own.
// With CI=true a PostgreSQL that is not configured or not reachable fails the
// test instead of skipping it.
package dbtest

import (
	"context"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"shop/services/platform/database"
)

// Dialects are the names Each runs a test under.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Each runs fn as a subtest once per available database, each freshly
// migrated with migrations.
func Each(t *testing.T, migrations fs.FS, fn func(t *testing.T, db *bun.DB)) {
	t.Helper()
	t.Run(SQLite, func(t *testing.T) { fn(t, Open(t, SQLite, migrations)) })
	t.Run(Postgres, func(t *testing.T) { fn(t, Open(t, Postgres, migrations)) })
}

// Open returns a migrated database of the given dialect, closed (and on
// PostgreSQL dropped) when t ends. Without TEST_DATABASE_URL a PostgreSQL
// test is skipped, unless CI=true, where it fails.
func Open(t testing.TB, dialect string, migrations fs.FS) *bun.DB {
	t.Helper()
	ctx := context.Background()
	var dsn string
	switch dialect {
	case SQLite:
		dsn = "sqlite:" + filepath.Join(t.TempDir(), "test.db")
	case Postgres:
		dsn = PostgresURL(t)
	default:
		t.Fatalf("unknown dialect %q", dialect)
	}
	db := OpenURL(t, dsn)
	if migrations != nil {
		if _, err := database.Migrate(ctx, db, migrations); err != nil {
			t.Fatalf("migrate %s: %v", dialect, err)
		}
	}
	return db
}

// OpenURL opens the database at dsn (as database.Open does), closed when t
// ends, whose statements Count can record.
func OpenURL(t testing.TB, dsn string) *bun.DB {
	t.Helper()
	counter := new(Statements)
	db, err := database.Open(context.Background(), dsn, database.Options{QueryTracer: counter})
	if err != nil {
		t.Fatalf("open %s: %v", dsn, err)
	}
	if !database.IsPostgres(db) {
		db.AddQueryHook(counter)
	}
	counters.Store(db, counter)
	t.Cleanup(func() { counters.Delete(db); db.Close() })
	return db
}

// PostgresURL returns the URL of a new, empty schema in the TEST_DATABASE_URL
// database, dropped when t ends.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		Unavailable(t, "TEST_DATABASE_URL is not set")
	}
	ctx := context.Background()
	admin, err := database.Open(ctx, base, database.Options{MaxOpenConns: 2})
	if err != nil {
		Unavailable(t, fmt.Sprintf("PostgreSQL at TEST_DATABASE_URL: %v", err))
	}
	schema := "t_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Unavailable skips t because a service it needs is missing, or fails it
// when CI=true: CI provides every service, so a missing one is a broken run.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but %s", why)
	}
	t.Skipf("skipped: %s", why)
}
