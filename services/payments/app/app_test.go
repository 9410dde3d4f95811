package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"shop/services/payments/app"
	"shop/services/payments/internal/store"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/service/servicetest"
)

func newApp(t *testing.T, dialect string) http.Handler {
	infra, _ := servicetest.Infra(t, dialect, store.Migrations)
	return app.New(infra).Handler
}

type accountBody struct {
	UserID  int64  `json:"user_id"`
	Balance string `json:"balance"`
}

func TestAccountsAPI(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			h := newApp(t, dialect)
			steps := []struct {
				name, method, path, body string
				status                   int
				balance                  string // for 2xx answers
				detail                   string // a part of the problem's text, for errors
			}{
				{"create", "POST", "/accounts", `{"user_id":42}`, 201, "0.00", ""},
				{"create again", "POST", "/accounts", `{"user_id":42}`, 409, "", "already exists"},
				{"create zero user", "POST", "/accounts", `{"user_id":0}`, 422, "", "expected number >= 1"},
				{"create negative user", "POST", "/accounts", `{"user_id":-3}`, 422, "", "expected number >= 1"},
				{"create text user", "POST", "/accounts", `{"user_id":"42"}`, 422, "", "expected integer"},
				{"create without user", "POST", "/accounts", `{}`, 422, "", "user_id is required"},
				{"create unknown field", "POST", "/accounts", `{"user_id":1,"x":1}`, 422, "", "unexpected property"},
				{"create bad json", "POST", "/accounts", `{"user_id":`, 400, "", ""},
				{"top up string", "POST", "/accounts/top-up", `{"user_id":42,"amount":"100.00"}`, 200, "100.00", ""},
				{"top up one digit", "POST", "/accounts/top-up", `{"user_id":42,"amount":"0.1"}`, 200, "100.10", ""},
				{"top up cents above 2^24", "POST", "/accounts/top-up", `{"user_id":42,"amount":"9999999.99"}`, 200, "10000100.09", ""},
				{"top up number", "POST", "/accounts/top-up", `{"user_id":42,"amount":0.10}`, 422, "", "must be a JSON string"},
				{"top up no account", "POST", "/accounts/top-up", `{"user_id":7,"amount":"1.00"}`, 404, "", "no account"},
				{"top up zero", "POST", "/accounts/top-up", `{"user_id":42,"amount":"0"}`, 422, "", "must be greater than 0"},
				{"top up negative", "POST", "/accounts/top-up", `{"user_id":42,"amount":"-5"}`, 422, "", "must be greater than 0"},
				{"top up three digits", "POST", "/accounts/top-up", `{"user_id":42,"amount":"1.005"}`, 422, "", "at most two fraction digits"},
				{"top up exponent", "POST", "/accounts/top-up", `{"user_id":42,"amount":"1e2"}`, 422, "", "decimal number such as 12.30"},
				{"top up too large", "POST", "/accounts/top-up", `{"user_id":42,"amount":"1000000000.01"}`, 422, "", "at most 1000000000.00"},
				{"top up NaN", "POST", "/accounts/top-up", `{"user_id":42,"amount":"NaN"}`, 422, "", ""},
				{"top up without amount", "POST", "/accounts/top-up", `{"user_id":42}`, 422, "", "required property amount"},
				{"balance", "GET", "/accounts/42/balance", "", 200, "10000100.09", ""},
				{"balance no account", "GET", "/accounts/7/balance", "", 404, "", "no account"},
				{"balance bad id", "GET", "/accounts/abc/balance", "", 422, "", "invalid integer"},
				{"balance zero id", "GET", "/accounts/0/balance", "", 422, "", "expected number >= 1"},
				{"wrong method", "DELETE", "/accounts", "", 405, "", "not allowed"},
				{"unknown path", "GET", "/nowhere", "", 404, "", "no such resource"},
			}
			for _, s := range steps {
				resp := servicetest.Do(t, h, s.method, s.path, s.body)
				if s.status >= 400 {
					p := resp.Problem(t, s.status)
					if !strings.Contains(p.Detail+" "+errorsText(p), s.detail) {
						t.Errorf("%s: problem %+v lacks %q", s.name, p, s.detail)
					}
					continue
				}
				if resp.Status != s.status {
					t.Fatalf("%s: status %d, want %d; body %s", s.name, resp.Status, s.status, resp.Body)
				}
				var a accountBody
				resp.JSON(t, &a)
				if a.UserID != 42 || a.Balance != s.balance {
					t.Errorf("%s: got %+v, want balance %s", s.name, a, s.balance)
				}
			}
		})
	}
}

