package e2e_test

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"shop/services/gateway/internal/authtest"
	"shop/services/gateway/internal/upstreamtest"
	"shop/services/platform/service/servicetest"
)

func get(t *testing.T, url, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", authtest.Bearer(token))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestGatewayProcesses runs gateway binaries: two share one Redis and one
// rate limit; the secret never shows in the log; AUTH=off is warned; and
// AUTH=jwt with nothing to check tokens with does not start.
func TestGatewayProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	bin := servicetest.Build(t, "gateway")
	orders, payments := upstreamtest.NewOrders(t), upstreamtest.NewPayments(t)
	env := []string{"ORDERS_URL=" + orders.URL, "PAYMENTS_URL=" + payments.URL, "SHUTDOWN_TIMEOUT=2s",
		"AUTH=jwt", "OIDC_ISSUER_URL=", "JWT_HS256_SECRET=" + authtest.Secret,
		"REDIS_URL=" + servicetest.RedisURL(t), "RATE_LIMIT=1", "RATE_LIMIT_BURST=2"}
	a := servicetest.Start(t, "gateway-a", bin, env...)
	b := servicetest.Start(t, "gateway-b", bin, env...)

	token := authtest.Token(t, 7)
	for i := range 2 {
		if resp := get(t, a.URL+"/accounts/7/balance", token); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d at gateway a: %d", i+1, resp.StatusCode)
		}
	}
	resp := get(t, b.URL+"/accounts/7/balance", token)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third request, at gateway b: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp := get(t, b.URL+"/accounts/7/balance", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without a token: %d, want 401", resp.StatusCode)
	}
	if out := a.Output(); strings.Contains(out, authtest.Secret) || !strings.Contains(out, `"JWT_HS256_SECRET":"****"`) {
		t.Errorf("the start-up log shows the secret, or not its mask:\n%s", out)
	}

	off := servicetest.Start(t, "gateway-off", bin, append(env, "AUTH=off", "RATE_LIMIT=0")...)
	if !strings.Contains(off.Output(), `"level":"WARN","msg":"AUTH=off`) {
		t.Errorf("AUTH=off not warned at start:\n%s", off.Output())
	}
	if resp := get(t, off.URL+"/accounts/7/balance", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("AUTH=off without a token: %d, want 200", resp.StatusCode)
	}

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "HTTP_ADDR=127.0.0.1:0", "AUTH=jwt", "OIDC_ISSUER_URL=", "JWT_HS256_SECRET=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	exit, ok := errors.AsType[*exec.ExitError](err)
	if !ok || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), "AUTH=jwt needs OIDC_ISSUER_URL") {
		t.Errorf("gateway without issuer or secret: %v, stderr %q; want exit 2 naming OIDC_ISSUER_URL", err, stderr.String())
	}
}
