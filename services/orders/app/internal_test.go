package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"shop/services/orders/app"
	"shop/services/platform/service"
	"shop/services/platform/service/servicetest"
)

// A forged payment result, as anyone who reaches the service could send
// it, settles nothing: the internal endpoint is not on the public listener,
// and the internal listener wants the service credential.
func TestPaymentStatusNeedsTheInternalListenerAndItsCredential(t *testing.T) {
	cfg := app.DefaultConfig()
	public, internal := servicetest.Serve(t, cfg.Config, func(ctx context.Context, c service.Config) error {
		cfg.Config = c
		return app.Run(ctx, cfg)
	})
	resp := servicetest.Call(t, "POST", public+"/orders", `{"user_id":5,"amount":"500.00"}`, "")
	if resp.Status != 201 {
		t.Fatalf("create: %d %s", resp.Status, resp.Body)
	}
	var o orderBody
	resp.JSON(t, &o)
	status := func() string {
		var got orderBody
		servicetest.Call(t, "GET", public+"/orders/"+o.ID, "", "").JSON(t, &got)
		return got.Status
	}
	result := func(msgID string) string {
		return fmt.Sprintf(`{"message_id":%q,"order_id":%q,"status":"FINISHED"}`, msgID, o.ID)
	}

	// Not on the public listener (404, as if it did not exist).
	servicetest.Call(t, "POST", public+"/orders/payment-status", result("0193a000-0000-7000-8000-000000000021"), servicetest.InternalToken).Problem(t, 404)
	for _, token := range []string{"", "test-internal-token-012345678", "test-internal-token-0123456789-and-more"} {
		resp := servicetest.Call(t, "POST", internal+"/orders/payment-status", result("0193a000-0000-7000-8000-000000000022"), token)
		resp.Problem(t, 401)
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("token %q: WWW-Authenticate %q", token, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if got := status(); got != "NEW" {
		t.Fatalf("after forged results the order is %s, want NEW", got)
	}

	resp = servicetest.Call(t, "POST", internal+"/orders/payment-status", result("0193a000-0000-7000-8000-000000000023"), servicetest.InternalToken)
	if resp.Status != 200 {
		t.Fatalf("with the credential: %d %s", resp.Status, resp.Body)
	}
	if got := status(); got != "FINISHED" {
		t.Fatalf("after the result the order is %s, want FINISHED", got)
	}
	servicetest.Call(t, "GET", internal+"/orders/"+o.ID, "", servicetest.InternalToken).Problem(t, 404)
}
