package service_test

import (
	"log/slog"
	"strings"
	"testing"

	"shop/services/platform/config"
	"shop/services/platform/service"
)

func validConfig() service.Config {
	cfg := service.Config{HTTPAddr: ":8001", DatabaseURL: "sqlite::memory:"}
	if err := config.Defaults(&cfg); err != nil {
		panic(err)
	}
	return cfg
}

func TestValidateInternalListener(t *testing.T) {
	cases := []struct {
		name, addr, token, err string
	}{
		{"not served", "", "", ""},
		{"served with a credential", ":9001", "0123456789abcdef", ""},
		{"served without a credential", ":9001", "", "INTERNAL_TOKEN: must be at least 16 bytes"},
		{"served with a short credential", ":9001", "0123456789abcde", "INTERNAL_TOKEN: must be at least 16 bytes"},
		{"bad address", "9001", "0123456789abcdef", "INTERNAL_ADDR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := validConfig()
			cfg.InternalAddr, cfg.InternalToken = c.addr, c.token
			err := cfg.Validate()
			if c.err == "" && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("Validate = %v, want an error with %q", err, c.err)
			}
		})
	}
}

func TestInternalTokenIsMaskedInTheLog(t *testing.T) {
	cfg := validConfig()
	cfg.InternalAddr, cfg.InternalToken = ":9001", "very-secret-internal-token"
	var logged strings.Builder
	for _, a := range config.Attrs(&cfg) {
		logged.WriteString(a.String() + " ")
		if a.Key == "INTERNAL_TOKEN" && a.Value.Kind() == slog.KindString && a.Value.String() != "****" {
			t.Errorf("INTERNAL_TOKEN logged as %q", a.Value)
		}
	}
	if strings.Contains(logged.String(), "very-secret") {
		t.Fatalf("the token is in the logged configuration: %s", logged.String())
	}
	if !strings.Contains(logged.String(), "INTERNAL_ADDR=:9001") {
		t.Fatalf("INTERNAL_ADDR missing from the logged configuration: %s", logged.String())
	}
}
