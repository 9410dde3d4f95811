package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"shop/services/devstack/stack"
	"shop/services/platform/docsui/browsertest"
	"shop/services/platform/polltest"
)

// The operation the test tries: POST /accounts, found by what the page
// shows (its method and path), not by an id Swagger UI makes up.
const createAccount = `.opblock.opblock-post:has(.opblock-summary-path[data-path="/accounts"])`

// TestDocsAuthorizeAndTryItOut opens the gateway's docs page in a real
// Chromium, on a shop with authentication on, and does what a user does:
// Execute without a token gets 401; Authorize with a token, Execute again,
// and the account is created (201), by a request that carried the token.
func TestDocsAuthorizeAndTryItOut(t *testing.T) {
	chromium := browsertest.Chromium(t)

	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	shop := startShop(t)
	const user = 7
	token, err := shop.Token(user)
	if err != nil {
		t.Fatal(err)
	}

	ctx = browsertest.New(ctx, t, chromium)
	var (
		mu   sync.Mutex
		sent []http.Header // Authorization of each POST /accounts, in order
	)
	err = chromedp.Listen(ctx, func(ev any) {
		if ev, ok := ev.(*network.EventRequestWillBeSent); ok &&
			ev.Request.Method == http.MethodPost && ev.Request.URL == shop.GatewayURL+"/accounts" {
			h := http.Header{}
			for k, v := range ev.Request.Headers {
				h.Set(k, fmt.Sprint(v))
			}
			mu.Lock()
			sent = append(sent, h)
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("start browser: %v", err)
	}
	sentHeaders := func() []http.Header {
		mu.Lock()
		defer mu.Unlock()
		return append([]http.Header(nil), sent...)
	}

	// The page, its operations, and the Authorize button the bearerAuth
	// scheme brings.
	if err := chromedp.Do(ctx, chromedp.Navigate(shop.GatewayURL+"/docs")); err != nil {
		t.Fatalf("open docs page: %v", err)
	}
	step(t, ctx, "wait for the operations", chromedp.Query(chromedp.CSS(createAccount), chromedp.NodeVisible))
	step(t, ctx, "find the Authorize button", chromedp.Query(chromedp.CSS(".auth-wrapper .btn.authorize"), chromedp.NodeVisible))

	// Open POST /accounts and put it in Try it out mode (the page may start
	// in it: the docs enable it by default).
	step(t, ctx, "expand POST /accounts", chromedp.Click(chromedp.CSS(createAccount+" .opblock-summary-control")))
	tryOut := chromedp.CSS(createAccount + " .try-out__btn")
	step(t, ctx, "find Try it out", chromedp.Query(tryOut, chromedp.NodeVisible))
	label, err := chromedp.Run(ctx, chromedp.Text(tryOut))
	if err != nil {
		t.Fatalf("read the Try it out button: %v", err)
	}
	if strings.TrimSpace(label) == "Try it out" {
		step(t, ctx, "click Try it out", chromedp.Click(tryOut))
	}
	body := createAccount + " textarea.body-param__text"
	step(t, ctx, "find the request body", chromedp.Query(chromedp.CSS(body), chromedp.NodeVisible))
	if got := fill(t, ctx, body, fmt.Sprintf(`{"user_id": %d}`, user)); got != fmt.Sprintf(`{"user_id": %d}`, user) {
		t.Fatalf("request body reads %q after filling it", got)
	}

	// Without a token the gateway refuses.
	if got := execute(t, ctx); got != "401" {
		t.Errorf("Execute before Authorize shows status %q, want 401", got)
	}
	if h := sentHeaders(); len(h) != 1 || h[0].Get("Authorization") != "" {
		t.Errorf("before Authorize the page sent POST /accounts %d times, Authorization %q; want once, none", len(h), authorizations(h))
	}

	// Authorize: the dialog, the token typed into bearerAuth's field, its
	// Authorize, then Close.
	step(t, ctx, "click Authorize", chromedp.Click(chromedp.CSS(".auth-wrapper .btn.authorize")))
	tokenField := chromedp.CSS(".modal-ux .auth-container input")
	step(t, ctx, "type the token", chromedp.SendKeys(tokenField, token, chromedp.NodeVisible))
	step(t, ctx, "click the dialog's Authorize", chromedp.Click(chromedp.CSS(".modal-ux .auth-btn-wrapper .btn.authorize")))
	// Once authorized, the dialog offers Logout where Authorize was.
	step(t, ctx, "wait for the dialog to take the token", chromedp.Query(chromedp.CSS(".modal-ux .auth-btn-wrapper .btn.authorize"), chromedp.NodeNotPresent))
	step(t, ctx, "close the dialog", chromedp.Click(chromedp.CSS(".modal-ux .btn-done")))
	step(t, ctx, "wait for the dialog to close", chromedp.Query(chromedp.CSS(".modal-ux"), chromedp.NodeNotPresent))
	step(t, ctx, "see the lock closed", chromedp.Query(chromedp.CSS(".auth-wrapper .btn.authorize.locked"), chromedp.NodeVisible))

	// With the token the account is created, by a request that carried it.
	if got := execute(t, ctx); got != "201" {
		t.Errorf("Execute after Authorize shows status %q, want 201", got)
	}
	h := sentHeaders()
	if len(h) != 2 || h[1].Get("Authorization") != "Bearer "+token {
		t.Errorf("after Authorize the page sent POST /accounts with Authorization %q, want a second request with %q",
			authorizations(h), "Bearer "+token)
	}
	// The gateway agrees: the account is there, for the token's user.
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/accounts/%d/balance", shop.GatewayURL, user), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("balance of user %d after the page created the account: %s, want 200 OK", user, res.Status)
	}
}

// startShop starts the whole shop with its defaults: embedded stores, and
// the gateway's authentication on with a fresh secret. It returns once the
// gateway serves the merged API description.
func startShop(t *testing.T) *stack.Shop {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	shop, err := stack.Start(ctx, stack.Options{})
	if err != nil {
		cancel()
		t.Fatalf("start the shop: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := shop.Wait(); err != nil {
			t.Errorf("shop stopped with %v", err)
		}
	})
	polltest.Until(t, 30*time.Second, func() error {
		res, err := http.Get(shop.GatewayURL + "/readyz")
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("gateway not ready: %s", res.Status)
		}
		return nil
	})
	if shop.JWTSecret == "" {
		t.Fatal("the shop's gateway has no JWT_HS256_SECRET: authentication is not on")
	}
	return shop
}

