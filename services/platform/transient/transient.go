// Package transient tells a failure that may pass from one that will not:
// an error is transient when a dependency was unreachable or busy (the
// database refused or dropped the connection, an operation timed out, a
// transaction lost a serialization conflict or a deadlock, SQLite was
// locked), so the very same operation may succeed later. Stream consumers
// retry such a message without counting it toward the dead-letter limit,
// and the HTTP API answers it with 503 and Retry-After rather than 500.
package transient

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Is reports whether err, or an error it wraps, is transient.
func Is(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	var connect *pgconn.ConnectError
	if errors.As(err, &connect) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return postgresCode(pg.Code)
	}
	var lite sqliteError
	if errors.As(err, &lite) {
		// The primary result code is the low byte of an extended one.
		switch lite.Code() & 0xff {
		case sqliteBusy, sqliteLocked:
			return true
		}
		return false
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// postgresCode reports whether a PostgreSQL error code (SQLSTATE) is
// transient: the connection or the server went away, the server is short of
// resources or starting or stopping, a transaction lost a conflict, a
// timeout struck, or a standby refused a write during a failover.
func postgresCode(code string) bool {
	switch code {
	case "40001", // serialization_failure
		"40P01", // deadlock_detected
		"55P03", // lock_not_available (lock_timeout)
		"57014", // query_canceled (statement_timeout)
		"57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now
		"57P05", // idle_session_timeout
		"25006": // read_only_sql_transaction: a standby during failover
		return true
	}
	if len(code) != 5 {
		return false
	}
	switch code[:2] {
	case "08", // connection_exception
		"53": // insufficient_resources (too_many_connections, out_of_memory, disk_full)
		return true
	}
	return false
}

// sqliteError is the error of modernc.org/sqlite, named by its method so
// that this package does not link the driver.
type sqliteError interface {
	error
	Code() int
}

// SQLite's primary result codes.
const (
	sqliteBusy   = 5
	sqliteLocked = 6
)
