package apispec

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/yaml"
)

// Source is an upstream service and the URL of its OpenAPI JSON.
type Source struct {
	Name string
	URL  string
}

// Options tune a Spec. Zero values take the defaults.
type Options struct {
	// TTL is how long a merged spec is served before it is rebuilt (30s).
	TTL time.Duration
	// RetryAfter is how long a merged spec that lacks an upstream's current
	// spec is served before it is rebuilt (5s), so docs recover soon after
	// the upstream does.
	RetryAfter time.Duration
	// FetchTimeout bounds fetching one upstream's spec (5s).
	FetchTimeout time.Duration
	// Client fetches the specs (http.DefaultClient).
	Client *http.Client
}

// maxSpecBytes bounds an upstream's spec: ours are tens of kilobytes.
const maxSpecBytes = 8 << 20

// Spec serves the merged public spec at /openapi.json and /openapi.yaml.
//
// The merged spec is built on demand and cached for TTL. Once it is older, a
// request is answered from the cache at once while one rebuild runs in the
// background (stale-while-revalidate), so only the very first request waits
// for the upstreams, and never longer than FetchTimeout. An upstream whose
// spec cannot be fetched contributes the last spec it served, if any; the
// merged spec then says so in its description and in "x-unavailable", and
// is rebuilt after RetryAfter rather than TTL. The docs never fail because
// an upstream does: at worst they show the gateway's own operations.
type Spec struct {
	own     map[string]any
	sources []Source
	routed  Routed
	opts    Options

	mu         sync.Mutex
	current    *rendered
	refreshing chan struct{} // closed when the running rebuild ends; nil if none runs
	last       map[string]fetched
}

type fetched struct {
	doc map[string]any
	at  time.Time
}

type rendered struct {
	json, yaml []byte
	etag       string
	expires    time.Time
}

