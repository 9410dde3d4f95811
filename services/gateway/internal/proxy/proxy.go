package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/platform/web"
)

// Config is what Register needs.
type Config struct {
	// Upstreams are the services' base URLs by name (Orders, Payments).
	Upstreams map[string]*url.URL
	// Transport carries requests to the upstreams; see NewTransport.
	Transport http.RoundTripper
	// MaxBodyBytes bounds a request body; a larger one is answered 413.
	MaxBodyBytes int64
	// Guard, if set, wraps each route's handler: authentication and rate
	// limits, which run before the body is read.
	Guard func(http.Handler) http.Handler
}

// NewTransport returns the transport to the upstreams. An upstream that
// refuses connections fails at once and one that cannot be reached within
// the dial timeout soon after (502 either way), while one that takes longer
// than headerTimeout to answer is given up on (504). The idle pool is sized
// so that a busy gateway keeps reusing connections instead of opening (and
// leaving in TIME_WAIT) one per request.
func NewTransport(headerTimeout time.Duration) *http.Transport {
	dialer := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		// Upstreams are in-cluster: an HTTP_PROXY meant for the outside
		// world must not capture them.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          512,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second, // below the services' server idle timeout (120s), so they never close a connection we are about to reuse
		ResponseHeaderTimeout: headerTimeout,
		ExpectContinueTimeout: time.Second,
		// Pass the client's Accept-Encoding and the service's encoding
		// through untouched rather than decompressing in the gateway.
		DisableCompression: true,
	}
}

// Register routes each of Routes on mux to its service.
func Register(mux *http.ServeMux, cfg Config) error {
	handlers := map[string]http.Handler{}
	for _, rt := range Routes {
		h, ok := handlers[rt.Service]
		if !ok {
			target, ok := cfg.Upstreams[rt.Service]
			if !ok || target == nil {
				return fmt.Errorf("no upstream URL for service %q", rt.Service)
			}
			h = newUpstream(rt.Service, target, cfg.Transport, cfg.MaxBodyBytes)
			if cfg.Guard != nil {
				h = cfg.Guard(h)
			}
			handlers[rt.Service] = h
		}
		mux.Handle(rt.Pattern(), h)
	}
	return nil
}

// upstream proxies requests to one service.
type upstream struct {
	name    string
	proxy   *httputil.ReverseProxy
	maxBody int64
}

func newUpstream(name string, target *url.URL, transport http.RoundTripper, maxBody int64) *upstream {
	u := &upstream{name: name, maxBody: maxBody}
	u.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target) // path and query pass through as they came
			// The gateway is the edge: an X-Forwarded-For the client sent is
			// not trusted, so the services see the address that connected.
			pr.SetXForwarded()
			if id := web.RequestID(pr.In.Context()); id != "" {
				pr.Out.Header.Set(web.RequestIDHeader, id)
			}
			// The services believe X-User-Id, so what a client sent there
			// never passes; the user the gateway authenticated does.
			pr.Out.Header.Del(web.UserHeader)
			if user, ok := web.User(pr.In.Context()); ok {
				pr.Out.Header.Set(web.UserHeader, strconv.FormatInt(user, 10))
			}
		},
		Transport:      transport,
		ModifyResponse: u.modifyResponse,
		ErrorHandler:   u.fail,
		ErrorLog:       slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
	return u
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > u.maxBody {
		u.tooLarge(w, r)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		// Bodies are small JSON documents. Reading one whole before the
		// upstream is called answers an oversized body 413 without bothering
		// the service, and makes the request replayable: the transport can
		// retry it on a fresh connection when a pooled one turns out closed.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, u.maxBody))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				u.tooLarge(w, r)
				return
			}
			slog.InfoContext(r.Context(), "read request body", "error", err, "request_id", web.RequestID(r.Context()))
			web.WriteProblem(w, r, http.StatusBadRequest, "could not read the request body")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.ContentLength = int64(len(body))
		r.TransferEncoding = nil
	}
	u.proxy.ServeHTTP(w, r)
}

func (u *upstream) tooLarge(w http.ResponseWriter, r *http.Request) {
	web.WriteProblem(w, r, http.StatusRequestEntityTooLarge,
		"request body is larger than "+strconv.FormatInt(u.maxBody, 10)+" bytes")
}

// modifyResponse drops the service's X-Request-Id, which is the one the
// gateway sent and already echoes (copying it would repeat the header), and
// replaces a 5xx body that is not problem+json, such as a plain-text panic
// message from something between gateway and service: a 5xx must never
// carry internal detail to a client.
func (u *upstream) modifyResponse(resp *http.Response) error {
	resp.Header.Del(web.RequestIDHeader)
	if resp.StatusCode < http.StatusInternalServerError {
		return nil
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/problem+json" {
		return nil // the services' own errors keep detail out of 5xx bodies
	}
	ctx := resp.Request.Context()
	slog.WarnContext(ctx, "upstream answered 5xx without problem+json; body replaced",
		"upstream", u.name, "status", resp.StatusCode, "request_id", web.RequestID(ctx))
	m := &huma.ErrorModel{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Detail: "internal error"}
	if id := web.RequestID(ctx); id != "" {
		m.Instance = "urn:request:" + id
	}
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.TransferEncoding = nil
	resp.Header.Del("Content-Encoding")
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Set("Content-Type", "application/problem+json")
	return nil
}

// fail answers a request the service did not answer: 504 when it was too
// slow, 502 when it could not be reached or broke off. The detail stays
// generic; the cause goes to the log.
func (u *upstream) fail(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	status, detail := http.StatusBadGateway, "upstream service unavailable, try again"
	if timedOut(err) {
		status, detail = http.StatusGatewayTimeout, "upstream service did not answer in time"
	}
	level := slog.LevelWarn
	if ctx.Err() != nil {
		level = slog.LevelInfo // the client went away; nothing is wrong upstream
	}
	slog.Log(ctx, level, "upstream request failed", "upstream", u.name, "method", r.Method,
		"path", r.URL.Path, "status", status, "error", err, "request_id", web.RequestID(ctx))
	web.WriteProblem(w, r, status, detail)
}

// timedOut reports whether err is the service failing to answer in time, as
// opposed to failing to connect (a dial timeout is an unreachable service).
func timedOut(err error) bool {
	if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}
