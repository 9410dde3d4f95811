package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"shop/services/gateway/app"
	"shop/services/gateway/internal/authtest"
	"shop/services/gateway/internal/proxy"
	"shop/services/gateway/internal/upstreamtest"
	"shop/services/platform/authtoken"
	"shop/services/platform/service/servicetest"
	"shop/services/platform/web"
)

// publicRequest is a request for each public operation (proxy.Routes),
// which the fake services answer 2xx.
type publicRequest struct {
	route proxy.Route
	path  string
	body  string
}

func publicRequests() []publicRequest {
	bodies := map[string]string{
		"POST /orders":          `{"user_id":7,"amount":"12.30","description":"book"}`,
		"POST /accounts":        `{"user_id":7}`,
		"POST /accounts/top-up": `{"user_id":7,"amount":"100.00"}`,
	}
	paths := strings.NewReplacer("{order_id}", "0193a0b4-0000-7000-8000-000000000001", "{user_id}", "7")
	var out []publicRequest
	for _, rt := range proxy.Routes {
		path := paths.Replace(rt.Path)
		if rt.Method == http.MethodGet && rt.Path == "/orders" {
			path += "?user_id=7"
		}
		out = append(out, publicRequest{rt, path, bodies[rt.Pattern()]})
	}
	return out
}

func (p publicRequest) send(t *testing.T, g *gateway, header http.Header) response {
	t.Helper()
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	var body *strings.Reader
	if p.body != "" {
		body = strings.NewReader(p.body)
	}
	if body == nil {
		return g.do(t, p.route.Method, p.path, nil, h)
	}
	return g.do(t, p.route.Method, p.path, body, h)
}

// fakes are the fake services, by name.
type fakes map[string]*upstreamtest.Server

func newFakes(t *testing.T) fakes {
	return fakes{proxy.Orders: upstreamtest.NewOrders(t), proxy.Payments: upstreamtest.NewPayments(t)}
}

func (f fakes) received() int {
	return len(f[proxy.Orders].Requests()) + len(f[proxy.Payments].Requests())
}

func (f fakes) config() app.Config { return testConfig(f[proxy.Orders].URL, f[proxy.Payments].URL) }

func TestEveryPublicOperationRefusesBadTokens(t *testing.T) {
	iss := authtest.NewIssuer(t)
	services := newFakes(t)
	cfg := services.config()
	cfg.OIDCIssuerURL = iss.URL
	both := start(t, cfg) // an issuer and a secret
	cfg.JWTHS256Secret = ""
	issuerOnly := start(t, cfg)

	past := jwt.NewNumericDate(time.Now().Add(-time.Hour))
	future := jwt.NewNumericDate(time.Now().Add(time.Hour))
	rs := func(edit func(c *jwt.RegisteredClaims)) string {
		c := iss.Claims(7)
		edit(c)
		return iss.Sign(t, c)
	}
	hs := func(edit func(c *jwt.RegisteredClaims)) string {
		c := authtest.Claims(authtoken.Issuer, authtoken.Audience, 7)
		edit(c)
		return authtest.HS256(t, authtest.Secret, c)
	}
	tests := []struct {
		name  string
		g     *gateway
		token string // "": no Authorization header
	}{
		{"no token", both, ""},
		{"garbage", both, "garbage"},
		{"expired, issuer", both, rs(func(c *jwt.RegisteredClaims) { c.ExpiresAt = past })},
		{"expired, secret", both, hs(func(c *jwt.RegisteredClaims) { c.ExpiresAt = past })},
		{"not yet valid, issuer", both, rs(func(c *jwt.RegisteredClaims) { c.NotBefore = future })},
		{"not yet valid, secret", both, hs(func(c *jwt.RegisteredClaims) { c.NotBefore = future })},
		{"wrong issuer, issuer", both, rs(func(c *jwt.RegisteredClaims) { c.Issuer = "https://evil.example" })},
		{"wrong issuer, secret", both, hs(func(c *jwt.RegisteredClaims) { c.Issuer = "evil" })},
		{"wrong audience, issuer", both, rs(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"billing"} })},
		{"wrong audience, secret", both, hs(func(c *jwt.RegisteredClaims) { c.Audience = jwt.ClaimStrings{"billing"} })},
		{"bad signature, issuer", both, authtest.Tamper(iss.Token(t, 7))},
		{"bad signature, secret", both, authtest.Tamper(authtest.Token(t, 7))},
		{"signed by another key", both, authtest.RS256(t, authtest.NewKey(t), iss.KeyID, iss.Claims(7))},
		{"alg none", both, authtest.None(t, authtest.Claims(authtoken.Issuer, authtoken.Audience, 7))},
		{"alg none, issuer's claims", both, authtest.None(t, iss.Claims(7))},
		{"HS256 with only an issuer", issuerOnly, authtest.Token(t, 7)},
		{"sub not a user id", both, hs(func(c *jwt.RegisteredClaims) { c.Subject = "alice" })},
	}
	for _, p := range publicRequests() {
		for _, tt := range tests {
			t.Run(p.route.Pattern()+"/"+tt.name, func(t *testing.T) {
				header := noToken()
				if tt.token != "" {
					header = http.Header{"Authorization": {authtest.Bearer(tt.token)}}
				}
				before := services.received()
				resp := p.send(t, tt.g, header)
				problem(t, resp, http.StatusUnauthorized)
				challenge := resp.header.Get("WWW-Authenticate")
				if !strings.HasPrefix(challenge, "Bearer") {
					t.Errorf("WWW-Authenticate %q, want a Bearer challenge", challenge)
				}
				if given := tt.token != ""; given != strings.Contains(challenge, `error="invalid_token"`) {
					t.Errorf("WWW-Authenticate %q for a token given: %v", challenge, given)
				}
				if services.received() != before {
					t.Error("a service received the request")
				}
			})
		}
	}
}

