package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"shop/services/platform/web"
)

func TestOptionalCheckNeverMakesUnready(t *testing.T) {
	down := func(context.Context) error { return errors.New("down") }
	up := func(context.Context) error { return nil }
	tests := []struct {
		name       string
		checks     []web.Check
		wantStatus int
		wantChecks map[string]string
	}{
		{"optional down", []web.Check{{Name: "db", Check: up}, {Name: "redis", Check: down, Optional: true}},
			http.StatusOK, map[string]string{"db": "ok", "redis": "unavailable"}},
		{"required down", []web.Check{{Name: "db", Check: down}, {Name: "redis", Check: up, Optional: true}},
			http.StatusServiceUnavailable, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			web.NewHealth(tt.checks...).Register(web.NewAPI(mux, "Test", "test API"))
			for _, path := range []string{"/health", "/readyz"} {
				rec := serve(mux, "GET", path, "", nil)
				if rec.Code != tt.wantStatus {
					t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
				}
				if tt.wantChecks == nil {
					continue
				}
				var s web.Status
				if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
					t.Fatal(err)
				}
				if s.Status != "degraded" || len(s.Checks) != len(tt.wantChecks) {
					t.Errorf("%s: %+v, want checks %v", path, s, tt.wantChecks)
				}
				for k, v := range tt.wantChecks {
					if s.Checks[k] != v {
						t.Errorf("%s: %s = %q, want %q", path, k, s.Checks[k], v)
					}
				}
			}
		})
	}
}
