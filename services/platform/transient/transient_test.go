package transient_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/transient"
)

// closedPort returns an address on which nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestTransientErrors(t *testing.T) {
	ctx := context.Background()
	url := dbtest.PostgresURL(t)
	admin := connect(t, url)
	exec(t, admin, "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL)")
	exec(t, admin, "INSERT INTO t VALUES (1, 0), (2, 0)")

	cases := map[string]func(t *testing.T) error{
		"pgx connection refused": func(t *testing.T) error {
			_, err := pgx.Connect(ctx, "postgres://postgres@"+closedPort(t)+"/x?sslmode=disable&connect_timeout=2")
			return err
		},
		"database/sql connection refused": func(t *testing.T) error {
			db, err := database.Open(ctx, "postgres://postgres@"+closedPort(t)+"/x?sslmode=disable&connect_timeout=2", database.Options{})
			if err == nil {
				db.Close()
			}
			return err
		},
		"serialization failure": func(t *testing.T) error {
			a, b := connect(t, url), connect(t, url)
			exec(t, a, "BEGIN ISOLATION LEVEL REPEATABLE READ")
			exec(t, a, "SELECT v FROM t WHERE id = 1")
			exec(t, b, "UPDATE t SET v = v + 1 WHERE id = 1")
			_, err := a.Exec(ctx, "UPDATE t SET v = v + 1 WHERE id = 1")
			a.Exec(ctx, "ROLLBACK")
			return err
		},
		"deadlock": func(t *testing.T) error {
			a, b := connect(t, url), connect(t, url)
			exec(t, a, "BEGIN")
			exec(t, b, "BEGIN")
			exec(t, a, "UPDATE t SET v = v + 1 WHERE id = 1")
			exec(t, b, "UPDATE t SET v = v + 1 WHERE id = 2")
			var wg sync.WaitGroup
			var errA, errB error
			wg.Go(func() { _, errA = a.Exec(ctx, "UPDATE t SET v = v + 1 WHERE id = 2") })
			wg.Go(func() { _, errB = b.Exec(ctx, "UPDATE t SET v = v + 1 WHERE id = 1") })
			wg.Wait()
			a.Exec(ctx, "ROLLBACK")
			b.Exec(ctx, "ROLLBACK")
			if (errA == nil) == (errB == nil) {
				t.Fatalf("want exactly one deadlock victim, got %v and %v", errA, errB)
			}
			return errors.Join(errA, errB)
		},
		"backend terminated": func(t *testing.T) error {
			victim := connect(t, url)
			exec(t, admin, fmt.Sprintf("SELECT pg_terminate_backend(%d)", victim.PgConn().PID()))
			_, err := victim.Exec(ctx, "SELECT 1")
			return err
		},
		"statement timeout": func(t *testing.T) error {
			c := connect(t, url)
			exec(t, c, "SET statement_timeout = '50ms'")
			_, err := c.Exec(ctx, "SELECT pg_sleep(5)")
			return err
		},
		"context deadline": func(t *testing.T) error {
			c := connect(t, url)
			dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			_, err := c.Exec(dctx, "SELECT pg_sleep(5)")
			return err
		},
		"sqlite busy": func(t *testing.T) error {
			dsn := "file:" + filepath.Join(t.TempDir(), "busy.db") + "?_pragma=busy_timeout(0)&_pragma=journal_mode(WAL)&_txlock=immediate"
			a, err := sql.Open("sqlite", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			b, err := sql.Open("sqlite", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			txA, err := a.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer txA.Rollback()
			txB, err := b.Begin()
			if err == nil {
				txB.Rollback()
			}
			return err
		},
	}
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) {
			err := fn(t)
			if err == nil {
				t.Fatal("no error")
			}
			if !transient.Is(err) || !transient.Is(fmt.Errorf("wrapped: %w", err)) {
				t.Fatalf("transient.Is(%v (%T)) = false, want true", err, err)
			}
		})
	}
}

func TestPermanentErrors(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, dbtest.PostgresURL(t))
	exec(t, conn, "CREATE TABLE u (id int PRIMARY KEY)")
	exec(t, conn, "INSERT INTO u VALUES (1)")
	_, unique := conn.Exec(ctx, "INSERT INTO u VALUES (1)")
	_, syntax := conn.Exec(ctx, "SELEC 1")
	_, check := conn.Exec(ctx, "SELECT 1/0")
	var row int
	noRows := conn.QueryRow(ctx, "SELECT id FROM u WHERE id = 2").Scan(&row)

	for name, err := range map[string]error{
		"unique violation": unique,
		"syntax error":     syntax,
		"division by zero": check,
		"no rows":          noRows,
		"plain error":      errors.New("order not found"),
		"cancelled":        context.Canceled,
		"nil":              nil,
	} {
		t.Run(name, func(t *testing.T) {
			if name != "nil" && err == nil {
				t.Fatal("no error")
			}
			if transient.Is(err) {
				t.Fatalf("transient.Is(%v (%T)) = true, want false", err, err)
			}
		})
	}
}
