package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/platform/web"
)

var errDatabaseDown = errors.New("dial tcp 10.0.0.7:5432: connect: connection refused")

// An unexpected error that the classifier set with SetUnavailable calls
// unavailable is a 503 with Retry-After and no internal text; any other is
// still a 500.
func TestUnavailableDependencyAnswers503(t *testing.T) {
	web.SetUnavailable(func(err error) bool { return errors.Is(err, errDatabaseDown) })
	t.Cleanup(func() { web.SetUnavailable(func(error) bool { return false }) })
	mux := http.NewServeMux()
	api := web.NewAPI(mux, "Test", "test API")
	huma.Register(api, huma.Operation{OperationID: "down", Method: "POST", Path: "/down"},
		func(context.Context, *greeting) (*struct{}, error) {
			return nil, fmt.Errorf("insert order: %w", errDatabaseDown)
		})
	huma.Register(api, huma.Operation{OperationID: "bug", Method: "GET", Path: "/bug"},
		func(context.Context, *struct{}) (*struct{}, error) { return nil, errors.New("nil map") })
	h := web.WithRequestID(web.WithProblems(mux))

	rec := serve(h, "POST", "/down", `{"name":"ann"}`, nil)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "5" ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
		t.Fatalf("status %d, Retry-After %q, type %q", rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("Content-Type"))
	}
	if body := rec.Body.String(); strings.Contains(body, "5432") || strings.Contains(body, "refused") || strings.Contains(body, "insert") {
		t.Fatalf("503 body leaks the cause: %s", body)
	}
	var p huma.ErrorModel
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != 503 || p.Detail != "service temporarily unavailable, try again" {
		t.Fatalf("problem = %+v, %v", p, err)
	}
	// Invalid input is still 422: the handler never ran.
	if rec := serve(h, "POST", "/down", `{"name":"toolong"}`, nil); rec.Code != 422 {
		t.Fatalf("invalid input: %d", rec.Code)
	}
	if rec := serve(h, "GET", "/bug", "", nil); rec.Code != 500 || rec.Header().Get("Retry-After") != "" {
		t.Fatalf("other error: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
}

// An optional check shows in /health but does not make the service unready;
// a required one does.
func TestOptionalCheck(t *testing.T) {
	var dbErr, brokerErr error
	health := web.NewHealth(
		web.Check{Name: "database", Check: func(context.Context) error { return dbErr }},
		web.Check{Name: "redis", Check: func(context.Context) error { return brokerErr }, Optional: true},
	)
	mux := http.NewServeMux()
	health.Register(web.NewAPI(mux, "Test", "test API"))
	status := func(path string) (int, web.Status) {
		rec := serve(mux, "GET", path, "", nil)
		var s web.Status
		json.Unmarshal(rec.Body.Bytes(), &s)
		return rec.Code, s
	}
	if code, s := status("/health"); code != 200 || s.Status != "ok" || s.Checks["redis"] != "ok" {
		t.Fatalf("all up: %d %+v", code, s)
	}
	brokerErr = errors.New("redis down")
	if code, _ := status("/readyz"); code != 200 {
		t.Fatalf("readyz with the optional check failing: %d", code)
	}
	if code, s := status("/health"); code != 200 || s.Status != "degraded" || s.Checks["redis"] != "unavailable" || s.Checks["database"] != "ok" {
		t.Fatalf("health with the optional check failing: %d %+v", code, s)
	}
	dbErr = errors.New("database down")
	rec := serve(mux, "GET", "/readyz", "", nil)
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), "database") || strings.Contains(rec.Body.String(), "redis") {
		t.Fatalf("readyz with the database down: %d %s", rec.Code, rec.Body)
	}
}
