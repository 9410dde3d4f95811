package messaging

import (
	"embed"
	"io/fs"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations create the outbox and inbox tables (outbox.Row, inbox.Row):
// the one definition of them that every service, test and benchmark uses.
// A service applies them first in its migration sequence, joined with its
// own by database.Join.
var Migrations, _ = fs.Sub(migrations, "migrations")
