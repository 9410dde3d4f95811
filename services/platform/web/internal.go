package web

import (
	"crypto/subtle"
	"net/http"
	"strings"
)

// MinInternalTokenLen is the shortest INTERNAL_TOKEN a service accepts, in
// bytes: short enough to type, long enough not to guess.
const MinInternalTokenLen = 16

// RequireToken lets through only requests that carry token as
// "Authorization: Bearer <token>"; any other request is answered 401
// problem+json with WWW-Authenticate: Bearer and never reaches next. It
// guards the internal listener, where one service calls another. The
// comparison takes the same time whatever the bytes that differ, so a
// caller cannot learn the token a byte at a time.
func RequireToken(token string, next http.Handler) http.Handler {
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearer(r.Header.Get("Authorization"))
		if !ok || len(want) == 0 || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			challenge := `Bearer realm="internal"`
			detail := "this internal endpoint needs the service credential (Authorization: Bearer <INTERNAL_TOKEN>)"
			if ok {
				challenge += `, error="invalid_token"`
				detail = "the service credential is not valid"
			}
			w.Header().Set("WWW-Authenticate", challenge)
			WriteProblem(w, r, http.StatusUnauthorized, detail)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer returns the credential of an "Authorization: Bearer <credential>"
// value; the scheme is case-insensitive (RFC 9110, section 11.1).
func bearer(header string) (string, bool) {
	scheme, cred, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, cred != ""
}
