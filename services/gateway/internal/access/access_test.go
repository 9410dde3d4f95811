package access_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"shop/services/gateway/internal/access"
	"shop/services/gateway/internal/authtest"
	"shop/services/platform/authtoken"
)

// ready returns an Authenticator for cfg whose issuer, if any, has been
// discovered.
func ready(t *testing.T, cfg access.Config) *access.Authenticator {
	t.Helper()
	a, err := access.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go a.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for a.Check(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("issuer not discovered within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return a
}

func authenticate(a *access.Authenticator, authorization string) (int64, error) {
	r, _ := http.NewRequest(http.MethodGet, "http://gateway/orders", nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	return a.Authenticate(r)
}

func TestTokens(t *testing.T) {
	iss := authtest.NewIssuer(t)
	both := ready(t, access.Config{IssuerURL: iss.URL, Secret: []byte(authtest.Secret)})
	issuerOnly := ready(t, access.Config{IssuerURL: iss.URL})
	secretOnly := ready(t, access.Config{Secret: []byte(authtest.Secret)})

	hs := func(edit func(c *jwt.RegisteredClaims)) string {
		c := authtest.Claims(authtoken.Issuer, authtoken.Audience, 7)
		edit(c)
		return authtest.HS256(t, authtest.Secret, c)
	}
	rs := func(edit func(c *jwt.RegisteredClaims)) string {
		c := iss.Claims(7)
		edit(c)
		return iss.Sign(t, c)
	}
	past := jwt.NewNumericDate(time.Now().Add(-time.Hour))
	future := jwt.NewNumericDate(time.Now().Add(time.Hour))
	otherKey := authtest.NewKey(t)

	tests := []struct {
		name   string
		auth   *access.Authenticator
		header string
		want   int64  // 0: refused
		reason string // part of the reason when refused
	}{
		{"HS256", both, "Bearer " + authtest.Token(t, 7), 7, ""},
		{"HS256, secret only", secretOnly, "Bearer " + authtest.Token(t, 7), 7, ""},
		{"RS256 from the issuer", both, "Bearer " + iss.Token(t, 7), 7, ""},
		{"RS256, issuer only", issuerOnly, "Bearer " + iss.Token(t, 42), 42, ""},
		{"scheme in lower case", both, "bearer " + iss.Token(t, 7), 7, ""},

		{"garbage", both, "Bearer not-a-token", 0, "malformed"},
		{"not bearer", both, "Basic dXNlcjpwYXNz", 0, "not a bearer token"},
		{"bearer without token", both, "Bearer ", 0, "not a bearer token"},
		{"HS256 expired", both, "Bearer " + hs(func(c *jwt.RegisteredClaims) { c.ExpiresAt = past }), 0, "expired"},
		{"HS256 without exp", both, "Bearer " + hs(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil }), 0, "not accepted"},
		{"HS256 not yet valid", both, "Bearer " + hs(func(c *jwt.RegisteredClaims) { c.NotBefore = future }), 0, "not valid yet"},
		{"HS256 wrong issuer", both, "Bearer " + hs(func(c *jwt.RegisteredClaims) { c.Issuer = "someone" }), 0, "not accepted"},
		{"HS256 wrong audience", both, "Bearer " + hs(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"other"} }), 0, "not accepted"},
		{"HS256 bad signature", both, "Bearer " + authtest.Tamper(authtest.Token(t, 7)), 0, "not accepted"},
		{"HS256 other secret", both, "Bearer " + authtest.HS256(t, strings.Repeat("x", 32), authtest.Claims(authtoken.Issuer, authtoken.Audience, 7)), 0, "not accepted"},
		{"HS256 with only an issuer", issuerOnly, "Bearer " + authtest.Token(t, 7), 0, "not accepted"},
		{"HS256 signed with the issuer's URL as issuer", secretOnly, "Bearer " + hs(func(c *jwt.RegisteredClaims) { c.Issuer = iss.URL }), 0, "not accepted"},
		{"RS256 with only a secret", secretOnly, "Bearer " + iss.Token(t, 7), 0, "algorithm"},
		{"RS256 expired", both, "Bearer " + rs(func(c *jwt.RegisteredClaims) { c.ExpiresAt = past }), 0, "expired"},
		{"RS256 without exp", both, "Bearer " + rs(func(c *jwt.RegisteredClaims) { c.ExpiresAt = nil }), 0, "expired"},
		{"RS256 not yet valid", both, "Bearer " + rs(func(c *jwt.RegisteredClaims) { c.NotBefore = future }), 0, "not valid yet"},
		{"RS256 wrong issuer", both, "Bearer " + rs(func(c *jwt.RegisteredClaims) { c.Issuer = "https://evil.example" }), 0, "not accepted"},
		{"RS256 issuer claiming the secret's", both, "Bearer " + rs(func(c *jwt.RegisteredClaims) { c.Issuer = authtoken.Issuer }), 0, "not accepted"},
		{"RS256 wrong audience", both, "Bearer " + rs(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"other"} }), 0, "not accepted"},
		{"RS256 bad signature", both, "Bearer " + authtest.Tamper(iss.Token(t, 7)), 0, "not accepted"},
		{"RS256 other key, same kid", both, "Bearer " + authtest.RS256(t, otherKey, iss.KeyID, iss.Claims(7)), 0, "not accepted"},
		{"alg none", both, "Bearer " + authtest.None(t, authtest.Claims(authtoken.Issuer, authtoken.Audience, 7)), 0, "not accepted"},
		{"alg none, issuer's claims", both, "Bearer " + authtest.None(t, iss.Claims(7)), 0, "not accepted"},
		{"alg none header on a good HS256 token", both, "Bearer " + authtest.WithHeader(authtest.Token(t, 7), map[string]any{"alg": "none", "typ": "JWT"}), 0, ""},
		{"HS512 with the secret", both, "Bearer " + func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, authtest.Claims(authtoken.Issuer, authtoken.Audience, 7)).SignedString([]byte(authtest.Secret))
			return s
		}(), 0, "not accepted"},
		{"sub not a number", both, "Bearer " + hs(func(c *jwt.RegisteredClaims) { c.Subject = "alice" }), 0, "subject"},
		{"sub zero", both, "Bearer " + hs(func(c *jwt.RegisteredClaims) { c.Subject = "0" }), 0, "subject"},
		{"sub negative", both, "Bearer " + hs(func(c *jwt.RegisteredClaims) { c.Subject = "-3" }), 0, "subject"},
		{"sub with a sign", both, "Bearer " + hs(func(c *jwt.RegisteredClaims) { c.Subject = "+3" }), 0, "subject"},
		{"sub with a leading zero", both, "Bearer " + hs(func(c *jwt.RegisteredClaims) { c.Subject = "07" }), 0, "subject"},
		{"sub too large", both, "Bearer " + rs(func(c *jwt.RegisteredClaims) { c.Subject = "99999999999999999999" }), 0, "subject"},
		{"sub missing", both, "Bearer " + rs(func(c *jwt.RegisteredClaims) { c.Subject = "" }), 0, "subject"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, err := authenticate(tt.auth, tt.header)
			if tt.want != 0 {
				if err != nil || user != tt.want {
					t.Fatalf("user %d, err %v; want user %d", user, err, tt.want)
				}
				return
			}
			inv, ok := errors.AsType[*access.InvalidError](err)
			if !ok {
				t.Fatalf("user %d, err %v; want an InvalidError", user, err)
			}
			if !strings.Contains(inv.Reason, tt.reason) {
				t.Errorf("reason %q, want it to say %q", inv.Reason, tt.reason)
			}
		})
	}

	if _, err := authenticate(both, ""); !errors.Is(err, access.ErrNoToken) {
		t.Errorf("no header: %v, want ErrNoToken", err)
	}
}

