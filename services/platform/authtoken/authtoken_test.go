package authtoken_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"shop/services/platform/authtoken"
)

var secret = []byte(strings.Repeat("k", authtoken.MinSecretLen))

func TestMintCarriesTheUserAndTheDefaults(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	tok, err := authtoken.Mint(secret, 42, authtoken.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.RegisteredClaims
	_, err = jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return secret, nil },
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithIssuer(authtoken.Issuer), jwt.WithAudience(authtoken.Audience), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != "42" {
		t.Errorf("sub = %q, want 42", claims.Subject)
	}
	if got := claims.ExpiresAt.Sub(now); got != authtoken.DefaultTTL {
		t.Errorf("lifetime = %v, want %v", got, authtoken.DefaultTTL)
	}
}

func TestMintRefusesAShortSecretAndABadUser(t *testing.T) {
	if _, err := authtoken.Mint(secret[:31], 1, authtoken.Options{}); !errors.Is(err, authtoken.ErrShortSecret) {
		t.Errorf("31-byte secret: err = %v, want ErrShortSecret", err)
	}
	if _, err := authtoken.Mint(secret, 0, authtoken.Options{}); err == nil {
		t.Error("user 0 minted a token")
	}
}
