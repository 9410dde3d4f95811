package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"shop/services/orders/app"
	"shop/services/orders/internal/store"
	"shop/services/platform/database/dbtest"
	"shop/services/platform/service"
	"shop/services/platform/service/servicetest"
	"shop/services/platform/web"
)

// as is the header the gateway sets for an authenticated user.
func as(user int64) []string { return []string{web.UserHeader, fmt.Sprint(user)} }

// countOrders counts the orders, and the payment requests, in db.
func countOrders(t *testing.T, db bun.IDB) (orders, requests int) {
	t.Helper()
	ctx := context.Background()
	o, err := db.NewSelect().Table("orders").Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r, err := db.NewSelect().Table("outbox").Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return int(o), int(r)
}

func TestOwnership(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			infra, _ := servicetest.Infra(t, dialect, store.Migrations)
			h := app.New(infra, app.Config{}).Handler
			mine := create(t, h, `{"user_id":5,"amount":"1.00"}`)
			theirs := create(t, h, `{"user_id":6,"amount":"2.00"}`)
			anonymous := []string(nil)

			rows := []struct {
				name, method, path, body string
				header                   []string
				status                   int
				want                     string // in the body
			}{
				{"create for self by default", "POST", "/orders", `{"amount":"3.00"}`, as(5), 201, `"user_id":5`},
				{"create naming self", "POST", "/orders", `{"user_id":5,"amount":"4.00"}`, as(5), 201, `"user_id":5`},
				{"create anonymous without user", "POST", "/orders", `{"amount":"3.00"}`, anonymous, 422, "user_id is required"},
				{"create for another user", "POST", "/orders", `{"user_id":6,"amount":"3.00"}`, as(5), 403, "belongs to another user"},
				{"invalid input before another user", "POST", "/orders", `{"user_id":6,"amount":"0"}`, as(5), 422, "must be greater than 0"},
				{"invalid user before another user", "POST", "/orders", `{"user_id":0,"amount":"1.00"}`, as(5), 422, "user_id"},
				{"list own by default", "GET", "/orders", "", as(5), 200, mine.ID},
				{"list naming self", "GET", "/orders?user_id=5", "", as(5), 200, mine.ID},
				{"list anonymous without user", "GET", "/orders", "", anonymous, 422, "user_id is required"},
				{"list another user's", "GET", "/orders?user_id=6", "", as(5), 403, "belongs to another user"},
				{"invalid list before another user", "GET", "/orders?user_id=6&limit=0", "", as(5), 422, "limit"},
				{"get own", "GET", "/orders/" + mine.ID, "", as(5), 200, mine.ID},
				{"get another user's", "GET", "/orders/" + theirs.ID, "", as(5), 404, "no such order"},
				{"get anonymous", "GET", "/orders/" + theirs.ID, "", anonymous, 200, theirs.ID},
				{"invalid id", "GET", "/orders/nope", "", as(5), 422, "order_id"},
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
			// The list of one's own orders holds no one else's.
			var list []orderBody
			servicetest.DoWith(t, h, "GET", "/orders", "", as(6)...).JSON(t, &list)
			if len(list) != 1 || list[0].ID != theirs.ID {
				t.Errorf("user 6's orders: %+v", list)
			}
			// Another user's order is 404 exactly like an unknown one.
			other := servicetest.DoWith(t, h, "GET", "/orders/"+theirs.ID, "", as(5)...).Problem(t, 404)
			unknown := servicetest.DoWith(t, h, "GET", "/orders/0193a000-0000-7000-8000-000000000000", "", as(5)...).Problem(t, 404)
			if other.Title != unknown.Title || other.Detail != unknown.Detail {
				t.Errorf("another user's order %+v, an unknown one %+v", other, unknown)
			}
			if orders, _ := countOrders(t, infra.DB); orders != 4 {
				t.Errorf("%d orders, want 4: the refused requests created some", orders)
			}
		})
	}
}