func TestIssuerDiscoveredLater(t *testing.T) {
	iss := authtest.NewIssuer(t)
	iss.SetDown(true)
	a, err := access.New(access.Config{IssuerURL: iss.URL, Secret: []byte(authtest.Secret), RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx)
	eventually(t, func() bool { return iss.Discoveries() >= 3 }, "discovery is not retried")
	if a.Check(ctx) == nil {
		t.Fatal("ready before the issuer was discovered")
	}
	if _, err := authenticate(a, "Bearer "+iss.Token(t, 7)); !errors.Is(err, access.ErrUnavailable) {
		t.Fatalf("issuer's token before discovery: %v, want ErrUnavailable", err)
	}
	// A shared-secret token does not wait for the issuer.
	if user, err := authenticate(a, "Bearer "+authtest.Token(t, 7)); err != nil || user != 7 {
		t.Fatalf("HS256 token before discovery: %d, %v", user, err)
	}

	iss.SetDown(false)
	eventually(t, func() bool { return a.Check(ctx) == nil }, "not ready once the issuer answers")
	if user, err := authenticate(a, "Bearer "+iss.Token(t, 7)); err != nil || user != 7 {
		t.Fatalf("issuer's token after discovery: %d, %v", user, err)
	}
}

func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestNewRefusesNothingToCheckWith(t *testing.T) {
	if _, err := access.New(access.Config{}); err == nil {
		t.Error("New with neither issuer nor secret succeeded")
	}
	if _, err := access.New(access.Config{Secret: []byte("short")}); !errors.Is(err, authtoken.ErrShortSecret) {
		t.Errorf("short secret: %v", err)
	}
}

// Forged tokens do not make the gateway fetch the issuer's keys each time.
func TestForgedTokensDoNotHammerTheIssuer(t *testing.T) {
	iss := authtest.NewIssuer(t)
	a := ready(t, access.Config{IssuerURL: iss.URL})
	if _, err := authenticate(a, "Bearer "+iss.Token(t, 7)); err != nil {
		t.Fatal(err)
	}
	other := authtest.NewKey(t)
	for _, kid := range []string{iss.KeyID, "unknown-kid", ""} {
		for range 20 {
			if _, err := authenticate(a, "Bearer "+authtest.RS256(t, other, kid, iss.Claims(7))); err == nil {
				t.Fatal("a forged token passed")
			}
		}
	}
	if n := iss.KeyFetches(); n != 1 {
		t.Errorf("the key set was fetched %d times, want once", n)
	}
	// A good token still passes.
	if _, err := authenticate(a, "Bearer "+iss.Token(t, 8)); err != nil {
		t.Fatal(err)
	}
}

// dexSubject is the sub Dex gives a user: the base64 of a protobuf of the
// user id and the connector id, never a decimal.
func dexSubject(user, connector string) string {
	b := append([]byte{0x0a, byte(len(user))}, user...)
	b = append(append(b, 0x12, byte(len(connector))), connector...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func TestUserClaim(t *testing.T) {
	iss := authtest.NewIssuer(t)
	bySub := ready(t, access.Config{IssuerURL: iss.URL, Secret: []byte(authtest.Secret)})
	byFederated := ready(t, access.Config{IssuerURL: iss.URL, Secret: []byte(authtest.Secret), UserClaim: "federated_claims.user_id"})
	byUserID := ready(t, access.Config{IssuerURL: iss.URL, UserClaim: "user_id"})

	// dex is a token as Dex issues it with the scope federated:id: an opaque
	// sub, the user id in federated_claims.
	dex := func(userID any) string {
		c := iss.Claims(0)
		c.Subject = dexSubject("7", "local")
		return iss.Sign(t, authtest.With(c, map[string]any{
			"federated_claims": map[string]any{"connector_id": "local", "user_id": userID},
		}))
	}
	with := func(sub string, more map[string]any) string {
		c := iss.Claims(0)
		c.Subject = sub
		return iss.Sign(t, authtest.With(c, more))
	}

	tests := []struct {
		name   string
		auth   *access.Authenticator
		token  string
		want   int64  // 0: refused
		reason string // part of the reason when refused
	}{
		{"Dex token, nested claim", byFederated, dex("7"), 7, ""},
		{"Dex token, by sub", bySub, dex("7"), 0, "subject"},
		{"nested claim a JSON integer", byFederated, dex(42), 42, ""},
		{"nested claim wins over a decimal sub", byFederated, with("9", map[string]any{"federated_claims": map[string]any{"user_id": "7"}}), 7, ""},
		{"top-level claim", byUserID, with("auth0|abc", map[string]any{"user_id": "12"}), 12, ""},
		{"HS256 token keeps sub", byFederated, authtest.Token(t, 5), 5, ""},

		{"nested claim not a decimal", byFederated, dex("alice"), 0, "user id claim"},
		{"nested claim zero", byFederated, dex("0"), 0, "user id claim"},
		{"nested claim negative", byFederated, dex(-7), 0, "user id claim"},
		{"nested claim a fraction", byFederated, dex(7.5), 0, "user id claim"},
		{"nested claim with a leading zero", byFederated, dex("07"), 0, "user id claim"},
		{"nested claim too large", byFederated, dex("99999999999999999999"), 0, "user id claim"},
		{"nested claim a boolean", byFederated, dex(true), 0, "user id claim"},
		{"nested claim null", byFederated, dex(nil), 0, "user id claim"},
		{"nested claim an object", byFederated, dex(map[string]any{"id": "7"}), 0, "user id claim"},
		{"nested claim missing", byFederated, with("7", map[string]any{"federated_claims": map[string]any{"connector_id": "local"}}), 0, "user id claim"},
		{"parent missing", byFederated, iss.Token(t, 7), 0, "user id claim"},
		{"parent not an object", byFederated, with("7", map[string]any{"federated_claims": "7"}), 0, "user id claim"},
		{"top-level claim a JSON integer", byUserID, with("x", map[string]any{"user_id": 12}), 12, ""},
		{"top-level claim in exponent form", byUserID, with("x", map[string]any{"user_id": json.RawMessage("1e3")}), 0, "user id claim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, err := authenticate(tt.auth, "Bearer "+tt.token)
			if tt.want != 0 {
				if err != nil || user != tt.want {
					t.Fatalf("user %d, err %v; want user %d", user, err, tt.want)
				}
				return
			}
			inv, ok := errors.AsType[*access.InvalidError](err)
			if !ok {
				t.Fatalf("user %d, err %v; want an InvalidError", user, err)
			}
			if !strings.Contains(inv.Reason, tt.reason) {
				t.Errorf("reason %q, want it to say %q", inv.Reason, tt.reason)
			}
		})
	}
}

func TestNewRefusesAnEmptyClaimName(t *testing.T) {
	for _, name := range []string{".", "federated_claims.", ".user_id", "a..b"} {
		if _, err := access.New(access.Config{IssuerURL: "https://dex.example", UserClaim: name}); err == nil {
			t.Errorf("UserClaim %q accepted", name)
		}
	}
}