func TestGoodTokensReachTheServiceAsTheirUser(t *testing.T) {
	iss := authtest.NewIssuer(t)
	services := newFakes(t)
	cfg := services.config()
	cfg.OIDCIssuerURL = iss.URL
	g := start(t, cfg)

	tokens := []struct {
		name  string
		token string
		user  string
	}{
		{"RS256 from the issuer", iss.Token(t, 7), "7"},
		{"HS256", authtest.Token(t, 42), "42"},
	}
	for _, p := range publicRequests() {
		for _, tok := range tokens {
			t.Run(p.route.Pattern()+"/"+tok.name, func(t *testing.T) {
				// X-User-Id from the client, in any spelling, never passes.
				resp := p.send(t, g, http.Header{
					"Authorization": {authtest.Bearer(tok.token)},
					web.UserHeader:  {"1", "2"},
					"x-user-id":     {"3"},
				})
				if resp.status/100 != 2 {
					t.Fatalf("status %d: %s", resp.status, resp.body)
				}
				got, ok := services[p.route.Service].Last()
				if !ok {
					t.Fatal("the service received nothing")
				}
				if users := got.Header.Values(web.UserHeader); len(users) != 1 || users[0] != tok.user {
					t.Errorf("%s %v, want [%s]", web.UserHeader, users, tok.user)
				}
			})
		}
	}
}

// With OIDC_USER_CLAIM the user comes from the claim it names: Dex puts
// an opaque sub in its tokens and the user id in federated_claims.
func TestUserClaim(t *testing.T) {
	iss := authtest.NewIssuer(t)
	services := newFakes(t)
	cfg := services.config()
	cfg.OIDCIssuerURL = iss.URL
	bySub := start(t, cfg)
	cfg.OIDCUserClaim = "federated_claims.user_id"
	byFederated := start(t, cfg)

	dex := func(userID any) string {
		c := iss.Claims(0)
		c.Subject = "CgE3EgVsb2NhbA" // Dex's: user "7" of connector "local", as protobuf
		return iss.Sign(t, authtest.With(c, map[string]any{
			"federated_claims": map[string]any{"connector_id": "local", "user_id": userID},
		}))
	}
	p := publicRequests()[0]
	tests := []struct {
		name  string
		g     *gateway
		token string
		user  string // "": refused
	}{
		{"nested claim with OIDC_USER_CLAIM", byFederated, dex("7"), "7"},
		{"nested claim a JSON integer", byFederated, dex(7), "7"},
		{"HS256 keeps sub", byFederated, authtest.Token(t, 42), "42"},
		{"nested claim without OIDC_USER_CLAIM", bySub, dex("7"), ""},
		{"nested claim not a decimal", byFederated, dex("alice@example.com"), ""},
		{"nested claim missing", byFederated, iss.Token(t, 7), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := services.received()
			resp := p.send(t, tt.g, http.Header{"Authorization": {authtest.Bearer(tt.token)}})
			if tt.user == "" {
				problem(t, resp, http.StatusUnauthorized)
				if c := resp.header.Get("WWW-Authenticate"); !strings.Contains(c, `error="invalid_token"`) {
					t.Errorf("WWW-Authenticate %q, want invalid_token", c)
				}
				if services.received() != before {
					t.Error("a service received the request")
				}
				return
			}
			if resp.status/100 != 2 {
				t.Fatalf("status %d: %s", resp.status, resp.body)
			}
			got, _ := services[p.route.Service].Last()
			if users := got.Header.Values(web.UserHeader); len(users) != 1 || users[0] != tt.user {
				t.Errorf("%s %v, want [%s]", web.UserHeader, users, tt.user)
			}
		})
	}
}

func TestAuthOff(t *testing.T) {
	var logs servicetest.Buffer
	restore := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	t.Cleanup(func() { slog.SetDefault(restore) })

	services := newFakes(t)
	cfg := services.config()
	cfg.Auth, cfg.JWTHS256Secret = app.AuthOff, ""
	g := start(t, cfg)
	if !strings.Contains(logs.String(), `"level":"WARN","msg":"AUTH=off`) {
		t.Errorf("no warning about AUTH=off at start; logged:\n%s", logs.String())
	}
	for _, p := range publicRequests() {
		t.Run(p.route.Pattern(), func(t *testing.T) {
			resp := p.send(t, g, http.Header{"Authorization": nil, web.UserHeader: {"1"}})
			if resp.status/100 != 2 {
				t.Fatalf("status %d without a token and AUTH=off: %s", resp.status, resp.body)
			}
			got, _ := services[p.route.Service].Last()
			if users := got.Header.Values(web.UserHeader); len(users) != 0 {
				t.Errorf("the service received %s %v with AUTH=off", web.UserHeader, users)
			}
		})
	}
}

