// Package authtest makes tokens for the gateway's tests: a real OpenID
// Connect issuer over HTTP (discovery document and JWKS, an RS256 key made
// for the test) and shared-secret (HS256) tokens, good ones and every kind
// of bad one.
package authtest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"shop/services/platform/authtoken"
)

// Secret is a JWT_HS256_SECRET for tests.
const Secret = "test-secret-of-the-gateway-tests-0123456789"

// Claims returns the claims of a good token for user: iss and aud as given,
// valid from a minute ago for an hour.
func Claims(issuer, audience string, user int64) *jwt.RegisteredClaims {
	now := time.Now()
	return &jwt.RegisteredClaims{
		Issuer:    issuer,
		Subject:   strconv.FormatInt(user, 10),
		Audience:  jwt.ClaimStrings{audience},
		IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
		NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}
}

// With returns claims with more claims added (or replacing theirs), as an
// issuer adds its own: With(iss.Claims(7), map[string]any{"federated_claims":
// map[string]any{"user_id": "7"}}).
func With(claims *jwt.RegisteredClaims, more map[string]any) jwt.MapClaims {
	b, err := json.Marshal(claims)
	if err != nil {
		panic(err) // registered claims always marshal
	}
	m := jwt.MapClaims{}
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	for k, v := range more {
		m[k] = v
	}
	return m
}

// HS256 signs claims with secret.
func HS256(t testing.TB, secret string, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Token is a good HS256 token for user, signed with Secret.
func Token(t testing.TB, user int64) string {
	t.Helper()
	s, err := authtoken.Mint([]byte(Secret), user, authtoken.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// None is claims unsigned, with alg "none".
func None(t testing.TB, claims jwt.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Bearer is the Authorization header value for token.
func Bearer(token string) string { return "Bearer " + token }

// Issuer is a running OpenID Connect issuer with one RS256 key.
type Issuer struct {
	*httptest.Server
	Key *rsa.PrivateKey
	// KeyID is the kid of Key in the JWKS and in the tokens.
	KeyID string

	discoveries atomic.Int64
	keyFetches  atomic.Int64
	down        atomic.Bool
}

// SetDown makes the discovery document answer 503 (down) or work again.
func (iss *Issuer) SetDown(down bool) { iss.down.Store(down) }

// NewIssuer starts an issuer until the test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{Key: NewKey(t), KeyID: "test-key-1"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		iss.discoveries.Add(1)
		if iss.down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, map[string]any{
			"issuer":                                iss.URL,
			"jwks_uri":                              iss.URL + "/keys",
			"authorization_endpoint":                iss.URL + "/auth",
			"token_endpoint":                        iss.URL + "/token",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		iss.keyFetches.Add(1)
		pub := iss.Key.PublicKey
		writeJSON(w, map[string]any{"keys": []any{map[string]any{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": iss.KeyID,
			"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		}}})
	})
	iss.Server = httptest.NewServer(mux)
	t.Cleanup(iss.Close)
	return iss
}

// Discoveries counts the requests for the discovery document.
func (iss *Issuer) Discoveries() int64 { return iss.discoveries.Load() }

// KeyFetches counts the requests for the key set (JWKS).
func (iss *Issuer) KeyFetches() int64 { return iss.keyFetches.Load() }

// Claims returns the claims of a good token of this issuer for user.
func (iss *Issuer) Claims(user int64) *jwt.RegisteredClaims {
	return Claims(iss.URL, authtoken.Audience, user)
}

// Token is a good RS256 token of this issuer for user, audience "shop".
func (iss *Issuer) Token(t testing.TB, user int64) string {
	t.Helper()
	return iss.Sign(t, iss.Claims(user))
}

// Sign signs claims with the issuer's key.
func (iss *Issuer) Sign(t testing.TB, claims jwt.Claims) string {
	t.Helper()
	return RS256(t, iss.Key, iss.KeyID, claims)
}

// RS256 signs claims with key, naming kid in the header.
func RS256(t testing.TB, key *rsa.PrivateKey, kid string, claims jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// NewKey makes an RSA key (2048 bits).
func NewKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// Tamper changes the last character of a token's signature, so it no
// longer verifies.
func Tamper(token string) string {
	last := token[len(token)-2]
	repl := "A"
	if last == 'A' {
		repl = "B"
	}
	return token[:len(token)-2] + repl + token[len(token)-1:]
}

// WithHeader returns token with its JOSE header replaced by header (the
// signature stays, so it no longer matches).
func WithHeader(token string, header map[string]any) string {
	parts := strings.SplitN(token, ".", 3)
	b, _ := json.Marshal(header)
	parts[0] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
