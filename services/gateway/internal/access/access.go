// Package access authenticates the callers of the gateway's public
// operations: a bearer JWT from an OpenID Connect issuer (discovery and JWKS)
// or one signed with a shared secret (HS256), checked for signature, exp,
// nbf, iss and aud. The caller is a positive decimal user id: an issuer's
// token carries it in the claim Config.UserClaim names, an HS256 token in sub.
//
// A token that passed every check is remembered, by its whole raw text, with
// its user, until the earlier of its exp and Config.VerifiedFor, so that a
// caller's next requests with it cost a map look-up instead of a signature
// check and a claims parse. That is safe because the key is the whole signed
// token: header, claims and signature. Any token that differs from it by one
// byte is another key and is checked in full; the same bytes passed every
// check once and would pass them again until exp, unless the issuer's keys
// or this configuration changed since, which VerifiedFor bounds. Refused
// tokens are never remembered, so they stay refused and cannot crowd the
// good ones out.
package access

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/golang-jwt/jwt/v5"

	"shop/services/platform/authtoken"
)

// Config is what an Authenticator checks tokens against. At least one of
// IssuerURL and Secret is set; with both, a token of either kind passes.
type Config struct {
	// IssuerURL is an OpenID Connect issuer: its discovery document names
	// the JWKS, and its tokens carry it as iss.
	IssuerURL string
	// Audience is the aud every token must carry (default authtoken.Audience).
	Audience string
	// UserClaim names the claim of the issuer's tokens that holds the user
	// id, a dotted path for a nested one such as "federated_claims.user_id"
	// (default "sub"). Issuers such as Dex, Keycloak and Auth0 make sub an
	// opaque string, not our user id.
	UserClaim string
	// Secret verifies HS256 tokens, whose iss is authtoken.Issuer.
	Secret []byte
	// Client fetches the discovery document and the keys (default: one
	// with a 10s timeout).
	Client *http.Client
	// KeyRefresh is how long a fetched key set is used before a token
	// signed with an unknown key makes it be fetched again (default 10s).
	KeyRefresh time.Duration
	// VerifiedFor bounds how long a token that passed every check is
	// taken as checked without checking it again (never past its exp),
	// so that a key the issuer withdrew stops working soon (default 1m).
	VerifiedFor time.Duration
	// VerifiedMax bounds how many such tokens are remembered, the least
	// recently used going first (default 10000).
	VerifiedMax int
	// RetryMin and RetryMax space the discovery attempts while the issuer
	// cannot be reached (defaults 500ms and 30s).
	RetryMin, RetryMax time.Duration
}

func (c Config) withDefaults() Config {
	if c.Audience == "" {
		c.Audience = authtoken.Audience
	}
	if c.UserClaim == "" {
		c.UserClaim = DefaultUserClaim
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if c.KeyRefresh <= 0 {
		c.KeyRefresh = 10 * time.Second
	}
	next := c.Client.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	client := *c.Client
	client.Transport = &keyCache{next: next, ttl: c.KeyRefresh}
	c.Client = &client
	if c.VerifiedFor <= 0 {
		c.VerifiedFor = time.Minute
	}
	if c.VerifiedMax <= 0 {
		c.VerifiedMax = 10_000
	}
	if c.RetryMin <= 0 {
		c.RetryMin = 500 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 30 * time.Second
	}
	return c
}

// Authenticator checks bearer tokens.
type Authenticator struct {
	cfg       Config
	userClaim []string // cfg.UserClaim's path
	parser    *jwt.Parser
	verified  *verifiedTokens

	verifications atomic.Int64 // tokens checked in full, for the tests

	mu       sync.RWMutex
	verifier *oidc.IDTokenVerifier // nil until the issuer was discovered
}

// New returns an Authenticator for cfg. With an issuer, Run must run to
// discover it; until then its tokens are answered ErrUnavailable.
func New(cfg Config) (*Authenticator, error) {
	cfg = cfg.withDefaults()
	if cfg.IssuerURL == "" && len(cfg.Secret) == 0 {
		return nil, errors.New("access: neither an issuer nor a secret to check tokens with")
	}
	if len(cfg.Secret) > 0 && len(cfg.Secret) < authtoken.MinSecretLen {
		return nil, authtoken.ErrShortSecret
	}
	userClaim, err := ClaimPath(cfg.UserClaim)
	if err != nil {
		return nil, err
	}
	verified, err := newVerifiedTokens(cfg.VerifiedMax, cfg.VerifiedFor)
	if err != nil {
		return nil, err
	}
	return &Authenticator{
		cfg:       cfg,
		userClaim: userClaim,
		verified:  verified,
		// Only HS256, whatever the token's header says: "none" and every
		// other algorithm are refused before the key is looked at.
		parser: jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(authtoken.Issuer), jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired()),
	}, nil
}

