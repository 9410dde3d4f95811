// Package database opens the services' database through Bun, PostgreSQL or
// embedded SQLite chosen by the URL alone, and applies a service's embedded
// migrations at start-up under a lock.
package database

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/migrate"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// Options tune the connection pool. The zero value is sensible.
type Options struct {
	// MaxOpenConns caps PostgreSQL connections (default 16). SQLite always
	// uses one connection: it has a single writer anyway, and an in-memory
	// database exists once per connection.
	MaxOpenConns int
	// QueryTracer, if set, sees every statement pgx sends to PostgreSQL,
	// Bun's and prepared ones, BEGIN and COMMIT included (tests count round
	// trips with it).
	QueryTracer pgx.QueryTracer
}

// Open connects to url, which is either "postgres://…" (or "postgresql://…")
// or "sqlite:PATH", "sqlite::memory:" included, and checks the connection.
// A SQLite file's directory is created if missing.
func Open(ctx context.Context, rawURL string, opts Options) (*bun.DB, error) {
	var db *bun.DB
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		cfg, err := pgx.ParseConfig(rawURL)
		if err != nil {
			return nil, fmt.Errorf("parse database URL: %w", err)
		}
		// Bun writes argument values into the SQL text itself, so preparing
		// each statement (pgx's default) would buy nothing and cost a round
		// trip and a server-side plan per new statement text. A
		// default_query_exec_mode in the URL still wins.
		if !strings.Contains(rawURL, "default_query_exec_mode") {
			cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
		}
		if opts.QueryTracer != nil {
			cfg.Tracer = opts.QueryTracer
		}
		sqldb := stdlib.OpenDB(*cfg)
		n := opts.MaxOpenConns
		if n <= 0 {
			n = 16
		}
		sqldb.SetMaxOpenConns(n)
		sqldb.SetMaxIdleConns(n)
		sqldb.SetConnMaxIdleTime(5 * time.Minute)
		db = bun.NewDB(sqldb, pgdialect.New())
	case strings.HasPrefix(rawURL, "sqlite:"):
		dsn, err := sqliteDSN(strings.TrimPrefix(rawURL, "sqlite:"))
		if err != nil {
			return nil, err
		}
		sqldb, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		sqldb.SetMaxOpenConns(1)
		sqldb.SetMaxIdleConns(1)
		sqldb.SetConnMaxLifetime(0)
		sqldb.SetConnMaxIdleTime(0)
		db = bun.NewDB(sqldb, sqlitedialect.New())
	default:
		return nil, fmt.Errorf("database URL %q: want postgres://… or sqlite:PATH", Redact(rawURL))
	}
	if err := ping(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", Redact(rawURL), err)
	}
	return db, nil
}

// ping checks the connection. SQLite may answer SQLITE_BUSY while another
// process switches the same file to WAL, which the busy timeout does not
// cover, so that is retried for a while.
func ping(ctx context.Context, db *bun.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		err := db.PingContext(ctx)
		if err == nil || !strings.Contains(err.Error(), "SQLITE_BUSY") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// ValidateURL reports whether rawURL names a database Open understands,
// without connecting.
func ValidateURL(rawURL string) error {
	switch {
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		if _, err := pgx.ParseConfig(rawURL); err != nil {
			return fmt.Errorf("invalid PostgreSQL URL: %w", err)
		}
		return nil
	case strings.HasPrefix(rawURL, "sqlite:") && len(rawURL) > len("sqlite:"):
		return nil
	}
	return fmt.Errorf("%q: want postgres://… or sqlite:PATH", Redact(rawURL))
}

// sqliteDSN builds the driver's DSN: WAL for concurrent readers, a busy
// timeout, immediate write transactions (no deadlock on lock upgrade) and
// foreign keys on.
func sqliteDSN(path string) (string, error) {
	const pragmas = "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate"
	if path == ":memory:" {
		return "file::memory:?" + pragmas, nil
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return "", fmt.Errorf("create database directory: %w", err)
		}
	}
	return "file:" + path + "?" + pragmas + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)", nil
}

// Redact hides the password of a database URL for messages and logs.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	return u.Redacted()
}

// IsPostgres reports whether db is a PostgreSQL database.
func IsPostgres(db bun.IDB) bool {
	return db.Dialect().Name().String() == "pg"
}

