package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"shop/services/gateway/internal/access"
	"shop/services/platform/authtoken"
	"shop/services/platform/telemetry"
)

// Config is the gateway's configuration, read from the environment.
type Config struct {
	HTTPAddr        string        `env:"HTTP_ADDR" envDefault:":8000" help:"listen address"`
	OrdersURL       string        `env:"ORDERS_URL" envDefault:"http://localhost:8002" help:"base URL of the orders service"`
	PaymentsURL     string        `env:"PAYMENTS_URL" envDefault:"http://localhost:8001" help:"base URL of the payments service"`
	UpstreamTimeout time.Duration `env:"UPSTREAM_TIMEOUT" envDefault:"10s" help:"how long a service may take to answer before the gateway answers 504"`
	MaxBodyBytes    int64         `env:"MAX_BODY_BYTES" envDefault:"1048576" help:"largest request body; a larger one is answered 413"`
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"20s" help:"how long requests in flight may finish on shutdown"`
	LogLevel        slog.Level    `env:"LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	PprofAddr       string        `env:"PPROF_ADDR" help:"serve the Go profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; off when empty"`

	Auth          string `env:"AUTH" envDefault:"jwt" help:"jwt: every public operation needs an Authorization: Bearer token (from OIDC_ISSUER_URL or signed with JWT_HS256_SECRET); off: no authentication at all, for development only (warned at start)"`
	OIDCIssuerURL string `env:"OIDC_ISSUER_URL" help:"OpenID Connect issuer whose tokens are accepted (RS256, ES256, …; discovery and JWKS are read from it), e.g. https://dex.example.com"`
	// OIDCUserClaim is the issuer's claim holding the user id; a dotted path reaches a nested one.
	OIDCUserClaim  string `env:"OIDC_USER_CLAIM" envDefault:"sub" help:"the claim of OIDC_ISSUER_URL's tokens that holds the user id (a positive decimal, as a string or a number); a dotted path reaches a nested claim, e.g. federated_claims.user_id for Dex (scope federated:id), whose sub is opaque; HS256 tokens always use sub"`
	OIDCAudience   string `env:"OIDC_AUDIENCE" envDefault:"shop" help:"the aud every token must carry; for ID tokens (Dex) the client id"`
	JWTHS256Secret string `env:"JWT_HS256_SECRET" secret:"true" help:"shared secret (at least 32 bytes) for HS256 tokens with iss \"shop\", instead of or besides an issuer; for development and tests"`
	RedisURL       string `env:"REDIS_URL" envDefault:"redis://localhost:6379/0" help:"Redis that holds the rate limits, shared by every gateway replica; when it cannot be reached, requests pass unlimited"`
	RateLimit      int    `env:"RATE_LIMIT" envDefault:"100" help:"requests per second per user (per client address without a valid token); 0 turns rate limits off"`
	RateLimitBurst int    `env:"RATE_LIMIT_BURST" envDefault:"200" help:"requests a caller may send at once above RATE_LIMIT"`

	// OnListen, if set, is called with the bound address once the gateway
	// listens: with HTTP_ADDR=127.0.0.1:0, tests and devstack learn the port.
	OnListen func(net.Addr) `env:"-"`
	// Telemetry is what the gateway reports through; the zero value means
	// the global providers (see telemetry.Setup). devstack sets its own.
	Telemetry telemetry.Providers `env:"-"`
}

// Addr is the listen address.
func (c Config) Addr() string { return c.HTTPAddr }

// Level is the log level.
func (c Config) Level() slog.Level { return c.LogLevel }

// Validate checks the values: absolute http(s) upstream URLs and positive
// durations and sizes.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("HTTP_ADDR: %w", err))
	}
	for _, u := range []struct{ name, value string }{{"ORDERS_URL", c.OrdersURL}, {"PAYMENTS_URL", c.PaymentsURL}} {
		if _, err := upstreamURL(u.value); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u.name, err))
		}
	}
	if c.UpstreamTimeout <= 0 {
		errs = append(errs, fmt.Errorf("UPSTREAM_TIMEOUT: must be positive, got %s", c.UpstreamTimeout))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("SHUTDOWN_TIMEOUT: must be positive, got %s", c.ShutdownTimeout))
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("MAX_BODY_BYTES: must be positive, got %d", c.MaxBodyBytes))
	}
	errs = append(errs, c.validateAuth()...)
	if c.RateLimit < 0 {
		errs = append(errs, fmt.Errorf("RATE_LIMIT: must be 0 (off) or positive, got %d", c.RateLimit))
	}
	if c.RateLimit > 0 {
		if c.RateLimitBurst < 1 {
			errs = append(errs, fmt.Errorf("RATE_LIMIT_BURST: must be positive, got %d", c.RateLimitBurst))
		}
		if _, err := redis.ParseURL(c.RedisURL); err != nil {
			errs = append(errs, fmt.Errorf("REDIS_URL: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Authentication modes (AUTH).
const (
	AuthJWT = "jwt"
	AuthOff = "off"
)

func (c Config) validateAuth() []error {
	var errs []error
	switch c.Auth {
	case AuthOff:
		return nil
	case AuthJWT:
	default:
		return []error{fmt.Errorf("AUTH: must be %q or %q, got %q", AuthJWT, AuthOff, c.Auth)}
	}
	if c.OIDCIssuerURL == "" && c.JWTHS256Secret == "" {
		errs = append(errs, errors.New("AUTH=jwt needs OIDC_ISSUER_URL (an OpenID Connect issuer) or JWT_HS256_SECRET "+
			"(a shared secret of at least 32 bytes) to check tokens with; AUTH=off runs without authentication"))
	}
	if c.OIDCIssuerURL != "" {
		if _, err := upstreamURL(c.OIDCIssuerURL); err != nil {
			errs = append(errs, fmt.Errorf("OIDC_ISSUER_URL: %w", err))
		}
	}
	if c.JWTHS256Secret != "" && len(c.JWTHS256Secret) < authtoken.MinSecretLen {
		errs = append(errs, fmt.Errorf("JWT_HS256_SECRET: must be at least %d bytes, got %d", authtoken.MinSecretLen, len(c.JWTHS256Secret)))
	}
	if c.OIDCAudience == "" {
		errs = append(errs, errors.New("OIDC_AUDIENCE: must not be empty"))
	}
	if _, err := access.ClaimPath(c.OIDCUserClaim); err != nil {
		errs = append(errs, fmt.Errorf("OIDC_USER_CLAIM: %w", err))
	}
	return errs
}

// upstreamURL parses an upstream's base URL: absolute, http or https, a
// host, no query or fragment.
func upstreamURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q has no host", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q has a query or fragment; give the service's base URL", s)
	}
	return u, nil
}
