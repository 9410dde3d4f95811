package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/platform/web"
)

type greeting struct {
	Body struct {
		Name string `json:"name" maxLength:"5"`
	}
}

func newTestAPI(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	api := web.NewAPI(mux, "Test", "test API")
	huma.Register(api, huma.Operation{OperationID: "fail", Method: "GET", Path: "/fail"},
		func(context.Context, *struct{}) (*struct{}, error) {
			return nil, errors.New("pq: password authentication failed for user secret_user")
		})
	huma.Register(api, huma.Operation{OperationID: "greet", Method: "POST", Path: "/greet"},
		func(_ context.Context, in *greeting) (*struct{}, error) { return nil, nil })
	huma.Register(api, web.Internal(huma.Operation{OperationID: "internal", Method: "POST", Path: "/internal"}),
		func(context.Context, *struct{}) (*struct{}, error) { return nil, nil })
	web.NewHealth().Register(api)
	return web.WithRequestID(web.WithProblems(mux))
}

func serve(h http.Handler, method, path, body string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestServerErrorsHideTheirCause(t *testing.T) {
	rec := serve(newTestAPI(t), "GET", "/fail", "", http.Header{"X-Request-Id": {"req-123"}})
	if rec.Code != 500 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json") {
		t.Fatalf("status %d, type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	body := rec.Body.String()
	if strings.Contains(body, "secret_user") || strings.Contains(body, "pq:") {
		t.Fatalf("5xx body leaks the cause: %s", body)
	}
	var p huma.ErrorModel
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Detail != "internal error" || p.Instance != "urn:request:req-123" {
		t.Fatalf("problem = %+v, %v", p, err)
	}
}

func TestClientErrorsKeepTheirDetail(t *testing.T) {
	rec := serve(newTestAPI(t), "POST", "/greet", `{"name":"toolong"}`, nil)
	if rec.Code != 422 || !strings.Contains(rec.Body.String(), "body.name") {
		t.Fatalf("status %d body %s", rec.Code, rec.Body)
	}
}

func TestUnroutedRequestsGetProblems(t *testing.T) {
	h := newTestAPI(t)
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/nothing-here", 404, ""},
		{"DELETE", "/greet", 405, "POST"},
	}
	for _, tt := range tests {
		rec := serve(h, tt.method, tt.path, "", nil)
		if rec.Code != tt.status || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: %d %q", tt.method, tt.path, rec.Code, rec.Header().Get("Content-Type"))
		}
		if tt.allow != "" && !strings.Contains(rec.Header().Get("Allow"), tt.allow) {
			t.Errorf("%s %s: Allow %q", tt.method, tt.path, rec.Header().Get("Allow"))
		}
	}
}

func TestRequestID(t *testing.T) {
	h := newTestAPI(t)
	if got := serve(h, "GET", "/livez", "", http.Header{"X-Request-Id": {"abc-1"}}).Header().Get("X-Request-Id"); got != "abc-1" {
		t.Errorf("echoed id %q, want abc-1", got)
	}
	for _, bad := range []string{"", "has space", strings.Repeat("x", 200), "<script>"} {
		got := serve(h, "GET", "/livez", "", http.Header{"X-Request-Id": {bad}}).Header().Get("X-Request-Id")
		if got == bad || len(got) != 36 {
			t.Errorf("request id %q was not replaced by a fresh one: %q", bad, got)
		}
	}
}

func TestInternalOperationsAreMarked(t *testing.T) {
	rec := serve(newTestAPI(t), "GET", "/openapi.json", "", nil)
	var spec struct {
		Paths map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &spec); err != nil {
		t.Fatal(err)
	}
	op := spec.Paths["/internal"]["post"]
	if op["x-internal"] != true || !strings.Contains(toJSON(op["tags"]), web.InternalTag) {
		t.Fatalf("internal operation = %v", op)
	}
	if _, ok := spec.Paths["/livez"]; ok {
		t.Fatalf("probes should be hidden from the spec")
	}
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestLocalURL(t *testing.T) {
	for addr, want := range map[string]string{
		":8001":          "http://127.0.0.1:8001/readyz",
		"0.0.0.0:80":     "http://127.0.0.1:80/readyz",
		"10.1.2.3:9":     "http://10.1.2.3:9/readyz",
		"[::]:8000":      "http://127.0.0.1:8000/readyz",
		"localhost:8002": "http://localhost:8002/readyz",
	} {
		if got := web.LocalURL(addr, "/readyz"); got != want {
			t.Errorf("LocalURL(%q) = %q, want %q", addr, got, want)
		}
	}
}
