package app_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"shop/services/orders/app"
	"shop/services/platform/config"
)

// RECONCILE_AFTER is read, shown by -h with its default, and checked.
func TestReconcileAfterSetting(t *testing.T) {
	var help bytes.Buffer
	cfg := app.DefaultConfig()
	config.PrintEnv(&help, &cfg)
	if !strings.Contains(help.String(), "RECONCILE_AFTER") || !strings.Contains(help.String(), `(default "1m")`) {
		t.Errorf("-h lacks RECONCILE_AFTER and its default:\n%s", &help)
	}

	t.Setenv("RECONCILE_AFTER", "")
	cfg = app.DefaultConfig()
	if err := config.Load("orders", nil, nil, &cfg, &help); err != nil || cfg.ReconcileAfter != time.Minute {
		t.Fatalf("default: %v, %v", cfg.ReconcileAfter, err)
	}
	t.Setenv("RECONCILE_AFTER", "2s")
	cfg = app.DefaultConfig()
	if err := config.Load("orders", nil, nil, &cfg, &help); err != nil || cfg.ReconcileAfter != 2*time.Second {
		t.Fatalf("2s: %v, %v", cfg.ReconcileAfter, err)
	}
	for _, bad := range []string{"soon", "0s", "-1m"} {
		t.Setenv("RECONCILE_AFTER", bad)
		cfg = app.DefaultConfig()
		if err := config.Load("orders", nil, nil, &cfg, &help); err == nil || !strings.Contains(err.Error(), "RECONCILE_AFTER") {
			t.Errorf("RECONCILE_AFTER=%s: %v, want an error naming it", bad, err)
		}
	}
}
