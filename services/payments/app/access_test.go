package app_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"shop/services/payments/app"
	"shop/services/payments/internal/store"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/service/servicetest"
	"shop/services/platform/web"
)

// as is the header the gateway sets for an authenticated user.
func as(user int64) []string { return []string{web.UserHeader, fmt.Sprint(user)} }

func TestOwnership(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			infra, _ := servicetest.Infra(t, dialect, store.Migrations)
			h := app.New(infra).Handler
			servicetest.Do(t, h, "POST", "/accounts", `{"user_id":6}`)
			anonymous := []string(nil)
			rows := []struct {
				name, method, path, body string
				header                   []string
				status                   int
				want                     string // in the body
			}{
				{"open for self by default", "POST", "/accounts", `{}`, as(5), 201, `{"user_id":5,"balance":"0.00"}`},
				{"open anonymous without user", "POST", "/accounts", `{}`, anonymous, 422, "user_id is required"},
				{"open for another user", "POST", "/accounts", `{"user_id":7}`, as(5), 403, "belongs to another user"},
				{"invalid user before another user", "POST", "/accounts", `{"user_id":-7}`, as(5), 422, "expected number >= 1"},
				{"open naming self", "POST", "/accounts", `{"user_id":5}`, as(5), 409, "already exists"},
				{"top up self by default", "POST", "/accounts/top-up", `{"amount":"10.00"}`, as(5), 200, `{"user_id":5,"balance":"10.00"}`},
				{"top up naming self", "POST", "/accounts/top-up", `{"user_id":5,"amount":"1.00"}`, as(5), 200, `"balance":"11.00"`},
				{"top up anonymous without user", "POST", "/accounts/top-up", `{"amount":"1.00"}`, anonymous, 422, "user_id is required"},
				{"top up another user", "POST", "/accounts/top-up", `{"user_id":6,"amount":"1.00"}`, as(5), 403, "belongs to another user"},
				{"invalid amount before another user", "POST", "/accounts/top-up", `{"user_id":6,"amount":"1.001"}`, as(5), 422, "at most two fraction digits"},
				{"balance own", "GET", "/accounts/5/balance", "", as(5), 200, `"balance":"11.00"`},
				{"balance another user's", "GET", "/accounts/6/balance", "", as(5), 403, "belongs to another user"},
				{"balance another user's without account", "GET", "/accounts/8/balance", "", as(5), 403, "belongs to another user"},
				{"invalid id before another user", "GET", "/accounts/0/balance", "", as(5), 422, "expected number >= 1"},
				{"balance anonymous", "GET", "/accounts/6/balance", "", anonymous, 200, `"balance":"0.00"`},
			}
			for _, r := range rows {
				resp := servicetest.DoWith(t, h, r.method, r.path, r.body, r.header...)
				if r.status >= 400 {
					resp.Problem(t, r.status)
				}
				if resp.Status != r.status || !strings.Contains(string(resp.Body), r.want) {
					t.Errorf("%s: %d %s; want %d with %q", r.name, resp.Status, resp.Body, r.status, r.want)
				}
			}
			// The refused requests changed nothing.
			var a accountBody
			servicetest.Do(t, h, "GET", "/accounts/6/balance", "").JSON(t, &a)
			if a.Balance != "0.00" {
				t.Errorf("user 6's balance %s, want 0.00", a.Balance)
			}
			if n, err := infra.DB.NewSelect().Table("accounts").Count(context.Background()); err != nil || n != 2 {
				t.Errorf("%d accounts (%v), want 2", n, err)
			}
		})
	}
}