func TestOpenRoutesNeedNoToken(t *testing.T) {
	g := start(t, newFakes(t).config())
	for _, path := range []string{"/health", "/livez", "/readyz", "/openapi.json", "/openapi.yaml", "/openapi-3.0.json", "/openapi-3.0.yaml", "/docs"} {
		if resp := g.do(t, http.MethodGet, path, nil, noToken()); resp.status != http.StatusOK {
			t.Errorf("GET %s without a token: %d %s", path, resp.status, resp.body)
		}
	}
}

func TestStartRefusedWithoutAWayToCheckTokens(t *testing.T) {
	cfg := newFakes(t).config()
	cfg.JWTHS256Secret = ""
	err := app.Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "AUTH=jwt needs OIDC_ISSUER_URL") || !strings.Contains(err.Error(), "JWT_HS256_SECRET") {
		t.Fatalf("Run = %v, want a refusal naming OIDC_ISSUER_URL and JWT_HS256_SECRET", err)
	}
}

// TestIssuerDownAtStart: the gateway is not ready, and answers the
// issuer's tokens 503, until the issuer answers its discovery.
func TestIssuerDownAtStart(t *testing.T) {
	iss := authtest.NewIssuer(t)
	iss.SetDown(true)
	services := newFakes(t)
	cfg := services.config()
	cfg.OIDCIssuerURL = iss.URL
	g := startUnready(t, cfg)
	eventually(t, func() bool { return iss.Discoveries() >= 2 }, "discovery not retried")
	problem(t, g.do(t, http.MethodGet, "/readyz", nil, nil), http.StatusServiceUnavailable)
	resp := g.do(t, http.MethodGet, "/accounts/7/balance", nil, http.Header{"Authorization": {authtest.Bearer(iss.Token(t, 7))}})
	problem(t, resp, http.StatusServiceUnavailable)
	if resp.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	iss.SetDown(false)
	eventually(t, func() bool { return g.do(t, http.MethodGet, "/readyz", nil, nil).status == http.StatusOK }, "not ready after the issuer came up")
	if resp := g.do(t, http.MethodGet, "/accounts/7/balance", nil, http.Header{"Authorization": {authtest.Bearer(iss.Token(t, 7))}}); resp.status != http.StatusOK {
		t.Errorf("issuer's token once discovered: %d %s", resp.status, resp.body)
	}
}

func TestMergedSpecDeclaresBearerAuth(t *testing.T) {
	g := start(t, newFakes(t).config())
	resp := g.do(t, http.MethodGet, "/openapi.json", nil, noToken())
	var doc struct {
		Components struct {
			SecuritySchemes map[string]map[string]string
		}
		Paths map[string]map[string]struct {
			Security  []map[string][]string
			Responses map[string]struct {
				Headers map[string]any
			}
		}
	}
	if err := json.Unmarshal(resp.body, &doc); err != nil {
		t.Fatal(err)
	}
	scheme := doc.Components.SecuritySchemes["bearerAuth"]
	if scheme["type"] != "http" || scheme["scheme"] != "bearer" || scheme["bearerFormat"] != "JWT" {
		t.Errorf("bearerAuth = %v", scheme)
	}
	for _, rt := range proxy.Routes {
		op := doc.Paths[rt.Path][strings.ToLower(rt.Method)]
		if len(op.Security) != 1 || op.Security[0]["bearerAuth"] == nil {
			t.Errorf("%s: security %v", rt.Pattern(), op.Security)
		}
		for code, headers := range map[string][]string{
			"401": {"WWW-Authenticate"},
			"429": {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"},
		} {
			r, ok := op.Responses[code]
			if !ok {
				t.Errorf("%s: no %s answer", rt.Pattern(), code)
			}
			for _, h := range headers {
				if r.Headers[h] == nil {
					t.Errorf("%s: %s answer without %s", rt.Pattern(), code, h)
				}
			}
		}
	}
	if health := doc.Paths["/health"]["get"]; health.Security != nil {
		t.Errorf("/health requires %v", health.Security)
	}

	// OpenAPI 3.0 says the same.
	resp = g.do(t, http.MethodGet, "/openapi-3.0.json", nil, noToken())
	if err := json.Unmarshal(resp.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Components.SecuritySchemes["bearerAuth"]["scheme"] != "bearer" {
		t.Errorf("3.0: bearerAuth = %v", doc.Components.SecuritySchemes["bearerAuth"])
	}
	if op := doc.Paths["/orders"]["post"]; len(op.Security) != 1 || op.Responses["429"].Headers["Retry-After"] == nil {
		t.Errorf("3.0: POST /orders security %v, 429 %v", op.Security, op.Responses["429"])
	}
}

func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
