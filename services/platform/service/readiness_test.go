package service_test

import (
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"shop/services/platform/database"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/messaging"
	"shop/services/platform/service"
	"shop/services/platform/service/servicetest"
)

// Readiness is the database: reachable, with every migration applied.
// Redis is not required.
func TestReadinessIsTheDatabase(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			infra, mr := servicetest.Infra(t, dialect, messaging.Migrations)
			h := service.NewHTTP(infra, "Test", "test")
			ready := func() servicetest.Response { return servicetest.Do(t, h.Handler, "GET", "/readyz", "") }
			if r := ready(); r.Status != http.StatusOK {
				t.Fatalf("readyz: %d %s", r.Status, r.Body)
			}
			mr.Close()
			if r := ready(); r.Status != http.StatusOK {
				t.Fatalf("readyz with Redis down: %d %s", r.Status, r.Body)
			}

			// A migration the database lacks: not ready.
			pending := fstest.MapFS{"29990101000000_later.tx.up.sql": {Data: []byte("SELECT 1")}}
			withPending := *infra
			withPending.Migrations = database.Join(infra.Migrations, pending)
			p := servicetest.Do(t, service.NewHTTP(&withPending, "Test", "test").Handler, "GET", "/readyz", "").Problem(t, 503)
			if !strings.Contains(p.Detail, "database") {
				t.Fatalf("detail %q", p.Detail)
			}

			// The database gone: not ready.
			infra.DB.Close()
			p = ready().Problem(t, 503)
			if !strings.Contains(p.Detail, "database") || strings.Contains(p.Detail, "redis") {
				t.Fatalf("detail %q should name the database only", p.Detail)
			}
		})
	}
}
