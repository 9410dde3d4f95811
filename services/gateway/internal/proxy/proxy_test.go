package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"

	"shop/services/gateway/internal/proxy"
)

func TestInternalOperationsAreNeverRouted(t *testing.T) {
	for _, rt := range proxy.Internal {
		if proxy.Routed(rt.Service, rt.Method, rt.Path) {
			t.Errorf("%s %s is internal but routed", rt.Method, rt.Path)
		}
	}
	for _, rt := range proxy.Routes {
		if !proxy.Routed(rt.Service, rt.Method, rt.Path) {
			t.Errorf("%s %s in Routes but not Routed", rt.Method, rt.Path)
		}
		if proxy.Routed("elsewhere", rt.Method, rt.Path) {
			t.Errorf("%s %s routed to an unknown service", rt.Method, rt.Path)
		}
	}
}

// failing is a transport that fails every request with err.
type failing struct{ err error }

func (f failing) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return nil, f.err
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestTransportErrors(t *testing.T) {
	dial := func(err error) error {
		return &url.Error{Op: "Post", URL: "http://orders:8002/orders", Err: &net.OpError{Op: "dial", Net: "tcp", Err: err}}
	}
	tests := []struct {
		name       string
		err        error
		wantStatus int
	}{
		{"refused", dial(&os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}), http.StatusBadGateway},
		// A service that cannot be reached is down, not slow.
		{"dial timeout", dial(timeoutError{}), http.StatusBadGateway},
		{"unknown host", dial(&net.DNSError{Err: "no such host", Name: "orders", IsNotFound: true}), http.StatusBadGateway},
		{"no answer in time", &url.Error{Op: "Post", URL: "http://orders:8002/orders", Err: timeoutError{}}, http.StatusGatewayTimeout},
		{"deadline", fmt.Errorf("round trip: %w", context.DeadlineExceeded), http.StatusGatewayTimeout},
		{"connection reset", &url.Error{Op: "Post", URL: "http://orders:8002/orders", Err: io.ErrUnexpectedEOF}, http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			target, _ := url.Parse("http://orders:8002")
			err := proxy.Register(mux, proxy.Config{
				Upstreams:    map[string]*url.URL{proxy.Orders: target, proxy.Payments: target},
				Transport:    failing{tt.err},
				MaxBodyBytes: 1 << 10,
			})
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/orders", strings.NewReader(`{}`)))
			if w.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", w.Code, tt.wantStatus)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("content type %q", ct)
			}
			for _, leak := range []string{"orders:8002", "timeout", "refused", "host", "EOF"} {
				if strings.Contains(w.Body.String(), leak) {
					t.Errorf("body carries %q: %s", leak, w.Body)
				}
			}
		})
	}
}

func TestRegisterNeedsEveryUpstream(t *testing.T) {
	target, _ := url.Parse("http://orders:8002")
	err := proxy.Register(http.NewServeMux(), proxy.Config{Upstreams: map[string]*url.URL{proxy.Orders: target}})
	if err == nil || !strings.Contains(err.Error(), proxy.Payments) {
		t.Errorf("Register without payments = %v, want an error naming it", err)
	}
}

func TestHideInternal(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := proxy.HideInternal(next)
	tests := []struct {
		method, path string
		want         int
	}{
		{"POST", "/orders/payment-status", http.StatusNotFound},
		{"POST", "/orders/payment%2Dstatus", http.StatusNotFound},
		{"POST", "/payments/process", http.StatusNotFound},
		{"GET", "/orders/payment-status", http.StatusTeapot},
		{"POST", "/orders", http.StatusTeapot},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
		if w.Code != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, w.Code, tt.want)
		}
	}
}
