package app_test

import (
	"strings"
	"testing"

	"shop/services/payments/app"
	"shop/services/platform/service/servicetest"
)

// A forged payment request, as anyone who reaches the service could send
// it, debits nothing: the internal endpoint is not on the public listener,
// and the internal listener wants the service credential.
func TestProcessPaymentNeedsTheInternalListenerAndItsCredential(t *testing.T) {
	public, internal := servicetest.Serve(t, app.DefaultConfig(), app.Run)
	if resp := servicetest.Call(t, "POST", public+"/accounts", `{"user_id":7}`, ""); resp.Status != 201 {
		t.Fatalf("open account: %d %s", resp.Status, resp.Body)
	}
	if resp := servicetest.Call(t, "POST", public+"/accounts/top-up", `{"user_id":7,"amount":"100.00"}`, ""); resp.Status != 200 {
		t.Fatalf("top up: %d %s", resp.Status, resp.Body)
	}
	balance := func() string {
		var a accountBody
		servicetest.Call(t, "GET", public+"/accounts/7/balance", "", "").JSON(t, &a)
		return a.Balance
	}
	pay := func(msgID string) string {
		return `{"message_id":"` + msgID + `","order_id":"0193a000-0000-7000-8000-0000000000b1","user_id":7,"amount":"30.00"}`
	}

	servicetest.Call(t, "POST", public+"/payments/process", pay("0193a000-0000-7000-8000-000000000011"), servicetest.InternalToken).Problem(t, 404)
	for _, forged := range []struct{ name, token string }{
		{"no credential", ""},
		{"wrong credential", "test-internal-token-0123456788"},
		{"public path's credential", "not-even-close"},
	} {
		resp := servicetest.Call(t, "POST", internal+"/payments/process", pay("0193a000-0000-7000-8000-000000000012"), forged.token)
		resp.Problem(t, 401)
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q", forged.name, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if got := balance(); got != "100.00" {
		t.Fatalf("balance after forged requests = %s, want 100.00", got)
	}

	resp := servicetest.Call(t, "POST", internal+"/payments/process", pay("0193a000-0000-7000-8000-000000000013"), servicetest.InternalToken)
	if resp.Status != 200 || !strings.Contains(string(resp.Body), `"FINISHED"`) {
		t.Fatalf("with the credential: %d %s", resp.Status, resp.Body)
	}
	if got := balance(); got != "70.00" {
		t.Fatalf("balance after the payment = %s, want 70.00", got)
	}
	// The public operations are not on the internal listener.
	servicetest.Call(t, "GET", internal+"/accounts/7/balance", "", servicetest.InternalToken).Problem(t, 404)
}
