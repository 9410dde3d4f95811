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

	"shop/services/platform/web"
)

// Source is an upstream service and the URL of its OpenAPI JSON.
type Source struct {
	Name string
	URL  string
}

// Options tune a Spec. Zero values take the defaults.
type Options struct {
	// TTL is how often a complete spec is fetched again (30s), so a
	// service's new version shows in the docs soon after it rolls out.
	TTL time.Duration
	// RetryMin and RetryMax bound the growing wait between attempts while
	// an upstream's spec cannot be fetched (100ms, 5s).
	RetryMin, RetryMax time.Duration
	// FetchTimeout bounds fetching one upstream's spec (5s).
	FetchTimeout time.Duration
	// Client fetches the specs (http.DefaultClient).
	Client *http.Client
}

// maxSpecBytes bounds an upstream's spec: ours are tens of kilobytes.
const maxSpecBytes = 8 << 20

// Spec serves the merged public spec at /openapi.json, /openapi.yaml,
// /openapi-3.0.json and /openapi-3.0.yaml.
//
// Run fetches every upstream's spec in the background, retrying the ones
// that fail with a growing wait, until it has them all; only then does Spec
// serve the merged spec, and Check (a readiness check) pass. Until then the
// routes answer 503 with Retry-After: a client, or a generator of clients,
// never gets a partial description that looks complete. Afterwards Run
// fetches the specs again every TTL; a fetch that fails keeps the last
// complete spec, so an upstream that goes down later changes nothing here.
type Spec struct {
	own     map[string]any
	sources []Source
	routed  Routed
	opts    Options

	mu      sync.RWMutex
	current *rendered // nil until every upstream's spec was fetched once
}

type rendered struct {
	json, yaml, json30, yaml30 []byte
	etag                       string
}

// New returns a Spec merging own, the gateway's own API (complete: it is
// read once), with the operations of sources that routed allows. It serves
// 503 until Run has fetched every source once.
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
	if opts.RetryMin <= 0 {
		opts.RetryMin = 100 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Second
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 5 * time.Second
	}
	if opts.Client == nil {
		opts.Client = http.DefaultClient
	}
	return &Spec{own: doc, sources: sources, routed: routed, opts: opts}, nil
}

// Run keeps the merged spec: it fetches every upstream's spec until all
// have answered (retrying with a growing wait), then again every TTL, until
// ctx ends.
func (s *Spec) Run(ctx context.Context) {
	wait := s.opts.RetryMin
	for {
		err := s.refresh(ctx)
		next := s.opts.TTL
		if err != nil && !s.complete() {
			next, wait = wait, min(2*wait, s.opts.RetryMax)
		} else {
			wait = s.opts.RetryMin
		}
		if err != nil {
			// The services often start with the gateway: the first few
			// misses are expected, not worth a warning.
			level := slog.LevelWarn
			if !s.complete() && next < s.opts.RetryMax {
				level = slog.LevelInfo
			}
			slog.Log(ctx, level, "openapi: upstream spec unavailable", "error", err, "retry_in", next.String(), "serving", s.complete())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
	}
}

// Check fails until the merged spec is complete: the gateway is not ready
// before it can describe its whole API.
func (s *Spec) Check(context.Context) error {
	if !s.complete() {
		return errors.New("the API descriptions of the services are not fetched yet")
	}
	return nil
}

func (s *Spec) complete() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.current != nil
}

// ServeJSON answers with the merged spec as JSON (OpenAPI 3.1).
func (s *Spec) ServeJSON(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "application/openapi+json", "", func(d *rendered) []byte { return d.json })
}

// ServeYAML answers with the merged spec as YAML (OpenAPI 3.1).
func (s *Spec) ServeYAML(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "application/openapi+yaml", "-yaml", func(d *rendered) []byte { return d.yaml })
}

// ServeJSON30 answers with the merged spec as OpenAPI 3.0 JSON, for tools
// that do not read 3.1 yet (oapi-codegen, for one).
func (s *Spec) ServeJSON30(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "application/openapi+json", "-3.0", func(d *rendered) []byte { return d.json30 })
}

// ServeYAML30 answers with the merged spec as OpenAPI 3.0 YAML.
func (s *Spec) ServeYAML30(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "application/openapi+yaml", "-3.0-yaml", func(d *rendered) []byte { return d.yaml30 })
}

func (s *Spec) serve(w http.ResponseWriter, r *http.Request, contentType, etagSuffix string, body func(*rendered) []byte) {
	s.mu.RLock()
	doc := s.current
	s.mu.RUnlock()
	if doc == nil {
		w.Header().Set("Retry-After", "1")
		web.WriteProblem(w, r, http.StatusServiceUnavailable,
			"the API description is not complete yet: the gateway is still fetching the services' descriptions")
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", `"`+doc.etag+etagSuffix+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body(doc)))
}

// refresh fetches every upstream's spec and, when all answered, merges them
// and makes the result current.
func (s *Spec) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.FetchTimeout)
	defer cancel()
	docs := make([]map[string]any, len(s.sources))
	errs := make([]error, len(s.sources))
	var wg sync.WaitGroup
	for i, src := range s.sources {
		wg.Go(func() {
			docs[i], errs[i] = s.fetch(ctx, src.URL)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: %w", src.Name, errs[i])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	upstreams := make([]Upstream, len(s.sources))
	for i, src := range s.sources {
		upstreams[i] = Upstream{Name: src.Name, Doc: docs[i]}
	}
	merged, renames := Merge(s.own, upstreams, s.routed)
	for _, r := range renames {
		slog.Warn("openapi: component name clash, renamed", "upstream", r.Service, "section", r.Section, "from", r.From, "to", r.To)
	}
	doc, err := render(merged)
	if err != nil {
		return err
	}
	s.mu.Lock()
	first := s.current == nil
	s.current = doc
	s.mu.Unlock()
	if first {
		slog.Info("openapi: merged API description complete", "services", len(s.sources))
	}
	return nil
}

// render encodes the merged spec as OpenAPI 3.1 and 3.0, JSON and YAML.
func render(doc map[string]any) (*rendered, error) {
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode merged spec: %w", err)
	}
	// Huma's downgrade works on its OpenAPI type; extensions are written
	// over its fields, so a document held as extensions is downgraded whole.
	js30, err := huma.OpenAPI{Extensions: doc}.Downgrade()
	if err != nil {
		return nil, fmt.Errorf("downgrade merged spec to OpenAPI 3.0: %w", err)
	}
	var y, y30 bytes.Buffer
	if err := yaml.Convert(&y, bytes.NewReader(js)); err != nil {
		return nil, fmt.Errorf("convert merged spec to YAML: %w", err)
	}
	if err := yaml.Convert(&y30, bytes.NewReader(js30)); err != nil {
		return nil, fmt.Errorf("convert merged 3.0 spec to YAML: %w", err)
	}
	sum := sha256.Sum256(js)
	return &rendered{json: js, yaml: y.Bytes(), json30: js30, yaml30: y30.Bytes(), etag: hex.EncodeToString(sum[:12])}, nil
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
