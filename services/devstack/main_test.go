package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"shop/services/devstack/e2e"
	"shop/services/platform/polltest"
	"shop/services/platform/service/servicetest"
)

// TestMakeRun runs devstack as `make run` does — embedded SQLite and Redis —
// and drives the README's scenario through its gateway.
func TestMakeRun(t *testing.T) {
	cfg := settings{
		GatewayAddr:  servicetest.FreeAddr(t),
		PaymentsAddr: servicetest.FreeAddr(t),
		OrdersAddr:   servicetest.FreeAddr(t),
		Auth:         "jwt",
		JWTSecret:    e2e.TestSecret,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("devstack stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("devstack did not stop within 30s")
		}
	})

	for _, addr := range []string{cfg.GatewayAddr, cfg.PaymentsAddr, cfg.OrdersAddr} {
		waitReady(t, "http://"+addr)
	}
	e2e.RunPaymentScenario(t, "http://"+cfg.GatewayAddr, e2e.TestSecret)
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	polltest.Until(t, 30*time.Second, func() error {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return fmt.Errorf("%s not ready: %w", base, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s not ready: %s", base, resp.Status)
		}
		return nil
	})
}

// TestMakeRunRemovesItsTemporaryData checks that a stop leaves nothing behind.
func TestMakeRunRemovesItsTemporaryData(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	cfg := settings{GatewayAddr: servicetest.FreeAddr(t), PaymentsAddr: servicetest.FreeAddr(t), OrdersAddr: servicetest.FreeAddr(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := run(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Fatalf("devstack left %d entries in its temporary directory", len(entries))
	}
}

// TestBadAddressNamesDevstacksVariable checks that a bad address is
// reported by the variable devstack reads, not by the service's HTTP_ADDR.
func TestBadAddressNamesDevstacksVariable(t *testing.T) {
	cfg := settings{GatewayAddr: "8000", PaymentsAddr: servicetest.FreeAddr(t), OrdersAddr: servicetest.FreeAddr(t)}
	err := run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "GATEWAY_ADDR") || strings.Contains(err.Error(), "HTTP_ADDR") {
		t.Fatalf("run with GATEWAY_ADDR=8000: %v, want an error naming GATEWAY_ADDR", err)
	}
}
