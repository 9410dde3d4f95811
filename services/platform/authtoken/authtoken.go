// Package authtoken mints the shared-secret (HS256) tokens that the gateway
// accepts when it runs with JWT_HS256_SECRET: the development stack prints
// them, the load generator and the tests send them. Production tokens come
// from an OpenID Connect issuer instead; the gateway checks both kinds the
// same way (signature, exp, nbf, iss, aud; the user is sub).
package authtoken

import (
	"errors"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	// Issuer is the iss of a shared-secret token.
	Issuer = "shop"
	// Audience is the aud a token carries, and the gateway expects, when
	// OIDC_AUDIENCE is not set.
	Audience = "shop"
	// MinSecretLen is the shortest JWT_HS256_SECRET accepted, in bytes:
	// HS256 needs a key at least as long as its 256-bit hash.
	MinSecretLen = 32
	// DefaultTTL is how long a minted token is valid when Options.TTL is 0.
	DefaultTTL = 24 * time.Hour
)

// Options shape a minted token; the zero value gives Issuer, Audience and
// DefaultTTL from now.
type Options struct {
	Issuer   string
	Audience string
	TTL      time.Duration
	// Now is the issue time (zero: time.Now).
	Now time.Time
}

// ErrShortSecret is returned for a secret shorter than MinSecretLen.
var ErrShortSecret = errors.New("JWT_HS256_SECRET must be at least 32 bytes")

// Mint returns a token for userID signed with secret (HS256).
func Mint(secret []byte, userID int64, o Options) (string, error) {
	if len(secret) < MinSecretLen {
		return "", ErrShortSecret
	}
	if userID <= 0 {
		return "", errors.New("user id must be positive")
	}
	if o.Issuer == "" {
		o.Issuer = Issuer
	}
	if o.Audience == "" {
		o.Audience = Audience
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	claims := jwt.RegisteredClaims{
		Issuer:    o.Issuer,
		Subject:   strconv.FormatInt(userID, 10),
		Audience:  jwt.ClaimStrings{o.Audience},
		IssuedAt:  jwt.NewNumericDate(o.Now),
		NotBefore: jwt.NewNumericDate(o.Now),
		ExpiresAt: jwt.NewNumericDate(o.Now.Add(o.TTL)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}