// LockRows adds the row-locking clause lock ("UPDATE", "UPDATE SKIP
// LOCKED") to q on PostgreSQL, and nothing on SQLite, where a writing
// transaction holds the only write lock and so needs no row locks.
func LockRows(db bun.IDB, q *bun.SelectQuery, lock string) *bun.SelectQuery {
	if IsPostgres(db) {
		return q.For(lock)
	}
	return q
}

// migrationLockKey is the PostgreSQL advisory lock key that serialises
// migrations between replicas starting at once: the first 8 bytes of
// "shop-migrate" as a number.
const migrationLockKey = 0x73686f702d6d6967

// Migrate applies the migrations in fsys (files named
// 20260101000000_name.tx.up.sql) that are not applied yet, under a lock so
// that processes starting together migrate once: a PostgreSQL advisory lock,
// or on SQLite an flock on a file beside the database.
func Migrate(ctx context.Context, db *bun.DB, fsys fs.FS) (applied []string, err error) {
	migrations := migrate.NewMigrations()
	if err := migrations.Discover(fsys); err != nil {
		return nil, fmt.Errorf("discover migrations: %w", err)
	}
	if !IsPostgres(db) {
		var file string
		if err := db.NewRaw("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(ctx, &file); err != nil {
			return nil, fmt.Errorf("find database file: %w", err)
		}
		if file != "" { // "" is an in-memory database: nobody else sees it
			unlock, err := lockFile(file + ".migrate-lock")
			if err != nil {
				return nil, err
			}
			defer unlock()
		}
	}
	if IsPostgres(db) {
		conn, err := db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", int64(migrationLockKey)); err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		defer func() {
			// A fresh context: the lock must go even when ctx is done.
			unlockCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, uerr := conn.ExecContext(unlockCtx, "SELECT pg_advisory_unlock(?)", int64(migrationLockKey)); uerr != nil {
				err = errors.Join(err, fmt.Errorf("migration unlock: %w", uerr))
			}
		}()
	}
	migrator := migrate.NewMigrator(db, migrations)
	if err := migrator.Init(ctx); err != nil {
		return nil, fmt.Errorf("init migrations: %w", err)
	}
	group, err := migrator.Migrate(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	for _, m := range group.Migrations {
		applied = append(applied, m.Name+"_"+m.Comment)
	}
	return applied, nil
}

// Pending reports how many migrations in fsys are not applied yet; readiness
// checks use it.
func Pending(ctx context.Context, db *bun.DB, fsys fs.FS) (int, error) {
	migrations := migrate.NewMigrations()
	if err := migrations.Discover(fsys); err != nil {
		return 0, err
	}
	// Not MissingMigrations: that lists the applied ones that fsys lacks.
	all, err := migrate.NewMigrator(db, migrations).MigrationsWithStatus(ctx)
	if err != nil {
		return 0, err
	}
	return len(all.Unapplied()), nil
}

// Join returns the migrations of several directories as one sequence, as
// a service applies the platform's (messaging.Migrations) with its own.
// Each directory holds its files at its root; their names must differ.
func Join(dirs ...fs.FS) fs.FS {
	j := joined{files: map[string]fs.FS{}}
	for _, dir := range dirs {
		entries, err := fs.ReadDir(dir, ".")
		if err != nil {
			j.err = err
			return j
		}
		for _, e := range entries {
			if !e.IsDir() {
				j.files[e.Name()] = dir
				j.entries = append(j.entries, e)
			}
		}
	}
	if len(dirs) > 0 {
		j.root = dirs[0]
	}
	slices.SortFunc(j.entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return j
}

// joined is the file system Join returns: its root lists the files of every
// directory, and each file opens from the directory that holds it.
type joined struct {
	root    fs.FS
	files   map[string]fs.FS
	entries []fs.DirEntry
	err     error
}

func (j joined) Open(name string) (fs.File, error) {
	if name == "." {
		if j.err != nil || j.root == nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: cmp.Or(j.err, fs.ErrNotExist)}
		}
		return j.root.Open(".")
	}
	dir, ok := j.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return dir.Open(name)
}

func (j joined) ReadDir(name string) ([]fs.DirEntry, error) {
	if name != "." || j.err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: cmp.Or(j.err, fs.ErrNotExist)}
	}
	return slices.Clone(j.entries), nil
}
