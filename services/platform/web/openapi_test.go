package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/platform/money"
	"shop/services/platform/web"
)

type payBody struct {
	UserID int64          `json:"user_id" minimum:"1"`
	Amount money.Positive `json:"amount"`
}

func newPayAPI() (huma.API, *http.ServeMux) {
	mux := http.NewServeMux()
	api := web.NewAPI(mux, "Test", "test API")
	huma.Register(api, huma.Operation{OperationID: "pay", Method: http.MethodPost, Path: "/pay", Tags: []string{web.HealthTag},
		Errors: []int{http.StatusConflict}},
		func(_ context.Context, in *struct{ Body payBody }) (*struct{ Body payBody }, error) {
			return &struct{ Body payBody }{in.Body}, nil
		})
	huma.Register(api, huma.Operation{OperationID: "look", Method: http.MethodGet, Path: "/look/{id}"},
		func(context.Context, *struct {
			ID string `path:"id" format:"uuid"`
		}) (*struct{}, error) {
			return nil, nil
		})
	return api, mux
}

// TestEveryAnswerDocumented checks that every operation lists each error it
// can give, each with a problem+json example of its own status.
func TestEveryAnswerDocumented(t *testing.T) {
	api, _ := newPayAPI()
	oapi := api.OpenAPI()
	tests := []struct {
		path, method string
		want         []string
	}{
		{"/pay", "post", []string{"200", "400", "409", "413", "415", "422", "500", "503"}},
		{"/look/{id}", "get", []string{"204", "422", "500", "503"}},
	}
	for _, tt := range tests {
		item := oapi.Paths[tt.path]
		op := item.Post
		if tt.method == "get" {
			op = item.Get
		}
		var got []string
		for code, resp := range op.Responses {
			got = append(got, code)
			status, _ := strconv.Atoi(code)
			if status < 400 {
				continue
			}
			mt := resp.Content["application/problem+json"]
			ex, ok := mt.Example.(*huma.ErrorModel)
			if !ok || ex.Status != status || ex.Title != http.StatusText(status) || resp.Description == "" {
				t.Errorf("%s %s %s: example %+v, description %q", tt.method, tt.path, code, mt.Example, resp.Description)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s %s answers %v, want %v", tt.method, tt.path, got, tt.want)
		}
	}
	if oapi.Info.Contact == nil || oapi.Info.License == nil || len(oapi.Servers) == 0 || oapi.Info.Version == "" {
		t.Errorf("info %+v, servers %v", oapi.Info, oapi.Servers)
	}
}

// TestAmountErrorsSayWhatIsWrong checks the 422 messages of a bad amount.
func TestAmountErrorsSayWhatIsWrong(t *testing.T) {
	_, mux := newPayAPI()
	for amount, want := range map[string]string{
		`"1.001"`:         "must have at most two fraction digits",
		`"0"`:             "must be greater than 0",
		`"-1.00"`:         "must be greater than 0",
		`"1000000000.01"`: "must be at most 1000000000.00",
		`"1e2"`:           "must be a decimal number such as 12.30",
		`12.3`:            "must be a JSON string",
	} {
		rec := serve(mux, http.MethodPost, "/pay", `{"user_id":1,"amount":`+amount+`}`, nil)
		var p huma.ErrorModel
		json.Unmarshal(rec.Body.Bytes(), &p)
		if rec.Code != http.StatusUnprocessableEntity || len(p.Errors) != 1 || !strings.HasPrefix(p.Errors[0].Message, want) || p.Errors[0].Location != "body.amount" {
			t.Errorf("amount %s: %d %s, want 422 saying %q at body.amount", amount, rec.Code, rec.Body, want)
		}
	}
	if rec := serve(mux, http.MethodPost, "/pay", `{"user_id":1,"amount":"9999999.99"}`, nil); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"9999999.99"`) {
		t.Errorf("9999999.99: %d %s", rec.Code, rec.Body)
	}
}