// Run discovers the issuer, retrying with growing spacing until it answers
// or ctx ends. Without an issuer it returns at once.
func (a *Authenticator) Run(ctx context.Context) {
	if a.cfg.IssuerURL == "" {
		return
	}
	wait := a.cfg.RetryMin
	for {
		provider, err := oidc.NewProvider(oidc.ClientContext(ctx, a.cfg.Client), a.cfg.IssuerURL)
		if err == nil {
			// The algorithms are those the issuer announces, among the
			// asymmetric ones go-oidc supports (RS256 when it names none):
			// never HS256 with a public key as its secret, never "none".
			v := provider.Verifier(&oidc.Config{ClientID: a.cfg.Audience})
			a.mu.Lock()
			a.verifier = v
			a.mu.Unlock()
			slog.InfoContext(ctx, "OpenID Connect issuer discovered", "issuer", a.cfg.IssuerURL)
			return
		}
		slog.WarnContext(ctx, "OpenID Connect discovery failed; retrying", "issuer", a.cfg.IssuerURL, "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, a.cfg.RetryMax)
	}
}

// Check is a readiness check: it fails while a configured issuer has not
// been discovered, when no token of it could be checked.
func (a *Authenticator) Check(context.Context) error {
	if a.cfg.IssuerURL == "" || a.oidcVerifier() != nil {
		return nil
	}
	return ErrUnavailable
}

func (a *Authenticator) oidcVerifier() *oidc.IDTokenVerifier {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.verifier
}

var (
	// ErrNoToken means the request carries no Authorization header.
	ErrNoToken = errors.New("no bearer token")
	// ErrUnavailable means the token may be good but the issuer has not
	// been discovered yet, so it cannot be checked.
	ErrUnavailable = errors.New("the token issuer has not been reached yet")
)

// InvalidError is a token that was given and refused. Reason is safe to
// show the client.
type InvalidError struct {
	Reason string
	Err    error
}

func (e *InvalidError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *InvalidError) Unwrap() error { return e.Err }

func invalid(reason string, err error) error { return &InvalidError{Reason: reason, Err: err} }

// Authenticate returns the user of r's bearer token. The error is
// ErrNoToken, ErrUnavailable or an *InvalidError.
func (a *Authenticator) Authenticate(r *http.Request) (int64, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return 0, ErrNoToken
	}
	scheme, raw, _ := strings.Cut(h, " ")
	raw = strings.TrimSpace(raw)
	if !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return 0, invalid("the Authorization header is not a bearer token", errors.New("malformed header"))
	}
	return a.Token(r.Context(), raw)
}

// Token checks a raw JWT and returns its user.
func (a *Authenticator) Token(ctx context.Context, raw string) (int64, error) {
	if user, ok := a.verified.user(raw); ok {
		return user, nil
	}
	user, exp, err := a.verify(ctx, raw)
	if err != nil {
		return 0, err
	}
	a.verified.add(raw, user, exp)
	return user, nil
}

