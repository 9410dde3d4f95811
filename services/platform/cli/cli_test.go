package cli

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

type testConfig struct {
	HTTPAddr string     `env:"HTTP_ADDR" envDefault:"127.0.0.1:1" help:"listen address"`
	LogLevel slog.Level `env:"LOG_LEVEL" envDefault:"info" help:"log level"`
}

func (c *testConfig) Addr() string      { return c.HTTPAddr }
func (c *testConfig) Level() slog.Level { return c.LogLevel }

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want []string
		not  []string
	}{
		{[]string{"-h"}, 0, []string{"svc healthcheck [URL]", "HTTP_ADDR", "LOG_LEVEL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_METRICS_EXPORTER"}, []string{"[flags]"}},
		{[]string{"foo"}, 2, []string{"Usage:", `unknown command "foo"`}, nil},
		{[]string{"-x"}, 2, []string{"flag provided but not defined: -x", "Usage:"}, nil},
		{[]string{"healthcheck", "-h"}, 0, []string{"Usage: svc healthcheck [URL]", "HTTP_ADDR"}, []string{"unsupported protocol"}},
		{[]string{"healthcheck", "a", "b"}, 2, []string{`unexpected argument "b"`}, nil},
		{[]string{"healthcheck"}, 1, []string{"svc healthcheck:", "127.0.0.1:1/readyz"}, nil},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		stderr = &out
		ran := false
		code := main("svc", tt.args, &testConfig{}, func(context.Context) error { ran = true; return nil })
		if code != tt.code || ran {
			t.Errorf("svc %v: exit %d (ran %v), want %d\n%s", tt.args, code, ran, tt.code, &out)
		}
		for _, s := range tt.want {
			if !strings.Contains(out.String(), s) {
				t.Errorf("svc %v: output lacks %q:\n%s", tt.args, s, &out)
			}
		}
		for _, s := range tt.not {
			if strings.Contains(out.String(), s) {
				t.Errorf("svc %v: output has %q:\n%s", tt.args, s, &out)
			}
		}
	}
}
