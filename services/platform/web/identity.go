package web

import (
	"context"
	"net/http"
	"strconv"
)

// UserHeader carries the authenticated user from the gateway to a service.
// The gateway checks the caller's token, removes whatever a client put in
// this header and sets it to the token's subject; a service trusts it
// because only the gateway reaches its public listener (see the chart's
// NetworkPolicy). A request without it (a direct call inside the cluster,
// a test) is anonymous: the body's user_id is taken as given.
const UserHeader = "X-User-Id"

type userKey struct{}

// WithUser puts the user of UserHeader, when it holds a positive decimal
// id, into the request's context. A malformed value is treated as absent:
// only the gateway sets the header, and it sets a valid one.
func WithUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, err := strconv.ParseInt(r.Header.Get(UserHeader), 10, 64); err == nil && id > 0 {
			r = r.WithContext(ContextWithUser(r.Context(), id))
		}
		next.ServeHTTP(w, r)
	})
}

// ContextWithUser returns ctx carrying the authenticated user id.
func ContextWithUser(ctx context.Context, id int64) context.Context {
	return context.WithValue(ctx, userKey{}, id)
}

// User returns the authenticated user of ctx, if any.
func User(ctx context.Context) (int64, bool) {
	id, ok := ctx.Value(userKey{}).(int64)
	return id, ok
}