// New returns a Spec merging own, the gateway's own API (complete: it is
// read once), with the operations of sources that routed allows.
func New(own *huma.OpenAPI, sources []Source, routed Routed, opts Options) (*Spec, error) {
	b, err := json.Marshal(own)
	if err != nil {
		return nil, fmt.Errorf("encode the gateway's own spec: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("decode the gateway's own spec: %w", err)
	}
	if opts.TTL <= 0 {
		opts.TTL = 30 * time.Second
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 5 * time.Second
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 5 * time.Second
	}
	if opts.Client == nil {
		opts.Client = http.DefaultClient
	}
	return &Spec{own: doc, sources: sources, routed: routed, opts: opts, last: map[string]fetched{}}, nil
}

// ServeJSON answers with the merged spec as JSON.
func (s *Spec) ServeJSON(w http.ResponseWriter, r *http.Request) {
	doc := s.get(r.Context())
	serve(w, r, "application/openapi+json", doc.etag, doc.json)
}

// ServeYAML answers with the merged spec as YAML.
func (s *Spec) ServeYAML(w http.ResponseWriter, r *http.Request) {
	doc := s.get(r.Context())
	serve(w, r, "application/openapi+yaml", doc.etag+"-yaml", doc.yaml)
}

func serve(w http.ResponseWriter, r *http.Request, contentType, etag string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", `"`+etag+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// get returns the merged spec: the cached one if any (starting a rebuild
// when it has expired), or else the result of the first build.
func (s *Spec) get(ctx context.Context) *rendered {
	s.mu.Lock()
	current := s.current
	if current != nil && time.Now().Before(current.expires) {
		s.mu.Unlock()
		return current
	}
	done := s.refreshing
	if done == nil {
		done = make(chan struct{})
		s.refreshing = done
		go s.rebuild(done)
	}
	s.mu.Unlock()
	if current != nil {
		return current
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current != nil {
		return s.current
	}
	// The client gave up before the first build ended; it can have the
	// gateway's own operations.
	own, _ := Merge(s.own, nil, s.routed)
	return s.render(own, s.sources, time.Time{})
}

// rebuild fetches every upstream's spec, merges them and caches the result.
// It runs on its own, not on a request's context: a client that gives up
// should not waste the work for the next one.
func (s *Spec) rebuild(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.FetchTimeout)
	defer cancel()

	docs := make([]map[string]any, len(s.sources))
	errs := make([]error, len(s.sources))
	var wg sync.WaitGroup
	for i, src := range s.sources {
		wg.Go(func() { docs[i], errs[i] = s.fetch(ctx, src.URL) })
	}
	wg.Wait()

	now := time.Now()
	var upstreams []Upstream
	var missing []Source // upstreams not at their current spec
	var notes []any
	s.mu.Lock()
	for i, src := range s.sources {
		if errs[i] == nil {
			s.last[src.Name] = fetched{doc: docs[i], at: now}
			upstreams = append(upstreams, Upstream{Name: src.Name, Doc: docs[i]})
			continue
		}
		slog.Warn("openapi: upstream spec unavailable", "upstream", src.Name, "url", src.URL, "error", errs[i])
		missing = append(missing, src)
		note := map[string]any{"service": src.Name}
		if last, ok := s.last[src.Name]; ok {
			upstreams = append(upstreams, Upstream{Name: src.Name, Doc: last.doc})
			note["stale"] = true
			note["as_of"] = last.at.UTC().Format(time.RFC3339)
			note["reason"] = "the service's API description could not be fetched; shown as it was last seen"
		} else {
			note["reason"] = "the service's API description could not be fetched; its operations are missing"
		}
		notes = append(notes, note)
	}
	s.mu.Unlock()

	merged, renames := Merge(s.own, upstreams, s.routed)
	for _, r := range renames {
		slog.Warn("openapi: component name clash, renamed", "upstream", r.Service, "section", r.Section, "from", r.From, "to", r.To)
	}
	if len(notes) > 0 {
		merged["x-unavailable"] = notes
		info := object(merged, "info")
		desc, _ := info["description"].(string)
		var names []string
		for _, src := range missing {
			names = append(names, src.Name)
		}
		info["description"] = strings.TrimSpace(desc + "\n\n**Warning:** the API description of " +
			strings.Join(names, ", ") + " could not be fetched just now; see x-unavailable.")
	}

	ttl := s.opts.TTL
	if len(missing) > 0 {
		ttl = min(ttl, s.opts.RetryAfter)
	}
	doc := s.render(merged, nil, now.Add(ttl))

	s.mu.Lock()
	s.current = doc
	s.refreshing = nil
	s.mu.Unlock()
	close(done)
}

// render encodes doc. When that fails, which a document decoded from JSON
// cannot make it do, it falls back to the gateway's own spec with every
// source in unavailable, so the docs still answer.
func (s *Spec) render(doc map[string]any, unavailable []Source, expires time.Time) *rendered {
	if len(unavailable) > 0 {
		doc = deepCopy(doc).(map[string]any)
		var notes []any
		for _, src := range unavailable {
			notes = append(notes, map[string]any{"service": src.Name, "reason": "the service's API description is not loaded yet"})
		}
		doc["x-unavailable"] = notes
	}
	js, err := json.Marshal(doc)
	if err != nil {
		slog.Error("openapi: encode merged spec", "error", err)
		if len(unavailable) == 0 {
			return s.render(s.own, s.sources, expires)
		}
		js = []byte(`{"openapi":"3.1.0","info":{"title":"unavailable","version":"0"},"paths":{}}`)
	}
	var y bytes.Buffer
	if err := yaml.Convert(&y, bytes.NewReader(js)); err != nil {
		slog.Error("openapi: convert merged spec to YAML", "error", err)
	}
	sum := sha256.Sum256(js)
	return &rendered{json: js, yaml: y.Bytes(), etag: hex.EncodeToString(sum[:12]), expires: expires}
}

// fetch GETs an OpenAPI 3 document.
func (s *Spec) fetch(ctx context.Context, url string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/openapi+json, application/json")
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var doc map[string]any
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxSpecBytes))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode %s: %w", url, err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		return nil, errors.New(url + ": not an OpenAPI 3 document")
	}
	if _, ok := doc["paths"]; ok {
		if _, ok := doc["paths"].(map[string]any); !ok {
			return nil, errors.New(url + ": paths is not an object")
		}
	}
	return doc, nil
}