func errorsText(p servicetest.Problem) string {
	var b strings.Builder
	for _, e := range p.Errors {
		b.WriteString(e.Location + ": " + e.Message + "; ")
	}
	return b.String()
}

func TestProcessPayment(t *testing.T) {
	infra, _ := servicetest.Infra(t, dbtest.SQLite, store.Migrations)
	wired := app.New(infra)
	h := wired.Handler
	internal := servicetest.Bearer(servicetest.InternalToken, wired.InternalHandler(servicetest.InternalToken))
	servicetest.Do(t, h, "POST", "/accounts", `{"user_id":1}`)
	servicetest.Do(t, h, "POST", "/accounts/top-up", `{"user_id":1,"amount":"100.00"}`)

	type result struct {
		OrderID   string `json:"order_id"`
		Status    string `json:"status"`
		Reason    string `json:"reason"`
		Duplicate bool   `json:"duplicate"`
	}
	process := func(msgID, orderID string, userID int, amount string) (int, result) {
		body, _ := json.Marshal(map[string]any{"message_id": msgID, "order_id": orderID, "user_id": userID, "amount": amount})
		resp := servicetest.Do(t, internal, "POST", "/payments/process", string(body))
		var r result
		if resp.Status == 200 {
			resp.JSON(t, &r)
		}
		return resp.Status, r
	}
	const (
		msg1   = "0193a000-0000-7000-8000-000000000001"
		order1 = "0193a000-0000-7000-8000-0000000000a1"
		msg2   = "0193a000-0000-7000-8000-000000000002"
		order2 = "0193a000-0000-7000-8000-0000000000a2"
		msg3   = "0193a000-0000-7000-8000-000000000003"
		order3 = "0193a000-0000-7000-8000-0000000000a3"
	)
	servicetest.Do(t, h, "POST", "/payments/process", `{}`).Problem(t, 404)
	if code, r := process(msg1, order1, 1, "30.00"); code != 200 || r.Status != "FINISHED" || r.Duplicate {
		t.Fatalf("first payment: %d %+v", code, r)
	}
	if code, r := process(msg1, order1, 1, "30.00"); code != 200 || r.Status != "FINISHED" || !r.Duplicate {
		t.Fatalf("same message again: %d %+v", code, r)
	}
	if code, r := process(msg2, order2, 1, "70.01"); code != 200 || r.Status != "CANCELLED" || r.Reason == "" {
		t.Fatalf("unaffordable: %d %+v", code, r)
	}
	if code, r := process(msg3, order3, 99, "1.00"); code != 200 || r.Status != "CANCELLED" || !strings.Contains(r.Reason, "no account") {
		t.Fatalf("no account: %d %+v", code, r)
	}
	var a accountBody
	servicetest.Do(t, h, "GET", "/accounts/1/balance", "").JSON(t, &a)
	if a.Balance != "70.00" {
		t.Fatalf("balance %s, want 70.00 (one debit of 30.00)", a.Balance)
	}
	servicetest.Do(t, h, "GET", "/accounts/99/balance", "").JSON(t, &a)
	if a.Balance != "0.00" {
		t.Fatalf("opened account balance %s, want 0.00", a.Balance)
	}

	bad := []string{
		`{"message_id":"x","order_id":"` + order1 + `","user_id":1,"amount":"1.00"}`,
		`{"message_id":"` + msg1 + `","order_id":"` + order1 + `","user_id":0,"amount":"1.00"}`,
		`{"message_id":"` + msg1 + `","order_id":"` + order1 + `","user_id":1,"amount":"0.001"}`,
		`{"message_id":"00000000-0000-0000-0000-000000000000","order_id":"` + order1 + `","user_id":1,"amount":"1.00"}`,
		`{"order_id":"` + order1 + `","user_id":1,"amount":"1.00"}`,
	}
	for _, body := range bad {
		servicetest.Do(t, internal, "POST", "/payments/process", body).Problem(t, 422)
	}
}

