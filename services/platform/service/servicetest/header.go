package servicetest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/uptrace/bun"
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

// InFlight sends the same keyed request twice at once while db's only
// connection (SQLite) is held, so the first cannot finish: the second must
// be answered 409 at once, and the first, once the connection is free,
// with want and no Idempotent-Replayed. It returns the first's answer.
func InFlight(t testing.TB, db *bun.DB, h http.Handler, method, path, body string, want int, header ...string) Response {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	answers := make(chan Response, 2)
	for range 2 {
		go func() { answers <- DoWith(t, h, method, path, body, header...) }()
	}
	// Whichever claimed the key first waits for the database; the other is
	// answered at once.
	if busy := <-answers; busy.Status != http.StatusConflict || !strings.Contains(string(busy.Body), "in progress") {
		t.Fatalf("second request: %d %s", busy.Status, busy.Body)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	done := <-answers
	if done.Status != want || done.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first request: %d %v %s", done.Status, done.Header, done.Body)
	}
	return done
}

// Concurrently sends the same request n times at once, spread over the
// handlers in turn (replicas of a service sharing its database), and
// returns the answers in sending order.
func Concurrently(t testing.TB, n int, handlers []http.Handler, method, path, body string, header ...string) []Response {
	t.Helper()
	answers := make([]Response, n)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i] = DoWith(t, handlers[i%len(handlers)], method, path, body, header...) })
	}
	wg.Wait()
	return answers
}
