package access_test

import (
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"shop/services/gateway/internal/access"
	"shop/services/gateway/internal/authtest"
	"shop/services/platform/authtoken"
)

// A token that passed its checks answers the same user again without being
// checked again, for HS256 and the issuer's tokens alike.
func TestVerifiedTokensAreRemembered(t *testing.T) {
	iss := authtest.NewIssuer(t)
	a := ready(t, access.Config{IssuerURL: iss.URL, Secret: []byte(authtest.Secret)})
	for _, tok := range []string{authtest.Token(t, 7), iss.Token(t, 7)} {
		before := a.Verifications()
		for range 3 {
			if user, err := authenticate(a, "Bearer "+tok); err != nil || user != 7 {
				t.Fatalf("user %d, err %v; want 7", user, err)
			}
		}
		if n := a.Verifications() - before; n != 1 {
			t.Errorf("a token used 3 times was checked %d times, want once", n)
		}
	}
}

// A token that differs from a remembered one by one byte of its signature
// is checked, and refused, every time.
func TestTamperedTokenIsNotRemembered(t *testing.T) {
	iss := authtest.NewIssuer(t)
	a := ready(t, access.Config{IssuerURL: iss.URL, Secret: []byte(authtest.Secret)})
	for _, tok := range []string{authtest.Token(t, 7), iss.Token(t, 7)} {
		if _, err := authenticate(a, "Bearer "+tok); err != nil {
			t.Fatal(err)
		}
		before := a.Verifications()
		for range 3 {
			if _, err := authenticate(a, "Bearer "+authtest.Tamper(tok)); !isInvalid(err) {
				t.Fatalf("tampered token: %v, want an InvalidError", err)
			}
		}
		if n := a.Verifications() - before; n != 3 {
			t.Errorf("a refused token sent 3 times was checked %d times, want 3", n)
		}
	}
}

// A remembered token is refused once its exp has passed.
func TestRememberedTokenExpires(t *testing.T) {
	a := ready(t, access.Config{Secret: []byte(authtest.Secret)})
	c := authtest.Claims(authtoken.Issuer, authtoken.Audience, 7)
	exp := time.Now().Add(time.Second).Truncate(time.Second) // exp is in whole seconds
	if time.Until(exp) < 200*time.Millisecond {
		exp = exp.Add(time.Second)
	}
	c.ExpiresAt = jwt.NewNumericDate(exp)
	tok := "Bearer " + authtest.HS256(t, authtest.Secret, c)
	for range 2 {
		if user, err := authenticate(a, tok); err != nil || user != 7 {
			t.Fatalf("before exp: user %d, err %v", user, err)
		}
	}
	time.Sleep(time.Until(exp) + 10*time.Millisecond) // wait for the token's time to pass
	before := a.Verifications()
	_, err := authenticate(a, tok)
	if inv, ok := errors.AsType[*access.InvalidError](err); !ok || inv.Reason != "the token has expired" {
		t.Fatalf("after exp: %v, want the token has expired", err)
	}
	if a.Verifications() == before {
		t.Error("the expired token was not checked again")
	}
}

// Tokens are remembered for VerifiedFor at most, and VerifiedMax of them.
func TestRememberedTokensAreBounded(t *testing.T) {
	a := ready(t, access.Config{Secret: []byte(authtest.Secret), VerifiedFor: time.Hour, VerifiedMax: 2})
	tokens := []string{authtest.Token(t, 1), authtest.Token(t, 2), authtest.Token(t, 3)}
	for _, tok := range tokens {
		if _, err := authenticate(a, "Bearer "+tok); err != nil {
			t.Fatal(err)
		}
	}
	before := a.Verifications()
	if _, err := authenticate(a, "Bearer "+tokens[0]); err != nil {
		t.Fatal(err)
	}
	if a.Verifications() == before {
		t.Error("3 tokens remembered with VerifiedMax 2")
	}

	a = ready(t, access.Config{Secret: []byte(authtest.Secret), VerifiedFor: 50 * time.Millisecond})
	tok := "Bearer " + authtest.Token(t, 7)
	if _, err := authenticate(a, tok); err != nil {
		t.Fatal(err)
	}
	time.Sleep(60 * time.Millisecond) // wait for VerifiedFor to pass
	before = a.Verifications()
	if user, err := authenticate(a, tok); err != nil || user != 7 {
		t.Fatalf("user %d, err %v", user, err)
	}
	if a.Verifications() == before {
		t.Error("a token remembered past VerifiedFor")
	}
}

func isInvalid(err error) bool {
	_, ok := errors.AsType[*access.InvalidError](err)
	return ok
}