func TestOpenAPIKeepsInternalOperationsApart(t *testing.T) {
	infra, _ := servicetest.Infra(t, dbtest.SQLite, store.Migrations)
	a := app.New(infra)
	type spec struct {
		Paths map[string]map[string]struct {
			Tags     []string `json:"tags"`
			Internal bool     `json:"x-internal"`
		} `json:"paths"`
	}
	var public spec
	servicetest.Do(t, a.Handler, "GET", "/openapi.json", "").JSON(t, &public)
	for _, p := range []string{"/accounts", "/accounts/top-up", "/accounts/{user_id}/balance", "/health"} {
		if _, ok := public.Paths[p]; !ok {
			t.Errorf("public spec lacks %s", p)
		}
	}
	if _, ok := public.Paths["/payments/process"]; ok {
		t.Error("the public spec documents the internal /payments/process")
	}
	if op := public.Paths["/accounts"]["post"]; op.Internal {
		t.Errorf("/accounts is marked internal")
	}
	if resp := servicetest.Do(t, a.Handler, "GET", "/openapi.yaml", ""); resp.Status != 200 || !strings.Contains(string(resp.Body), "openapi: 3.1") {
		t.Errorf("openapi.yaml: %d %.100s", resp.Status, resp.Body)
	}
	if resp := servicetest.Do(t, a.Handler, "GET", "/docs", ""); resp.Status != 200 || !strings.Contains(string(resp.Body), "swagger-ui") {
		t.Errorf("docs: %d", resp.Status)
	}

	// The internal listener documents its operation, to holders of the credential only.
	servicetest.Do(t, a.InternalHandler(servicetest.InternalToken), "GET", "/openapi.json", "").Problem(t, 401)
	var internal spec
	servicetest.Do(t, servicetest.Bearer(servicetest.InternalToken, a.InternalHandler(servicetest.InternalToken)), "GET", "/openapi.json", "").JSON(t, &internal)
	if op, ok := internal.Paths["/payments/process"]["post"]; !ok || !op.Internal {
		t.Errorf("internal spec: /payments/process missing or not marked internal: %+v", internal.Paths)
	}
	if _, ok := internal.Paths["/accounts"]; ok {
		t.Error("the internal spec documents the public /accounts")
	}
}

func TestHealth(t *testing.T) {
	infra, mr := servicetest.Infra(t, dbtest.SQLite, store.Migrations)
	a := app.New(infra)
	for _, path := range []string{"/livez", "/readyz", "/health"} {
		if resp := servicetest.Do(t, a.Handler, "GET", path, ""); resp.Status != 200 {
			t.Errorf("%s: %d %s", path, resp.Status, resp.Body)
		}
	}
	// Redis goes away: the API still serves, so still ready; /health says so.
	mr.Close()
	if resp := servicetest.Do(t, a.Handler, "GET", "/readyz", ""); resp.Status != 200 {
		t.Errorf("readyz with Redis down: %d %s", resp.Status, resp.Body)
	}
	var h struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	servicetest.Do(t, a.Handler, "GET", "/health", "").JSON(t, &h)
	if h.Status != "degraded" || h.Checks["redis"] != "unavailable" || h.Checks["database"] != "ok" {
		t.Errorf("health with Redis down: %+v", h)
	}
	if resp := servicetest.Do(t, a.Handler, "GET", "/livez", ""); resp.Status != 200 {
		t.Errorf("livez with Redis down: %d", resp.Status)
	}
	a.Health.Drain()
	servicetest.Do(t, a.Handler, "GET", "/readyz", "").Problem(t, 503)
}
