package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"shop/services/platform/web"
)

func TestRequireTokenLetsOnlyTheCredentialThrough(t *testing.T) {
	const token = "0123456789abcdef-internal"
	reached := 0
	h := web.RequireToken(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		w.WriteHeader(http.StatusNoContent)
	}))
	cases := []struct {
		name, authorization string
		status              int
		invalidToken        bool
	}{
		{"no header", "", 401, false},
		{"another scheme", "Basic " + token, 401, false},
		{"empty bearer", "Bearer ", 401, false},
		{"wrong token", "Bearer 0123456789abcdef-internaX", 401, true},
		{"prefix of the token", "Bearer " + token[:16], 401, true},
		{"token and more", "Bearer " + token + "x", 401, true},
		{"right token", "Bearer " + token, 204, false},
		{"scheme in lower case", "bearer " + token, 204, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := reached
			header := http.Header{}
			if c.authorization != "" {
				header.Set("Authorization", c.authorization)
			}
			rec := serve(h, "POST", "/payments/process", `{}`, header)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, c.status, rec.Body)
			}
			if c.status != 401 {
				if reached != before+1 {
					t.Fatal("the handler was not reached")
				}
				return
			}
			if reached != before {
				t.Fatal("a refused request reached the handler")
			}
			challenge := rec.Header().Get("WWW-Authenticate")
			if !strings.HasPrefix(challenge, "Bearer") || strings.Contains(challenge, `error="invalid_token"`) != c.invalidToken {
				t.Errorf("WWW-Authenticate %q", challenge)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			var p struct {
				Status int    `json:"status"`
				Detail string `json:"detail"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != 401 || p.Detail == "" {
				t.Errorf("problem %s (%v)", rec.Body, err)
			}
			if strings.Contains(rec.Body.String(), token) {
				t.Error("the answer repeats the token")
			}
		})
	}
}

func TestRequireTokenWithoutATokenRefusesEveryone(t *testing.T) {
	h := web.RequireToken("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Fatal("reached")
	}))
	rec := serve(h, "POST", "/x", "", http.Header{"Authorization": {"Bearer "}})
	if rec.Code != 401 {
		t.Fatalf("status %d", rec.Code)
	}
}
