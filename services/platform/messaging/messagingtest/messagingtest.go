// Package messagingtest provides what the messaging tests of any service
// need: the outbox and inbox tables (messaging.Migrations) on an in-memory SQLite database and, when
// TEST_DATABASE_URL is set, on a PostgreSQL schema of the test's own; and a
// Redis broker, miniredis always and a real server when TEST_REDIS_URL is
// set. With CI=true an unreachable TEST_DATABASE_URL or TEST_REDIS_URL fails
// the test instead of skipping it.
package messagingtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/messaging"
	"shop/services/platform/polltest"
)

// Database is one database a test runs on.
type Database struct {
	Name string // "sqlite" or "postgres"
	DB   *bun.DB
	// URL opens the same database (for PostgreSQL, the same schema) again.
	URL string
}

// Databases returns SQLite, and PostgreSQL when TEST_DATABASE_URL is set,
// each with the messaging tables created.
func Databases(t testing.TB, extra ...string) []Database {
	dbs := []Database{{Name: "sqlite", DB: SQLite(t, extra...), URL: "sqlite::memory:"}}
	if os.Getenv("TEST_DATABASE_URL") != "" {
		db, u := Postgres(t, extra...)
		dbs = append(dbs, Database{Name: "postgres", DB: db, URL: u})
	}
	return dbs
}

// SQLite returns a fresh in-memory database with the messaging tables and
// the extra statements run.
func SQLite(t testing.TB, extra ...string) *bun.DB {
	t.Helper()
	db := dbtest.OpenURL(t, "sqlite::memory:")
	migrate(t, db)
	exec(t, db, extra...)
	return db
}

var pgReachable = sync.OnceValue(func() error {
	db, err := database.Open(context.Background(), os.Getenv("TEST_DATABASE_URL"), database.Options{MaxOpenConns: 1})
	if err == nil {
		db.Close()
	}
	return err
})

// Postgres returns a database on a new schema of the TEST_DATABASE_URL
// database, dropped at the end of the test, with the messaging tables and
// the extra statements run; and a URL that opens that schema again. It
// skips the test when TEST_DATABASE_URL is unset.
func Postgres(t testing.TB, extra ...string) (*bun.DB, string) {
	t.Helper()
	base := os.Getenv("TEST_DATABASE_URL")
	if base == "" {
		t.Skip("TEST_DATABASE_URL is not set")
	}
	if err := pgReachable(); err != nil {
		unreachable(t, "TEST_DATABASE_URL", err)
	}
	ctx := context.Background()
	admin, err := database.Open(ctx, base, database.Options{MaxOpenConns: 1})
	if err != nil {
		unreachable(t, "TEST_DATABASE_URL", err)
	}
	defer admin.Close()
	schema := "test_" + randomHex()
	exec(t, admin, "CREATE SCHEMA "+schema)
	t.Cleanup(func() {
		admin, err := database.Open(context.Background(), base, database.Options{MaxOpenConns: 1})
		if err == nil {
			_, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE")
			admin.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema) // a run-time parameter pgx sends at connect
	u.RawQuery = q.Encode()
	db := dbtest.OpenURL(t, u.String())
	migrate(t, db)
	exec(t, db, extra...)
	return db, u.String()
}

// migrate creates the outbox and inbox tables as the services do.
func migrate(t testing.TB, db *bun.DB) {
	t.Helper()
	if _, err := database.Migrate(context.Background(), db, messaging.Migrations); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}

func exec(t testing.TB, db *bun.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// Broker is one Redis a test runs on.
type Broker struct {
	Name   string // "miniredis" or "redis"
	Client redis.UniversalClient
	// Mini is the embedded server, nil for a real one.
	Mini *miniredis.Miniredis
}

// Brokers returns miniredis, and the real Redis when TEST_REDIS_URL is set.
func Brokers(t testing.TB) []Broker {
	brokers := []Broker{Miniredis(t)}
	if os.Getenv("TEST_REDIS_URL") != "" {
		brokers = append(brokers, Redis(t))
	}
	return brokers
}

// Miniredis returns an embedded Redis that stops at the end of the test.
func Miniredis(t testing.TB) Broker {
	mini := miniredis.RunT(t)
	return Broker{Name: "miniredis", Client: client(t, &redis.Options{Addr: mini.Addr()}), Mini: mini}
}

// Redis returns a client of TEST_REDIS_URL, or skips the test when it is
// unset. Tests share that server: name keys with Stream.
func Redis(t testing.TB) Broker {
	t.Helper()
	raw := os.Getenv("TEST_REDIS_URL")
	if raw == "" {
		t.Skip("TEST_REDIS_URL is not set")
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatalf("TEST_REDIS_URL: %v", err)
	}
	c := client(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		unreachable(t, "TEST_REDIS_URL", err)
	}
	return Broker{Name: "redis", Client: c}
}

func client(t testing.TB, opts *redis.Options) redis.UniversalClient {
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// Stream returns a stream name of the test's own, deleted with its
// dead-letter stream at the end of the test.
func (b Broker) Stream(t testing.TB) string {
	name := "test." + randomHex()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Client.Del(ctx, name, name+".dlq")
	})
	return name
}

func unreachable(t testing.TB, what string, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is unreachable (CI=true, so this fails): %v", what, err)
	}
	t.Skipf("%s is unreachable: %v", what, err)
}

func randomHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Eventually polls cond until it holds, and fails the test with msg if it
// does not within timeout (see polltest.Until).
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	polltest.Until(t, timeout, func() error {
		if cond() {
			return nil
		}
		return errors.New(msg)
	})
}

// Await receives from ch, and fails the test with msg if nothing comes
// within timeout: a wait for something a defect may prevent fails in
// seconds rather than hanging until the test binary's timeout.
func Await[T any](t testing.TB, timeout time.Duration, msg string, ch <-chan T) T {
	t.Helper()
	var v T
	select {
	case v = <-ch:
	case <-time.After(timeout):
		t.Fatalf("not within %v: %s", timeout, msg)
	}
	return v
}
