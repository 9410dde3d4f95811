package servicetest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"shop/services/platform/service"
)

// InternalToken is the service credential Serve's services accept.
const InternalToken = "test-internal-token-0123456789"

// Serve runs a service (its app.Run) on loopback until t ends, with both
// listeners on free ports, a fresh SQLite database and a fresh miniredis,
// and returns the base URLs of its public and internal listeners. The
// internal one takes InternalToken.
func Serve(t testing.TB, cfg service.Config, run func(context.Context, service.Config) error) (public, internal string) {
	t.Helper()
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.InternalAddr = "127.0.0.1:0"
	cfg.InternalToken = InternalToken
	cfg.DatabaseURL = "sqlite:" + filepath.Join(t.TempDir(), "service.db")
	cfg.RedisURL = "redis://" + miniredis.RunT(t).Addr()
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.ClaimIdle = 30 * time.Second
	addrs := make(chan net.Addr, 1)
	internalAddrs := make(chan net.Addr, 1)
	cfg.OnListen = func(a net.Addr) { addrs <- a }
	cfg.OnInternalListen = func(a net.Addr) { internalAddrs <- a }

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("service stopped with %v", err)
		}
	})
	for public == "" || internal == "" {
		select {
		case a := <-addrs:
			public = "http://" + a.String()
		case a := <-internalAddrs:
			internal = "http://" + a.String()
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("service did not start: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("service did not start listening within 30s")
		}
	}
	return public, internal
}

// Call sends method url with body (a JSON string, or "" for none) over
// HTTP, with token as the bearer credential unless it is "".
func Call(t testing.TB, method, url, body, token string) Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Bearer sends every request to h with token as its bearer credential.
func Bearer(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+token)
		h.ServeHTTP(w, r)
	})
}
