package app

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"

	"shop/services/gateway/internal/access"
	"shop/services/gateway/internal/ratelimit"
	"shop/services/platform/web"
)

// guard is what stands before every public operation, in this order: the
// bearer token is read, the caller's rate limit is taken (the user's when
// the token is good, the client address's otherwise, so bad tokens are
// limited too), a missing or bad token is answered 401, and the user goes
// into the request's context, from which the proxy sets X-User-Id.
type guard struct {
	auth    *access.Authenticator // nil: AUTH=off
	limiter *ratelimit.Limiter    // nil: RATE_LIMIT=0
}

func (g guard) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var user int64
		err := access.ErrNoToken
		if g.auth != nil {
			user, err = g.auth.Authenticate(r)
		}

		if g.limiter != nil {
			key := "addr:" + clientIP(r)
			if err == nil {
				key = "user:" + strconv.FormatInt(user, 10)
			}
			d := g.limiter.Allow(r.Context(), key)
			g.limiter.SetHeaders(w.Header(), d)
			if !d.Allowed {
				web.WriteProblem(w, r, http.StatusTooManyRequests, "too many requests; retry after "+w.Header().Get("Retry-After")+"s")
				return
			}
		}

		if g.auth == nil {
			next.ServeHTTP(w, r)
			return
		}
		if err != nil {
			g.refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(web.ContextWithUser(r.Context(), user)))
	})
}

// refuse answers a request without an acceptable token.
func (g guard) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, access.ErrUnavailable) {
		w.Header().Set("Retry-After", "1")
		web.WriteProblem(w, r, http.StatusServiceUnavailable, "the token issuer has not been reached yet; try again")
		return
	}
	if errors.Is(err, access.ErrNoToken) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		web.WriteProblem(w, r, http.StatusUnauthorized, "this operation needs an Authorization: Bearer token")
		return
	}
	reason := "the token is not accepted"
	if inv, ok := errors.AsType[*access.InvalidError](err); ok {
		reason = inv.Reason
	}
	slog.DebugContext(r.Context(), "token refused", "error", err, "request_id", web.RequestID(r.Context()))
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+reason+`"`)
	web.WriteProblem(w, r, http.StatusUnauthorized, reason)
}

// clientIP is the address that connected: the gateway is the edge, so a
// client's X-Forwarded-For is not believed.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
