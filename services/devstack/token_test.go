package main

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"shop/services/devstack/stack"
	"shop/services/platform/authtoken"
	"shop/services/platform/service/servicetest"
)

const secret = "a-development-secret-of-32-bytes-or-more"

// subject checks tok as the gateway does (HS256 with secret, iss, aud, exp)
// and returns its sub.
func subject(t *testing.T, tok, audience string) string {
	t.Helper()
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(authtoken.Issuer), jwt.WithAudience(audience),
		jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("token %q: %v", tok, err)
	}
	return claims.Subject
}

func TestTokenCommand(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	run := func(args []string, vars map[string]string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := tokenCommand(args, env(vars), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	code, out, errOut := run([]string{"-user", "7"}, map[string]string{"JWT_HS256_SECRET": secret})
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if sub := subject(t, strings.TrimSpace(out), authtoken.Audience); sub != "7" {
		t.Fatalf("sub %q, want 7", sub)
	}
	code, out, _ = run([]string{"-user", "8"}, map[string]string{"JWT_HS256_SECRET": secret, "OIDC_AUDIENCE": "shop-dev"})
	if code != 0 || subject(t, strings.TrimSpace(out), "shop-dev") != "8" {
		t.Fatalf("with OIDC_AUDIENCE: exit %d, %q", code, out)
	}

	refused := []struct {
		name string
		args []string
		vars map[string]string
		says string
	}{
		{"no secret", []string{"-user", "1"}, nil, "JWT_HS256_SECRET is not set"},
		{"short secret", []string{"-user", "1"}, map[string]string{"JWT_HS256_SECRET": "short"}, "at least 32 bytes"},
		{"no user", nil, map[string]string{"JWT_HS256_SECRET": secret}, "-user N is required"},
		{"user 0", []string{"-user", "0"}, map[string]string{"JWT_HS256_SECRET": secret}, "-user N is required"},
		{"not a number", []string{"-user", "one"}, map[string]string{"JWT_HS256_SECRET": secret}, "invalid value"},
		{"extra argument", []string{"-user", "1", "more"}, map[string]string{"JWT_HS256_SECRET": secret}, "unexpected argument"},
	}
	for _, c := range refused {
		code, out, errOut := run(c.args, c.vars)
		if code != 2 || out != "" || !strings.Contains(errOut, c.says) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 2, nothing, %q", c.name, code, out, errOut, c.says)
		}
	}
	if code, _, errOut := run([]string{"-h"}, nil); code != 0 || !strings.Contains(errOut, "JWT_HS256_SECRET") {
		t.Errorf("-h: exit %d, %q", code, errOut)
	}
}

var (
	userToken = regexp.MustCompile(`(?m)^  user ([12]): +(\S+)$`)
	exportRe  = regexp.MustCompile(`(?m)^  export TOKEN=(\S+)$`)
	curlRe    = regexp.MustCompile(`(?m)^  curl -s -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '(\{[^']*\})' (http://\S+)$`)
)

func TestBannerGivesTokensAndACurlLine(t *testing.T) {
	shop := &stack.Shop{GatewayURL: "http://localhost:8000", PaymentsURL: "http://localhost:8001", OrdersURL: "http://localhost:8002",
		JWTSecret: secret, Audience: authtoken.Audience}
	var b bytes.Buffer
	if err := banner(&b, shop, settings{}); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	tokens := userToken.FindAllStringSubmatch(text, -1)
	if len(tokens) != 2 {
		t.Fatalf("want tokens for users 1 and 2 in:\n%s", text)
	}
	for _, m := range tokens {
		if sub := subject(t, m[2], authtoken.Audience); sub != m[1] {
			t.Errorf("user %s's token has sub %q", m[1], sub)
		}
	}
	if m := exportRe.FindStringSubmatch(text); m == nil || m[1] != tokens[0][2] {
		t.Errorf("want export TOKEN=<user 1's token> in:\n%s", text)
	}
	if m := curlRe.FindStringSubmatch(text); m == nil || m[2] != "http://localhost:8000/accounts" {
		t.Errorf("want a curl line to the gateway in:\n%s", text)
	}
	if !strings.Contains(text, "Secret:   "+secret) {
		t.Errorf("a secret devstack made up is not printed:\n%s", text)
	}
	b.Reset()
	if err := banner(&b, shop, settings{JWTSecret: secret}); err != nil || strings.Contains(b.String(), secret) {
		t.Errorf("a secret from the environment is printed (%v):\n%s", err, b.String())
	}

	b.Reset()
	if err := banner(&b, &stack.Shop{GatewayURL: "http://localhost:8000"}, settings{Auth: "off"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "AUTH=off") || strings.Contains(b.String(), "TOKEN") {
		t.Errorf("AUTH=off banner:\n%s", b.String())
	}
}

// TestPrintedCurlLineWorks starts devstack with a secret of its own making
// and sends the request its banner prints, with the token it prints.
func TestPrintedCurlLineWorks(t *testing.T) {
	var out servicetest.Buffer
	cfg := settings{GatewayAddr: servicetest.FreeAddr(t), PaymentsAddr: servicetest.FreeAddr(t), OrdersAddr: servicetest.FreeAddr(t), out: &out}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("devstack stopped with %v", err)
		}
	})
	waitReady(t, "http://"+cfg.GatewayAddr)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "Press Ctrl-C") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	text := out.String()
	token, curl := exportRe.FindStringSubmatch(text), curlRe.FindStringSubmatch(text)
	if token == nil || curl == nil {
		t.Fatalf("no token or curl line in:\n%s", text)
	}
	req, err := http.NewRequest(http.MethodPost, curl[2], strings.NewReader(curl[1]))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token[1])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the printed curl line: %s, want 201", resp.Status)
	}
	secretLine := regexp.MustCompile(`(?m)^  Secret: +([0-9a-f]{64}) `).FindStringSubmatch(text)
	if secretLine == nil {
		t.Fatalf("no fresh secret printed:\n%s", text)
	}
	var stdout, stderr bytes.Buffer
	if code := tokenCommand([]string{"-user", "1"}, func(k string) string {
		if k == "JWT_HS256_SECRET" {
			return secretLine[1]
		}
		return ""
	}, &stdout, &stderr); code != 0 {
		t.Fatalf("token with the printed secret: %d %s", code, stderr.String())
	}
}
