package config_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"shop/services/platform/config"
)

type Common struct {
	LogLevel slog.Level `env:"LOG_LEVEL" envDefault:"info" help:"log level"`
}

type testConfig struct {
	Common
	Addr     string        `env:"HTTP_ADDR" envDefault:":8000" help:"listen address"`
	DB       string        `env:"DATABASE_URL" envDefault:"sqlite::memory:" help:"database"`
	Token    string        `env:"API_TOKEN" secret:"true" help:"token"`
	Shutdown time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s" help:"drain"`
}

func (c testConfig) Validate() error {
	if c.Shutdown <= 0 {
		return errors.New("SHUTDOWN_TIMEOUT must be positive")
	}
	return nil
}

func TestLoadDefaultsAndEnvironment(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://shop:s3cret@db:5432/orders")
	t.Setenv("API_TOKEN", "tok")
	t.Setenv("LOG_LEVEL", "debug")
	var cfg testConfig
	if err := config.Load("svc", nil, nil, &cfg, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":8000" || cfg.Shutdown != 20*time.Second || cfg.LogLevel != slog.LevelDebug {
		t.Fatalf("cfg = %+v", cfg)
	}
	var logged strings.Builder
	for _, a := range config.Attrs(&cfg) {
		logged.WriteString(a.String() + " ")
	}
	got := logged.String()
	if strings.Contains(got, "s3cret") || strings.Contains(got, "tok ") {
		t.Fatalf("secrets leaked: %s", got)
	}
	for _, want := range []string{"DATABASE_URL=postgres://shop:xxxxx@db:5432/orders", "API_TOKEN=****", "HTTP_ADDR=:8000", "LOG_LEVEL=DEBUG"} {
		if !strings.Contains(got, want) {
			t.Errorf("attrs %q lack %q", got, want)
		}
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	tests := []struct{ name, key, value, want string }{
		{"duration", "SHUTDOWN_TIMEOUT", "soon", "SHUTDOWN_TIMEOUT"},
		{"level", "LOG_LEVEL", "loud", "LOG_LEVEL"},
		{"validate", "SHUTDOWN_TIMEOUT", "-1s", "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(tt.key, tt.value)
			var cfg testConfig
			err := config.Load("svc", nil, nil, &cfg, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestHelpListsVariables(t *testing.T) {
	var out bytes.Buffer
	var cfg testConfig
	err := config.Load("svc", []string{"-h"}, nil, &cfg, &out)
	if !errors.Is(err, config.ErrHelp) {
		t.Fatalf("Load(-h) = %v, want ErrHelp", err)
	}
	for _, want := range []string{"HTTP_ADDR", `(default ":8000")`, "LOG_LEVEL", "API_TOKEN", "listen address"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, out.String())
		}
	}
}

func TestMask(t *testing.T) {
	tests := map[string]string{
		"redis://:pw@localhost:6379/0":    "redis://:xxxxx@localhost:6379/0",
		"postgres://u@h/db":               "postgres://u@h/db",
		"postgres://h/db?password=pw&x=1": "postgres://h/db?password=xxxxx&x=1",
		"sqlite:data/orders.db":           "sqlite:data/orders.db",
		":8000":                           ":8000",
	}
	for in, want := range tests {
		if got := config.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDefaultsIgnoreTheEnvironment(t *testing.T) {
	t.Setenv("HTTP_ADDR", ":9999")
	cfg := testConfig{DB: "sqlite:kept.db"}
	if err := config.Defaults(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":8000" || cfg.Shutdown != 20*time.Second {
		t.Fatalf("defaults = %+v", cfg)
	}
}

func TestDefaultsWithTakesTheGivenVariablesOnly(t *testing.T) {
	t.Setenv("WORKERS", "99")
	var cfg struct {
		Addr    string `env:"ADDR" envDefault:":8000"`
		Workers int    `env:"WORKERS" envDefault:"4"`
		Name    string `env:"NAME"`
	}
	cfg.Name = "kept"
	if err := config.DefaultsWith(&cfg, map[string]string{"ADDR": ":9000", "UNKNOWN": "x"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != ":9000" || cfg.Workers != 4 || cfg.Name != "kept" {
		t.Fatalf("got %+v, want ADDR from vars, WORKERS from its default, NAME kept", cfg)
	}
	if err := config.DefaultsWith(&cfg, map[string]string{"WORKERS": "many"}); err == nil || !strings.Contains(err.Error(), "WORKERS") {
		t.Fatalf("bad value: %v, want an error naming WORKERS", err)
	}
}