func TestIdempotentCreate(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			infra, _ := servicetest.Infra(t, dialect, store.Migrations)
			h := app.New(infra, app.Config{}).Handler
			post := func(user int64, key, body string) servicetest.Response {
				return servicetest.DoWith(t, h, "POST", "/orders", body, append(as(user), "Idempotency-Key", key)...)
			}
			const body = `{"amount":"30.00","description":"two coffees"}`
			first := post(5, "key-1", body)
			if first.Status != 201 || first.Header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("first: %d %v %s", first.Status, first.Header, first.Body)
			}
			// A retry, with the key bare or quoted as the draft writes it,
			// and naming the user or not: the first answer again.
			for _, retry := range []servicetest.Response{
				post(5, "key-1", body),
				post(5, `"key-1"`, body),
				post(5, "key-1", `{"user_id":5,"amount":"30","description":"two coffees"}`),
			} {
				if retry.Status != 201 || retry.Header.Get("Idempotent-Replayed") != "true" ||
					string(retry.Body) != string(first.Body) || retry.Header.Get("Location") != first.Header.Get("Location") {
					t.Fatalf("retry: %d %v %s; want %s", retry.Status, retry.Header, retry.Body, first.Body)
				}
			}
			if orders, requests := countOrders(t, infra.DB); orders != 1 || requests != 1 {
				t.Fatalf("%d orders, %d payment requests; want 1 and 1", orders, requests)
			}
			// The same key for another request is refused and changes nothing.
			p := post(5, "key-1", `{"amount":"31.00","description":"two coffees"}`).Problem(t, 422)
			if !strings.Contains(p.Detail, "different request") {
				t.Errorf("mismatch: %+v", p)
			}
			// Another user's key of the same name is another key.
			if other := post(6, "key-1", body); other.Status != 201 || other.Header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("another user's key: %d %v", other.Status, other.Header)
			}
			// Invalid input, with a key, records nothing: the key stays free.
			post(5, "key-2", `{"amount":"0"}`).Problem(t, 422)
			post(5, "key-2", `{"user_id":6,"amount":"1.00"}`).Problem(t, 403)
			if again := post(5, "key-2", `{"amount":"1.00"}`); again.Status != 201 || again.Header.Get("Idempotent-Replayed") != "" {
				t.Fatalf("a key of refused requests: %d %v", again.Status, again.Header)
			}
			// Bad keys are invalid input.
			for _, key := range []string{"with space", strings.Repeat("k", 256), "ключ"} {
				post(5, key, body).Problem(t, 422)
			}
			if orders, requests := countOrders(t, infra.DB); orders != 3 || requests != 3 {
				t.Fatalf("%d orders, %d payment requests; want 3 and 3", orders, requests)
			}
			// Past its time to live the key is new again.
			if _, err := infra.DB.NewUpdate().Table("idempotency_keys").Set("created_at = ?", time.Now().UTC().Add(-25*time.Hour)).
				Where("idempotency_key = 'key-1'").Exec(context.Background()); err != nil {
				t.Fatal(err)
			}
			if fresh := post(5, "key-1", body); fresh.Status != 201 || fresh.Header.Get("Idempotent-Replayed") != "" || string(fresh.Body) == string(first.Body) {
				t.Fatalf("an expired key: %d %v %s", fresh.Status, fresh.Header, fresh.Body)
			}
		})
	}
}

// A request while the first with its key is in flight is 409; the first
// then completes.
func TestIdempotentCreateInFlight(t *testing.T) {
	infra, _ := servicetest.Infra(t, dbtest.SQLite, store.Migrations)
	h := app.New(infra, app.Config{}).Handler
	// SQLite has one connection: holding it keeps a request from finishing.
	servicetest.InFlight(t, infra.DB, h, "POST", "/orders", `{"amount":"1.00"}`, http.StatusCreated, append(as(5), "Idempotency-Key", "k")...)
	if orders, _ := countOrders(t, infra.DB); orders != 1 {
		t.Fatalf("%d orders, want 1", orders)
	}
}

// Twenty requests with one key at once, on two replicas of the service
// sharing a database: one order, and every answer is that order's or 409.
func TestIdempotentCreateConcurrent(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			infra, _ := servicetest.Infra(t, dialect, store.Migrations)
			replicas := []http.Handler{app.New(infra, app.Config{}).Handler, app.New(infra, app.Config{}).Handler}
			answers := servicetest.Concurrently(t, 20, replicas, "POST", "/orders", `{"amount":"1.00"}`, append(as(5), "Idempotency-Key", "same")...)
			var created []servicetest.Response
			var ids = map[string]bool{}
			for _, a := range answers {
				switch {
				case a.Status == http.StatusCreated:
					var o orderBody
					a.JSON(t, &o)
					ids[o.ID] = true
					if a.Header.Get("Idempotent-Replayed") == "" {
						created = append(created, a)
					}
				case a.Status == http.StatusConflict:
					a.Problem(t, http.StatusConflict)
				default:
					t.Fatalf("answer %d %s", a.Status, a.Body)
				}
			}
			orders, requests := countOrders(t, infra.DB)
			if len(created) != 1 || len(ids) != 1 || orders != 1 || requests != 1 {
				t.Fatalf("%d first answers, %d order ids answered, %d orders, %d payment requests; want one of each",
					len(created), len(ids), orders, requests)
			}
		})
	}
}

