package access

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"time"
)

// keyCache answers a GET for a document fetched successfully less than ttl
// ago from memory. go-oidc fetches the issuer's keys again whenever a token
// fails to verify with the keys it has (the issuer may have rotated them);
// without this, every forged token would cost the issuer a request.
type keyCache struct {
	next http.RoundTripper
	ttl  time.Duration

	mu      sync.Mutex
	entries map[string]cachedResponse
}

type cachedResponse struct {
	at     time.Time
	header http.Header
	body   []byte
}

// maxDocument bounds a discovery document or key set read into memory.
const maxDocument = 1 << 20

func (c *keyCache) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet {
		return c.next.RoundTrip(r)
	}
	key := r.URL.String()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && time.Since(e.at) < c.ttl {
		return e.response(r), nil
	}
	resp, err := c.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument))
	if err != nil {
		return nil, err
	}
	e = cachedResponse{at: time.Now(), header: resp.Header.Clone(), body: body}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]cachedResponse{}
	}
	c.entries[key] = e
	c.mu.Unlock()
	return e.response(r), nil
}

func (e cachedResponse) response(r *http.Request) *http.Response {
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: e.header.Clone(), Body: io.NopCloser(bytes.NewReader(e.body)),
		ContentLength: int64(len(e.body)), Request: r,
	}
}
