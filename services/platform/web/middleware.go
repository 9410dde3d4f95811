package web

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
)

// RequestIDHeader carries a request's id from client to gateway to service
// and back in the response.
const RequestIDHeader = "X-Request-Id"

type requestIDKey struct{}

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._\-]{1,128}$`)

// WithRequestID takes the request id the client or gateway sent, or makes
// one, puts it in the request context and echoes it in the response.
func WithRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID.MatchString(id) {
			id = uuid.NewString()
			r.Header.Set(RequestIDHeader, id)
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// RequestID returns the id WithRequestID stored in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// WithProblems answers requests the mux has no route for (404, or 405 with
// its Allow header) with problem+json rather than the mux's plain text.
func WithProblems(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, pattern := mux.Handler(r); pattern == "" {
			// The mux's own 404/405 handler: learn its status and headers,
			// drop its text body.
			rec := &statusRecorder{header: w.Header()}
			h.ServeHTTP(rec, r)
			status := rec.status
			if status == 0 {
				status = http.StatusNotFound
			}
			detail := "no such resource: " + r.URL.Path
			if status == http.StatusMethodNotAllowed {
				detail = r.Method + " is not allowed on " + r.URL.Path
			}
			WriteProblem(w, r, status, detail)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// WriteProblem writes an RFC 9457 problem+json answer outside Huma.
func WriteProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	m := &huma.ErrorModel{Status: status, Title: http.StatusText(status), Detail: detail}
	if id := RequestID(r.Context()); id != "" {
		m.Instance = "urn:request:" + id
	}
	w.Header().Del("Content-Length")
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(m)
}

type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header { return s.header }
func (s *statusRecorder) Write(b []byte) (int, error) {
	return len(b), nil
}
func (s *statusRecorder) WriteHeader(status int) {
	if s.status == 0 {
		s.status = status
	}
}
