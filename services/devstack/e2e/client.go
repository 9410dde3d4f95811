package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"shop/services/platform/authtoken"
)

// TestSecret is the gateway's JWT_HS256_SECRET in the end-to-end tests.
const TestSecret = "e2e-secret-of-the-gateway-for-hs256-tokens"

// client calls the shop's HTTP API, as a user (see as) with a token signed
// with secret. Without a user or secret it sends no token.
type client struct {
	http   *http.Client
	secret string
	user   int64
	tokens *sync.Map // user id → token
}

func newClient(secret string) *client {
	return &client{
		http: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64},
		},
		secret: secret,
		tokens: &sync.Map{},
	}
}

// as returns a client that calls as user, sharing c's connections.
func (c *client) as(user int64) *client {
	cp := *c
	cp.user = user
	return &cp
}

// authorize sets the user's bearer token on req.
func (c *client) authorize(req *http.Request) error {
	if c.secret == "" || c.user <= 0 {
		return nil
	}
	tok, ok := c.tokens.Load(c.user)
	if !ok {
		minted, err := authtoken.Mint([]byte(c.secret), c.user, authtoken.Options{})
		if err != nil {
			return err
		}
		tok, _ = c.tokens.LoadOrStore(c.user, minted)
	}
	req.Header.Set("Authorization", "Bearer "+tok.(string))
	return nil
}

// call sends body (if not nil) as JSON and decodes a 2xx answer into out.
// It returns the status, or an error if no answer came.
func (c *client) call(method, url string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := c.authorize(req); err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", data, err)
		}
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
	return resp.StatusCode, nil
}

type account struct {
	UserID  int64  `json:"user_id"`
	Balance string `json:"balance"`
}

type order struct {
	ID           string `json:"id"`
	UserID       int64  `json:"user_id"`
	Amount       string `json:"amount"`
	Status       string `json:"status"`
	CancelReason string `json:"cancel_reason"`
	CreatedAt    string `json:"created_at"`
	UpdatedAt    string `json:"updated_at"`
}

// mustCall is call that fails t on an error or a non-2xx answer.
func (c *client) mustCall(t *testing.T, method, url string, body, out any) {
	t.Helper()
	if _, err := c.call(method, url, body, out); err != nil {
		t.Fatal(err)
	}
}

// RunPaymentScenario: account, top-up 100.00, an order of 30.00 is FINISHED
// within 2 seconds and leaves 70.00; an order of 100.00 is CANCELLED with a
// reason and leaves the balance alone. It calls as user 1, with a token
// signed with secret (the gateway's JWT_HS256_SECRET; "" for none).
func RunPaymentScenario(t *testing.T, gateway, secret string) {
	t.Helper()
	c := newClient(secret).as(1)
	var a account
	c.mustCall(t, "POST", gateway+"/accounts", map[string]any{"user_id": 1}, &a)
	c.mustCall(t, "POST", gateway+"/accounts/top-up", map[string]any{"user_id": 1, "amount": "100.00"}, &a)

	var paid order
	c.mustCall(t, "POST", gateway+"/orders", map[string]any{"user_id": 1, "amount": "30.00", "description": "two coffees"}, &paid)
	if paid.Status != "NEW" {
		t.Fatalf("new order is %s", paid.Status)
	}
	paid = waitStatus(t, c, gateway, paid.ID, 2*time.Second)
	if paid.Status != "FINISHED" {
		t.Fatalf("order of 30.00 is %s (%s), want FINISHED", paid.Status, paid.CancelReason)
	}
	c.mustCall(t, "GET", gateway+"/accounts/1/balance", nil, &a)
	if a.Balance != "70.00" {
		t.Fatalf("balance %s, want 70.00", a.Balance)
	}

	var declined order
	c.mustCall(t, "POST", gateway+"/orders", map[string]any{"user_id": 1, "amount": "100.00"}, &declined)
	declined = waitStatus(t, c, gateway, declined.ID, 2*time.Second)
	if declined.Status != "CANCELLED" || declined.CancelReason == "" {
		t.Fatalf("order of 100.00 is %s (%q), want CANCELLED with a reason", declined.Status, declined.CancelReason)
	}
	c.mustCall(t, "GET", gateway+"/accounts/1/balance", nil, &a)
	if a.Balance != "70.00" {
		t.Fatalf("balance %s after a declined order, want 70.00", a.Balance)
	}
}

// waitStatus polls an order until it leaves NEW or the limit passes.
func waitStatus(t *testing.T, c *client, gateway, id string, limit time.Duration) order {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var o order
		c.mustCall(t, "GET", gateway+"/orders/"+id, nil, &o)
		if o.Status != "NEW" || time.Now().After(deadline) {
			return o
		}
		time.Sleep(10 * time.Millisecond)
	}
}
