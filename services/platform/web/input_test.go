package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/platform/web"
)

type account struct {
	Body struct {
		UserID int64    `json:"user_id" minimum:"1"`
		Name   string   `json:"name" maxLength:"5"`
		Tags   []string `json:"tags,omitempty"`
	}
}

// TestStrictInput sends bodies a lenient decoder would let through, and
// checks that each is a 422 naming the field, that the handler never sees
// it, and that good bodies (non-ASCII text, an escaped backslash) reach the
// handler intact.
func TestStrictInput(t *testing.T) {
	mux := http.NewServeMux()
	api := web.NewAPI(mux, "Test", "test API")
	var got *account
	huma.Register(api, huma.Operation{OperationID: "create", Method: "POST", Path: "/accounts"},
		func(_ context.Context, in *account) (*struct{}, error) { got = in; return nil, nil })
	h := web.WithRequestID(web.WithProblems(mux))

	tests := []struct {
		name, body string
		status     int
		location   string // of the error, for a 422
		message    string
	}{
		{"valid", `{"user_id":1,"name":"Zoë"}`, 204, "", ""},
		{"escaped backslash before u0000", `{"user_id":1,"name":"\\u0000"}`, 422, "body.name", "length"}, // 6 characters, no NUL
		{"key differing in case", `{"user_id":1,"USER_ID":-7,"name":"a"}`, 422, "body.USER_ID", "unexpected property"},
		{"only a key in other case", `{"User_Id":5,"name":"a"}`, 422, "body", "user_id"},
		{"NUL in a value", `{"user_id":1,"name":"a\u0000b"}`, 422, "body.name", "NUL"},
		{"NUL in an array", `{"user_id":1,"name":"a","tags":["x","\u0000"]}`, 422, "body.tags[1]", "NUL"},
		{"NUL in a key", `{"user_id":1,"name":"a","x\u0000":1}`, 422, "body", "NUL"},
		{"invalid UTF-8", "{\"user_id\":1,\"name\":\"a\xff\"}", 422, "body", "UTF-8"},
		{"truncated UTF-8", "{\"user_id\":1,\"name\":\"\xc3\"}", 422, "body", "UTF-8"},
		{"not JSON", `{"user_id":`, 400, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			rec := serve(h, "POST", "/accounts", tt.body, nil)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == 204 {
				if got == nil || got.Body.UserID != 1 || got.Body.Name != "Zoë" {
					t.Errorf("handler got %+v", got)
				}
				return
			}
			if got != nil {
				t.Errorf("handler ran with %+v", got.Body)
			}
			if tt.status != 422 {
				return
			}
			var p huma.ErrorModel
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
			found := false
			for _, e := range p.Errors {
				found = found || (e.Location == tt.location && strings.Contains(e.Message, tt.message))
			}
			if !found || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("want an error at %s saying %q, got %s (%s)", tt.location, tt.message, rec.Body, rec.Header().Get("Content-Type"))
			}
		})
	}
}
