package app_test

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"shop/services/orders/app"
	"shop/services/orders/internal/store"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/service/servicetest"
)

// A database that cannot be reached makes every operation answer 503 with
// Retry-After and no internal detail, and readiness fail; invalid input is
// still 422.
func TestUnreachableDatabaseAnswers503(t *testing.T) {
	infra, _ := servicetest.Infra(t, dbtest.SQLite, store.Migrations)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	cfg, err := pgx.ParseConfig("postgres://postgres@" + addr + "/orders?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	infra.DB = bun.NewDB(stdlib.OpenDB(*cfg), pgdialect.New())
	t.Cleanup(func() { infra.DB.Close() })
	h := app.New(infra, app.Config{}).Handler

	for _, req := range []struct{ method, path, body string }{
		{"POST", "/orders", `{"user_id":5,"amount":"30.00"}`},
		{"GET", "/orders?user_id=5", ""},
		{"GET", "/orders/0190f5a0-0000-7000-8000-000000000000", ""},
	} {
		resp := servicetest.Do(t, h, req.method, req.path, req.body)
		p := resp.Problem(t, http.StatusServiceUnavailable)
		if resp.Header.Get("Retry-After") != "5" {
			t.Errorf("%s %s: Retry-After %q, want 5", req.method, req.path, resp.Header.Get("Retry-After"))
		}
		if strings.Contains(string(resp.Body), addr) || strings.Contains(string(resp.Body), "refused") || p.Detail != "service temporarily unavailable, try again" {
			t.Errorf("%s %s: body %s", req.method, req.path, resp.Body)
		}
	}
	servicetest.Do(t, h, "POST", "/orders", `{"user_id":0,"amount":"30.00"}`).Problem(t, http.StatusUnprocessableEntity)
	servicetest.Do(t, h, "GET", "/readyz", "").Problem(t, http.StatusServiceUnavailable)
}
