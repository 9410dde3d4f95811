package apispec_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/gateway/internal/apispec"
	"shop/services/gateway/internal/proxy"
	"shop/services/gateway/internal/upstreamtest"
	"shop/services/platform/web"
)

// spec builds a Huma API with the platform's web package, as the services
// do, lets register add operations, and returns its OpenAPI as decoded JSON.
func spec(t *testing.T, title string, register func(api huma.API)) map[string]any {
	t.Helper()
	api := web.NewAPI(http.NewServeMux(), title, "")
	register(api)
	return decode(t, api.OpenAPI())
}

func decode(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// gatewaySpec is the gateway's own spec: its health operation.
func gatewaySpec(t *testing.T) map[string]any {
	return spec(t, "Shop API", func(api huma.API) { web.NewHealth().Register(api) })
}

func fetchSpec(t *testing.T, s *upstreamtest.Server) map[string]any {
	t.Helper()
	return decode(t, s.API.OpenAPI())
}

func keys(v any) []string {
	m, _ := v.(map[string]any)
	return slices.Sorted(maps.Keys(m))
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func all(string, string, string) bool { return true }

// Types for the clash tests: the schema name is the Go type's name.
type (
	ordersAccount struct {
		ID string `json:"id"`
	}
	paymentsAccount struct {
		UserID  int64  `json:"user_id"`
		Balance string `json:"balance"`
	}
	ordersWallet struct {
		Owner ordersAccount `json:"owner"`
	}
	paymentsWallet struct {
		Owner paymentsAccount `json:"owner"`
	}
)

// named registers op answering with a body of type T under the schema name
// name, so that two services can have different schemas by one name.
func named[T any](api huma.API, name, method, path string) {
	registry := api.OpenAPI().Components.Schemas
	schema := registry.Schema(reflect.TypeFor[T](), false, name)
	registry.Map()[name] = schema
	api.OpenAPI().AddOperation(&huma.Operation{
		OperationID: name + "-" + method,
		Method:      method,
		Path:        path,
		Responses: map[string]*huma.Response{"200": {
			Description: "OK",
			Content:     map[string]*huma.MediaType{"application/json": {Schema: &huma.Schema{Ref: "#/components/schemas/" + name}}},
		}},
	})
}

func TestMergeServices(t *testing.T) {
	orders := fetchSpec(t, upstreamtest.NewOrders(t))
	payments := fetchSpec(t, upstreamtest.NewPayments(t))
	own := gatewaySpec(t)
	before := []any{copyJSON(t, own), copyJSON(t, orders), copyJSON(t, payments)}

	merged, renames := apispec.Merge(own, []apispec.Upstream{{Name: "orders", Doc: orders}, {Name: "payments", Doc: payments}}, proxy.Routed)

	if len(renames) != 0 {
		t.Errorf("renames = %v, want none (ErrorModel and Status are the same everywhere)", renames)
	}
	wantPaths := []string{"/accounts", "/accounts/top-up", "/accounts/{user_id}/balance", "/health", "/orders", "/orders/{order_id}"}
	if got := keys(merged["paths"]); !slices.Equal(got, wantPaths) {
		t.Errorf("paths = %v, want %v", got, wantPaths)
	}
	if got := keys(dig(merged, "paths", "/orders")); !slices.Equal(got, []string{"get", "post"}) {
		t.Errorf("/orders operations = %v, want get and post", got)
	}
	// The gateway's own /health stays: the services' are not routed.
	if got := dig(merged, "paths", "/health", "get", "operationId"); got != "get-health" {
		t.Errorf("/health operationId = %v, want the gateway's health", got)
	}
	schemas := keys(dig(merged, "components", "schemas"))
	for _, want := range []string{"Account", "ErrorModel", "NewOrder", "Order", "Status", "TopUp"} {
		if !slices.Contains(schemas, want) {
			t.Errorf("schema %s missing from %v", want, schemas)
		}
	}
	for _, internal := range []string{"PaymentStatus", "PaymentRequest"} {
		if slices.Contains(schemas, internal) {
			t.Errorf("schema %s of an internal operation leaked into %v", internal, schemas)
		}
	}
	if got, want := merged["servers"], []any{map[string]any{"url": "/", "description": "this gateway"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("servers = %v, want %v", got, want)
	}
	if got := dig(merged, "info", "title"); got != "Shop API" {
		t.Errorf("title = %v, want the gateway's", got)
	}
	ids := map[any]bool{}
	for path, item := range merged["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			if tags, _ := dig(op, "tags").([]any); slices.Contains(tags, any(web.InternalTag)) || dig(op, "x-internal") == true {
				t.Errorf("internal operation %s %s kept", method, path)
			}
			id := dig(op, "operationId")
			if ids[id] {
				t.Errorf("operationId %v twice", id)
			}
			ids[id] = true
		}
	}
	after := []any{own, orders, payments}
	if !reflect.DeepEqual(before, after) {
		t.Error("Merge modified its arguments")
	}
}

func copyJSON(t *testing.T, v map[string]any) map[string]any {
	return decode(t, v)
}

func TestMergeCases(t *testing.T) {
	tests := []struct {
		name     string
		upstream map[string]func(api huma.API)       // by service
		edit     map[string]func(doc map[string]any) // by service, after building
		routed   apispec.Routed
		check    func(t *testing.T, merged map[string]any, renames []apispec.Rename)
	}{
		{
			name: "a path keeps its public operations only",
			upstream: map[string]func(api huma.API){"orders": func(api huma.API) {
				named[ordersAccount](api, "Account", http.MethodGet, "/things/{id}")
				api.OpenAPI().AddOperation(&huma.Operation{OperationID: "delete-thing", Method: http.MethodDelete,
					Path: "/things/{id}", Extensions: map[string]any{"x-internal": true}})
				api.OpenAPI().AddOperation(&huma.Operation{OperationID: "purge", Method: http.MethodPost,
					Path: "/things/purge", Tags: []string{web.InternalTag}})
			}},
			routed: all,
			check: func(t *testing.T, merged map[string]any, _ []apispec.Rename) {
				if got := keys(dig(merged, "paths", "/things/{id}")); !slices.Equal(got, []string{"get"}) {
					t.Errorf("/things/{id} = %v, want get only (delete is x-internal)", got)
				}
				if dig(merged, "paths", "/things/purge") != nil {
					t.Error("/things/purge kept with no operation left")
				}
			},
		},
		{
			name: "operations the gateway does not route are left out",
			upstream: map[string]func(api huma.API){"orders": func(api huma.API) {
				named[ordersAccount](api, "Account", http.MethodGet, "/orders/{order_id}")
				named[ordersWallet](api, "Wallet", http.MethodGet, "/orders/export")
			}},
			routed: proxy.Routed,
			check: func(t *testing.T, merged map[string]any, _ []apispec.Rename) {
				if got := keys(merged["paths"]); !slices.Equal(got, []string{"/health", "/orders/{order_id}"}) {
					t.Errorf("paths = %v", got)
				}
				if dig(merged, "components", "schemas", "Wallet") != nil {
					t.Error("schema Wallet of an unrouted operation kept")
				}
			},
		},
		{
			name: "a clashing schema is renamed and its references follow",
			upstream: map[string]func(api huma.API){
				"orders":   func(api huma.API) { named[ordersAccount](api, "Account", http.MethodGet, "/a") },
				"payments": func(api huma.API) { named[paymentsAccount](api, "Account", http.MethodGet, "/b") },
			},
			routed: all,
			check: func(t *testing.T, merged map[string]any, renames []apispec.Rename) {
				want := []apispec.Rename{{Service: "payments", Section: "schemas", From: "Account", To: "PaymentsAccount"}}
				if !reflect.DeepEqual(renames, want) {
					t.Errorf("renames = %v, want %v", renames, want)
				}
				if got := keys(dig(merged, "components", "schemas", "Account", "properties")); !slices.Equal(got, []string{"id"}) {
					t.Errorf("Account = %v, want the orders one", got)
				}
				if got := keys(dig(merged, "components", "schemas", "PaymentsAccount", "properties")); !slices.Equal(got, []string{"balance", "user_id"}) {
					t.Errorf("PaymentsAccount = %v, want the payments one", got)
				}
				ref := dig(merged, "paths", "/b", "get", "responses", "200", "content", "application/json", "schema", "$ref")
				if ref != "#/components/schemas/PaymentsAccount" {
					t.Errorf("payments' operation refers to %v", ref)
				}
				ref = dig(merged, "paths", "/a", "get", "responses", "200", "content", "application/json", "schema", "$ref")
				if ref != "#/components/schemas/Account" {
					t.Errorf("orders' operation refers to %v", ref)
				}
			},
		},
		{
			name: "a schema equal in text but referring to a renamed one is renamed too",
			upstream: map[string]func(api huma.API){
				"orders":   func(api huma.API) { named[ordersWallet](api, "Purse", http.MethodGet, "/a") },
				"payments": func(api huma.API) { named[paymentsWallet](api, "Purse", http.MethodGet, "/b") },
			},
			// Both Purses then say {owner: $ref User}, but the Users differ,
			// so payments' Purse must not share orders'. Purse sorts before
			// User, so the clash shows only after User is renamed.
			edit: map[string]func(doc map[string]any){
				"orders":   func(doc map[string]any) { renameSchema(doc, "OrdersAccount", "User") },
				"payments": func(doc map[string]any) { renameSchema(doc, "PaymentsAccount", "User") },
			},
			routed: all,
			check: func(t *testing.T, merged map[string]any, renames []apispec.Rename) {
				want := []apispec.Rename{
					{Service: "payments", Section: "schemas", From: "Purse", To: "PaymentsPurse"},
					{Service: "payments", Section: "schemas", From: "User", To: "PaymentsUser"},
				}
				if !reflect.DeepEqual(renames, want) {
					t.Errorf("renames = %v, want %v", renames, want)
				}
				owner := dig(merged, "components", "schemas", "PaymentsPurse", "properties", "owner", "$ref")
				if owner != "#/components/schemas/PaymentsUser" {
					t.Errorf("PaymentsPurse.owner = %v", owner)
				}
				owner = dig(merged, "components", "schemas", "Purse", "properties", "owner", "$ref")
				if owner != "#/components/schemas/User" {
					t.Errorf("Purse.owner = %v", owner)
				}
				ref := dig(merged, "paths", "/b", "get", "responses", "200", "content", "application/json", "schema", "$ref")
				if ref != "#/components/schemas/PaymentsPurse" {
					t.Errorf("payments' operation refers to %v", ref)
				}
			},
		},
		{
			name: "equal schemas are shared",
			upstream: map[string]func(api huma.API){
				"orders":   func(api huma.API) { named[ordersAccount](api, "Account", http.MethodGet, "/a") },
				"payments": func(api huma.API) { named[ordersAccount](api, "Account", http.MethodGet, "/b") },
			},
			routed: all,
			check: func(t *testing.T, merged map[string]any, renames []apispec.Rename) {
				if len(renames) != 0 {
					t.Errorf("renames = %v, want none", renames)
				}
				if got := keys(dig(merged, "components", "schemas")); slices.Contains(got, "PaymentsAccount") {
					t.Errorf("schemas = %v", got)
				}
			},
		},
		{
			name: "servers that bypass the gateway are dropped",
			upstream: map[string]func(api huma.API){"orders": func(api huma.API) {
				api.OpenAPI().Servers = []*huma.Server{{URL: "http://orders:8002"}}
				api.OpenAPI().AddOperation(&huma.Operation{OperationID: "a", Method: http.MethodGet, Path: "/a",
					Servers: []*huma.Server{{URL: "http://orders:8002"}}})
			}},
			routed: all,
			check: func(t *testing.T, merged map[string]any, _ []apispec.Rename) {
				if dig(merged, "paths", "/a", "get", "servers") != nil {
					t.Error("operation servers kept")
				}
				if servers := merged["servers"].([]any); len(servers) != 1 || dig(servers[0], "url") != "/" {
					t.Errorf("servers = %v, want only /", servers)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ups []apispec.Upstream
			for _, name := range slices.Sorted(maps.Keys(tt.upstream)) {
				doc := spec(t, name, tt.upstream[name])
				if edit := tt.edit[name]; edit != nil {
					edit(doc)
				}
				ups = append(ups, apispec.Upstream{Name: name, Doc: doc})
			}
			merged, renames := apispec.Merge(gatewaySpec(t), ups, tt.routed)
			tt.check(t, merged, renames)
		})
	}
}

// renameSchema renames a schema of doc and every reference to it.
func renameSchema(doc map[string]any, from, to string) {
	schemas := dig(doc, "components", "schemas").(map[string]any)
	schemas[to] = schemas[from]
	delete(schemas, from)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if e == "#/components/schemas/"+from {
					v[k] = "#/components/schemas/" + to
				}
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
}

// TestMergeSecurity checks that every routed operation requires the bearer
// token and documents the gateway's 401, 403 and 429 with their headers,
// while what a service says of its own operation (Idempotency-Key, its
// Idempotent-Replayed header, its own 403 and 409) passes through.
func TestMergeSecurity(t *testing.T) {
	type createInput struct {
		IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"makes a retry safe"`
		Body           struct {
			UserID int64 `json:"user_id,omitempty" minimum:"1"`
		}
	}
	type createOutput struct {
		Replayed bool `header:"Idempotent-Replayed" doc:"true when this is the first answer again"`
		Body     struct {
			UserID int64 `json:"user_id"`
		}
	}
	payments := spec(t, "Payments API", func(api huma.API) {
		huma.Register(api, huma.Operation{OperationID: "create-account", Method: http.MethodPost, Path: "/accounts", DefaultStatus: http.StatusCreated,
			Errors: []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusConflict}},
			func(context.Context, *createInput) (*createOutput, error) { return nil, nil })
	})
	merged, _ := apispec.Merge(gatewaySpec(t), []apispec.Upstream{{Name: "payments", Doc: payments}}, proxy.Routed)

	scheme := dig(merged, "components", "securitySchemes", apispec.SecurityScheme)
	if dig(scheme, "type") != "http" || dig(scheme, "scheme") != "bearer" || dig(scheme, "bearerFormat") != "JWT" {
		t.Errorf("security scheme = %v", scheme)
	}
	op := dig(merged, "paths", "/accounts", "post")
	if got, want := dig(op, "security"), []any{map[string]any{apispec.SecurityScheme: []any{}}}; !reflect.DeepEqual(got, want) {
		t.Errorf("security = %v, want %v", got, want)
	}
	if dig(merged, "paths", "/health", "get", "security") != nil {
		t.Error("/health requires a token")
	}
	params, _ := dig(op, "parameters").([]any)
	if len(params) != 1 || dig(params[0], "name") != "Idempotency-Key" || dig(params[0], "in") != "header" {
		t.Errorf("parameters = %v, want the service's Idempotency-Key", params)
	}
	if dig(op, "responses", "201", "headers", "Idempotent-Replayed") == nil {
		t.Error("the service's Idempotent-Replayed header is gone")
	}
	own := dig(payments, "paths", "/accounts", "post", "responses")
	for _, code := range []string{"403", "409"} {
		if got, want := dig(op, "responses", code, "description"), dig(own, code, "description"); got != want {
			t.Errorf("%s described as %v, want the service's %v", code, got, want)
		}
	}
	// The service's own 401 gains the gateway's challenge header.
	if dig(op, "responses", "401", "headers", "WWW-Authenticate") == nil {
		t.Error("401 without WWW-Authenticate")
	}
	for _, h := range []string{"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
		if dig(op, "responses", "429", "headers", h, "schema", "type") != "integer" {
			t.Errorf("429 without %s", h)
		}
	}
	if dig(payments, "paths", "/accounts", "post", "responses", "401", "headers") != nil {
		t.Error("Merge modified the service's spec")
	}
}