// step runs one browser action; the test's deadline bounds every wait.
func step(t *testing.T, ctx context.Context, what string, a chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, a); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// fill sets a text field as typing would, so that Swagger UI's React state
// sees the change, and returns the field's value.
func fill(t *testing.T, ctx context.Context, selector, value string) string {
	t.Helper()
	sel, _ := json.Marshal(selector)
	val, _ := json.Marshal(value)
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(() => {
		const el = document.querySelector(%s);
		Object.getOwnPropertyDescriptor(Object.getPrototypeOf(el), "value").set.call(el, %s);
		el.dispatchEvent(new Event("input", {bubbles: true}));
		return el.value;
	})()`, sel, val)))
	if err != nil {
		t.Fatalf("fill %s: %v", selector, err)
	}
	return got
}

// execute clears the operation's last response, clicks Execute and returns
// the status the page shows for the live response.
func execute(t *testing.T, ctx context.Context) string {
	t.Helper()
	clear := createAccount + " .btn-clear"
	present, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q) !== null`, clear)))
	if err != nil {
		t.Fatalf("look for Clear: %v", err)
	}
	if present {
		step(t, ctx, "clear the last response", chromedp.Click(chromedp.CSS(clear)))
		step(t, ctx, "wait for the last response to go",
			chromedp.Query(chromedp.CSS(createAccount+" .live-responses-table"), chromedp.NodeNotPresent))
	}
	step(t, ctx, "click Execute", chromedp.Click(chromedp.CSS(createAccount+" .btn.execute")))
	status, err := chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf(
		`document.querySelector(%q)?.textContent.trim().slice(0, 3)`,
		createAccount+" .live-responses-table .response .response-col_status")))
	if err != nil {
		t.Fatalf("wait for the response: %v", err)
	}
	return status
}

func authorizations(hs []http.Header) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Get("Authorization"))
	}
	return out
}