// verify checks a raw JWT in full and returns its user and its exp.
func (a *Authenticator) verify(ctx context.Context, raw string) (int64, time.Time, error) {
	a.verifications.Add(1)
	// The header's alg only picks which check to run; each check accepts
	// its own algorithms alone, so naming another gains nothing.
	tok, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	if err != nil {
		return 0, time.Time{}, invalid("the token is malformed", err)
	}
	alg, _ := tok.Header["alg"].(string)
	if alg == jwt.SigningMethodHS256.Alg() && len(a.cfg.Secret) > 0 {
		return a.hs256(raw)
	}
	if a.cfg.IssuerURL == "" {
		return 0, time.Time{}, invalid("the token's algorithm is not accepted", fmt.Errorf("alg %q without an issuer", alg))
	}
	return a.oidc(ctx, raw)
}

func (a *Authenticator) hs256(raw string) (int64, time.Time, error) {
	var claims jwt.RegisteredClaims
	_, err := a.parser.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return a.cfg.Secret, nil })
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return 0, time.Time{}, invalid("the token has expired", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return 0, time.Time{}, invalid("the token is not valid yet", err)
	case err != nil:
		return 0, time.Time{}, invalid("the token is not accepted", err)
	}
	user, err := subject(claims.Subject)
	if err != nil {
		return 0, time.Time{}, err
	}
	return user, claims.ExpiresAt.Time, nil // the parser requires exp
}

func (a *Authenticator) oidc(ctx context.Context, raw string) (int64, time.Time, error) {
	v := a.oidcVerifier()
	if v == nil {
		return 0, time.Time{}, ErrUnavailable
	}
	tok, err := v.Verify(ctx, raw)
	if _, ok := errors.AsType[*oidc.TokenExpiredError](err); ok {
		return 0, time.Time{}, invalid("the token has expired", err)
	}
	if err != nil {
		if strings.Contains(err.Error(), "nbf") {
			return 0, time.Time{}, invalid("the token is not valid yet", err)
		}
		return 0, time.Time{}, invalid("the token is not accepted", err)
	}
	var claims json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return 0, time.Time{}, invalid("the token is not accepted", err)
	}
	id, err := claimUserID(claims, a.userClaim)
	if err != nil {
		reason := "the token's user id claim is missing or not a user id"
		if a.cfg.UserClaim == DefaultUserClaim {
			reason = "the token's subject is not a user id"
		}
		return 0, time.Time{}, invalid(reason, fmt.Errorf("claim %s: %w", a.cfg.UserClaim, err))
	}
	return id, tok.Expiry, nil
}

// DefaultUserClaim is the claim that holds the user id unless told otherwise.
const DefaultUserClaim = "sub"

// ClaimPath splits a claim's name at its dots into the names of the nested
// claims that lead to it; none may be empty.
func ClaimPath(name string) ([]string, error) {
	path := strings.Split(name, ".")
	for _, p := range path {
		if p == "" {
			return nil, fmt.Errorf("claim %q: a dotted path of claim names, none of them empty, such as sub or federated_claims.user_id", name)
		}
	}
	return path, nil
}

// claimUserID reads the user id at path in a token's claims (a JSON
// object): a string of a positive decimal, or a positive JSON integer.
func claimUserID(claims json.RawMessage, path []string) (int64, error) {
	v := claims
	for _, name := range path {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(v, &obj); err != nil {
			return 0, fmt.Errorf("not an object where %q is looked for", name)
		}
		var ok bool
		if v, ok = obj[name]; !ok {
			return 0, fmt.Errorf("no %q", name)
		}
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return decimal(s)
	}
	// A JSON number: an integer's text is a decimal already; 7.0, 7e0 and
	// the like are refused with it.
	return decimal(string(bytes.TrimSpace(v)))
}

// subject parses sub as a user id.
func subject(sub string) (int64, error) {
	id, err := decimal(sub)
	if err != nil {
		return 0, invalid("the token's subject is not a user id", fmt.Errorf("sub: %w", err))
	}
	return id, nil
}

// decimal parses a user id: a positive decimal integer, written plainly
// (no sign, no leading zero).
func decimal(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != s {
		return 0, fmt.Errorf("%.40q is not a positive decimal", s)
	}
	return id, nil
}
