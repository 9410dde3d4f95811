package servicetest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// DoWith is Do with extra request headers (name, value pairs), such as the
// gateway's X-User-Id or an Idempotency-Key.
func DoWith(t testing.TB, h http.Handler, method, path, body string, header ...string) Response {
	t.Helper()
	if len(header)%2 != 0 {
		t.Fatalf("DoWith: headers %q are not name, value pairs", header)
	}
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return Response{Status: rec.Code, Header: rec.Header(), Body: bytes.Clone(rec.Body.Bytes())}
}