func TestIdempotentTopUp(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			infra, _ := servicetest.Infra(t, dialect, store.Migrations)
			h := app.New(infra).Handler
			post := func(user int64, path, key, body string) servicetest.Response {
				return servicetest.DoWith(t, h, "POST", path, body, append(as(user), "Idempotency-Key", key)...)
			}
			ledger := func() int {
				n, err := infra.DB.NewSelect().Table("ledger").Count(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return int(n)
			}

			// Opening an account: a retry is the first answer, not 409.
			opened := post(5, "/accounts", "open", `{}`)
			again := post(5, "/accounts", "open", `{"user_id":5}`)
			if opened.Status != 201 || again.Status != 201 || again.Header.Get("Idempotent-Replayed") != "true" || string(again.Body) != string(opened.Body) {
				t.Fatalf("open, retry: %d %s, %d %v %s", opened.Status, opened.Body, again.Status, again.Header, again.Body)
			}
			post(5, "/accounts", "open-2", `{}`).Problem(t, 409) // a new key: the account exists

			first := post(5, "/accounts/top-up", "t1", `{"amount":"10.00"}`)
			if first.Status != 200 || first.Header.Get("Idempotent-Replayed") != "" || strings.TrimSpace(string(first.Body)) != `{"user_id":5,"balance":"10.00"}` {
				t.Fatalf("top-up: %d %v %s", first.Status, first.Header, first.Body)
			}
			post(5, "/accounts/top-up", "t2", `{"amount":"1.00"}`)
			// The retry answers the balance the first left, not the current one.
			retry := post(5, "/accounts/top-up", `"t1"`, `{"user_id":5,"amount":"10"}`)
			if retry.Status != 200 || retry.Header.Get("Idempotent-Replayed") != "true" || string(retry.Body) != string(first.Body) {
				t.Fatalf("retry: %d %v %s", retry.Status, retry.Header, retry.Body)
			}
			if p := post(5, "/accounts/top-up", "t1", `{"amount":"10.01"}`).Problem(t, 422); !strings.Contains(p.Detail, "different request") {
				t.Errorf("mismatch: %+v", p)
			}
			// The same key for another operation, or from another user, is
			// another key.
			post(6, "/accounts", "t1", `{}`)
			if other := post(6, "/accounts/top-up", "t1", `{"amount":"10.00"}`); other.Status != 200 || other.Header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("another user's key: %d %v %s", other.Status, other.Header, other.Body)
			}
			// A refused top-up records nothing: no account yet, then one.
			post(7, "/accounts/top-up", "t7", `{"amount":"1.00"}`).Problem(t, 404)
			post(7, "/accounts", "o7", `{}`)
			if late := post(7, "/accounts/top-up", "t7", `{"amount":"1.00"}`); late.Status != 200 || late.Header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("a key of a refused request: %d %v %s", late.Status, late.Header, late.Body)
			}
			var a accountBody
			servicetest.Do(t, h, "GET", "/accounts/5/balance", "").JSON(t, &a)
			if a.Balance != "11.00" || ledger() != 4 {
				t.Fatalf("balance %s, %d ledger entries; want 11.00 and 4 (one top-up of 10.00 for user 5)", a.Balance, ledger())
			}
			// Past its time to live the key is new again.
			if _, err := infra.DB.NewUpdate().Table("idempotency_keys").Set("created_at = ?", time.Now().UTC().Add(-25*time.Hour)).
				Where("idempotency_key = 't1' AND user_id = 5").Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if fresh := post(5, "/accounts/top-up", "t1", `{"amount":"10.00"}`); fresh.Status != 200 || fresh.Header.Get("Idempotent-Replayed") != "" || !strings.Contains(string(fresh.Body), `"21.00"`) {
				t.Fatalf("an expired key: %d %v %s", fresh.Status, fresh.Header, fresh.Body)
			}
		})
	}
}

// Twenty top-ups with one key at once, on two replicas sharing a
// database: one top-up, and every answer is its answer or 409.
func TestIdempotentTopUpConcurrent(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			infra, _ := servicetest.Infra(t, dialect, store.Migrations)
			replicas := []http.Handler{app.New(infra).Handler, app.New(infra).Handler}
			servicetest.DoWith(t, replicas[0], "POST", "/accounts", `{}`, as(5)...)
			answers := servicetest.Concurrently(t, 20, replicas, "POST", "/accounts/top-up", `{"amount":"10.00"}`, append(as(5), "Idempotency-Key", "same")...)
			var firsts int
			for _, a := range answers {
				switch a.Status {
				case http.StatusOK:
					if strings.TrimSpace(string(a.Body)) != `{"user_id":5,"balance":"10.00"}` {
						t.Fatalf("answer %s", a.Body)
					}
					if a.Header.Get("Idempotent-Replayed") == "" {
						firsts++
					}
				case http.StatusConflict:
					a.Problem(t, http.StatusConflict)
				default:
					t.Fatalf("answer %d %s", a.Status, a.Body)
				}
			}
			var a accountBody
			servicetest.Do(t, replicas[1], "GET", "/accounts/5/balance", "").JSON(t, &a)
			if firsts != 1 || a.Balance != "10.00" {
				t.Fatalf("%d first answers, balance %s; want one top-up of 10.00", firsts, a.Balance)
			}
		})
	}
}

// A top-up while the first with its key is in flight is 409.
func TestIdempotentTopUpInFlight(t *testing.T) {
	infra, _ := servicetest.Infra(t, dbtest.SQLite, store.Migrations)
	h := app.New(infra).Handler
	servicetest.DoWith(t, h, "POST", "/accounts", `{}`, as(5)...)
	// SQLite has one connection: holding it keeps a request from finishing.
	servicetest.InFlight(t, infra.DB, h, "POST", "/accounts/top-up", `{"amount":"1.00"}`, http.StatusOK, append(as(5), "Idempotency-Key", "k")...)
}

func TestOpenAPIDocumentsAccessAndKeys(t *testing.T) {
	h := newApp(t, dbtest.SQLite)
	var spec struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name string `json:"name"`
			} `json:"parameters"`
			Responses map[string]struct {
				Headers map[string]any `json:"headers"`
			} `json:"responses"`
		} `json:"paths"`
	}
	servicetest.Do(t, h, "GET", "/openapi.json", "").JSON(t, &spec)
	for path, success := range map[string]string{"/accounts": "201", "/accounts/top-up": "200"} {
		op := spec.Paths[path]["post"]
		if len(op.Parameters) != 1 || op.Parameters[0].Name != "Idempotency-Key" {
			t.Errorf("POST %s parameters %+v, want Idempotency-Key", path, op.Parameters)
		}
		if _, ok := op.Responses[success].Headers["Idempotent-Replayed"]; !ok {
			t.Errorf("POST %s does not document Idempotent-Replayed", path)
		}
		for _, status := range []string{"403", "409", "422"} {
			if _, ok := op.Responses[status]; !ok {
				t.Errorf("POST %s does not document %s", path, status)
			}
		}
	}
	if _, ok := spec.Paths["/accounts/{user_id}/balance"]["get"].Responses["403"]; !ok {
		t.Errorf("GET /accounts/{user_id}/balance does not document 403")
	}
}