// Keys with orders of other requests in one group commit: a key recorded
// by another replica leaves out only its own order.
func TestIdempotentCreateInBatch(t *testing.T) {
	for _, dialect := range []string{dbtest.SQLite, dbtest.Postgres} {
		t.Run(dialect, func(t *testing.T) {
			infra, _ := servicetest.Infra(t, dialect, store.Migrations)
			a, b := app.New(infra, app.Config{}), app.New(infra, app.Config{})
			first := servicetest.DoWith(t, a.Handler, "POST", "/orders", `{"amount":"1.00"}`, append(as(5), "Idempotency-Key", "k")...)
			if first.Status != 201 {
				t.Fatalf("first: %d %s", first.Status, first.Body)
			}
			// Replica b has not seen the key: its create goes into a batch
			// with others, finds the key taken there, and answers the first
			// answer; the others of the batch are created.
			var wg sync.WaitGroup
			answers := make([]servicetest.Response, 8)
			for i := range answers {
				wg.Go(func() {
					header := append(as(int64(10+i)), "Idempotency-Key", fmt.Sprint("k", i))
					body := `{"amount":"2.00"}`
					if i == 0 {
						header, body = append(as(5), "Idempotency-Key", "k"), `{"amount":"1.00"}`
					}
					answers[i] = servicetest.DoWith(t, b.Handler, "POST", "/orders", body, header...)
				})
			}
			wg.Wait()
			for i, ans := range answers {
				if ans.Status != 201 {
					t.Fatalf("answer %d: %d %s", i, ans.Status, ans.Body)
				}
			}
			if answers[0].Header.Get("Idempotent-Replayed") != "true" || string(answers[0].Body) != string(first.Body) {
				t.Fatalf("the retry on the other replica: %v %s", answers[0].Header, answers[0].Body)
			}
			if orders, requests := countOrders(t, infra.DB); orders != 8 || requests != 8 {
				t.Fatalf("%d orders, %d payment requests; want 8 and 8", orders, requests)
			}
		})
	}
}

func TestIdempotencyKeyJanitorRuns(t *testing.T) {
	infra, _ := servicetest.Infra(t, dbtest.SQLite, store.Migrations)
	names := map[string]bool{}
	for _, w := range app.New(infra, app.Config{}).Messaging.Workers(infra, service.Config{}) {
		names[w.Name] = true
	}
	if !names["idempotency key janitor"] {
		t.Fatalf("workers %v lack the idempotency key janitor", names)
	}
}

func TestOpenAPIDocumentsAccessAndKeys(t *testing.T) {
	h := newApp(t, dbtest.SQLite)
	var spec struct {
		Paths map[string]map[string]struct {
			Parameters []struct {
				Name string `json:"name"`
				In   string `json:"in"`
			} `json:"parameters"`
			Responses map[string]struct {
				Headers map[string]any `json:"headers"`
			} `json:"responses"`
		} `json:"paths"`
	}
	servicetest.Do(t, h, "GET", "/openapi.json", "").JSON(t, &spec)
	create := spec.Paths["/orders"]["post"]
	var key bool
	for _, p := range create.Parameters {
		key = key || (p.Name == "Idempotency-Key" && p.In == "header")
	}
	if !key {
		t.Errorf("POST /orders does not document Idempotency-Key: %+v", create.Parameters)
	}
	if _, ok := create.Responses["201"].Headers["Idempotent-Replayed"]; !ok {
		t.Errorf("POST /orders does not document Idempotent-Replayed")
	}
	for _, status := range []string{"403", "409", "422"} {
		if _, ok := create.Responses[status]; !ok {
			t.Errorf("POST /orders does not document %s", status)
		}
	}
	if _, ok := spec.Paths["/orders"]["get"].Responses["403"]; !ok {
		t.Errorf("GET /orders does not document 403")
	}
	b, _ := json.Marshal(spec.Paths["/orders/{order_id}"]["get"].Responses)
	if strings.Contains(string(b), `"403"`) {
		t.Errorf("GET /orders/{order_id} documents 403; another user's order is 404")
	}
}
