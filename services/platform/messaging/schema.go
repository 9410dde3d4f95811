package messaging

import (
	"embed"
	"fmt"
	"io/fs"

	"shop/services/platform/database"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations create the platform's tables, the outbox and inbox
// (outbox.Row, inbox.Row) and the idempotency keys (idempotency.Row): the
// one definition of them that every service, test and benchmark uses.
// A service applies them first in its migration sequence (see
// ServiceMigrations).
var Migrations, _ = fs.Sub(migrations, "migrations")

// ServiceMigrations are what a service applies: Migrations, then its own,
// the files in dir of fsys (an embedded migrations directory).
func ServiceMigrations(fsys fs.FS, dir string) fs.FS {
	own, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(fmt.Sprintf("migrations directory %q: %v", dir, err)) // only for an invalid name
	}
	return database.Join(Migrations, own)
}
