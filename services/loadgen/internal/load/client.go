package load

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// client calls the gateway. Every failed call is classified by kind, so the
// report can say what went wrong without a log to read.
type client struct {
	base string
	http *http.Client
}

func newClient(base string, conns int, timeout time.Duration) *client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = conns + 16
	t.MaxIdleConnsPerHost = conns + 16
	return &client{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: timeout, Transport: t}}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// Error kinds, the keys of Report.Errors.
const (
	KindHTTP4xx     = "http_4xx"
	KindHTTP5xx     = "http_5xx"
	KindTimeout     = "timeout"
	KindConnection  = "connection"
	KindBadResponse = "bad_response"
	KindOther       = "other"
)

// callError is a failed call with its kind.
type callError struct {
	kind   string
	status int
	err    error
}

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

// kindOf reports the kind of err, a callError or a transport error.
func kindOf(err error) string {
	var ce *callError
	if errors.As(err, &ce) {
		return ce.kind
	}
	return KindOther
}

// call sends body as JSON (none if nil), with token as the bearer
// credential unless it is "", and decodes a 2xx answer into out.
func (c *client) call(ctx context.Context, token, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, &callError{kind: KindOther, err: err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, &callError{kind: transportKind(err), err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, &callError{kind: transportKind(err), status: resp.StatusCode, err: err}
	}
	switch {
	case resp.StatusCode >= 500:
		return resp.StatusCode, &callError{kind: KindHTTP5xx, status: resp.StatusCode,
			err: fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)}
	case resp.StatusCode >= 400:
		return resp.StatusCode, &callError{kind: KindHTTP4xx, status: resp.StatusCode,
			err: fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)}
	case resp.StatusCode/100 != 2:
		return resp.StatusCode, &callError{kind: KindBadResponse, status: resp.StatusCode,
			err: fmt.Errorf("%s %s: unexpected status %d", method, path, resp.StatusCode)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, &callError{kind: KindBadResponse, status: resp.StatusCode,
				err: fmt.Errorf("%s %s: decode %.200s: %w", method, path, data, err)}
		}
	}
	return resp.StatusCode, nil
}

func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.Is(err, context.Canceled):
		return KindOther
	}
	var op *net.OpError
	if errors.As(err, &op) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "connection") {
		return KindConnection
	}
	return KindOther
}

// cents formats integer cents as the API's decimal string: 1230 → "12.30".
func cents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}

// parseCents reads the API's decimal string ("12.30", "12.3", "12") into
// cents, without floating point.
func parseCents(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	if whole == "" || len(frac) > 2 {
		return 0, fmt.Errorf("amount %q: want digits with at most two fraction digits", s)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("amount %q: %w", s, err)
	}
	f, err := strconv.ParseInt(frac, 10, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("amount %q: bad fraction", s)
	}
	v := w*100 + f
	if neg {
		v = -v
	}
	return v, nil
}

// The API's shapes, as far as the load generator reads them.
type account struct {
	UserID  int64  `json:"user_id"`
	Balance string `json:"balance"`
}

type apiOrder struct {
	ID           string    `json:"id"`
	UserID       int64     `json:"user_id"`
	Amount       string    `json:"amount"`
	Status       string    `json:"status"`
	CancelReason string    `json:"cancel_reason"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}
