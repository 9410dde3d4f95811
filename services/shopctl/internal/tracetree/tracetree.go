// Package tracetree reads one trace from Jaeger's query API and prints it as
// an indented tree: each span's service, operation, duration and start
// offset from the beginning of the trace.
package tracetree

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNotFound is returned when Jaeger holds no matching trace.
var ErrNotFound = errors.New("no such trace in Jaeger")

// Span is one span of a trace.
type Span struct {
	ID, ParentID string
	Service      string
	Operation    string
	Start        time.Time
	Duration     time.Duration
	Error        bool
}

// Trace is a trace as Jaeger holds it.
type Trace struct {
	ID    string
	Spans []Span
}

// Client asks a Jaeger query service (the UI's port, 16686) over its HTTP
// API.
type Client struct {
	BaseURL string
	HTTP    *http.Client
}

// Query says which trace to find: one with a span of Service and
// Operation carrying the tag Key=Value, started within [Start, End].
type Query struct {
	Service, Operation string
	Key, Value         string
	Start, End         time.Time
}

// Find returns the newest trace that matches q.
func (c *Client) Find(ctx context.Context, q Query) (Trace, error) {
	tags, err := json.Marshal(map[string]string{q.Key: q.Value})
	if err != nil {
		return Trace{}, err
	}
	v := url.Values{
		"service":   {q.Service},
		"operation": {q.Operation},
		"tags":      {string(tags)},
		"start":     {strconv.FormatInt(q.Start.UnixMicro(), 10)},
		"end":       {strconv.FormatInt(q.End.UnixMicro(), 10)},
		"limit":     {"20"},
	}
	traces, err := c.get(ctx, "/api/traces?"+v.Encode())
	if err != nil {
		return Trace{}, err
	}
	if len(traces) == 0 {
		return Trace{}, ErrNotFound
	}
	// The newest: a reconciled order may have been requested again.
	newest := slices.MaxFunc(traces, func(a, b Trace) int { return a.start().Compare(b.start()) })
	// A search answers the spans that matched; the trace has them all.
	return c.Get(ctx, newest.ID)
}

// Get returns the trace with id.
func (c *Client) Get(ctx context.Context, id string) (Trace, error) {
	traces, err := c.get(ctx, "/api/traces/"+url.PathEscape(id))
	if err != nil {
		return Trace{}, err
	}
	if len(traces) == 0 {
		return Trace{}, ErrNotFound
	}
	return traces[0], nil
}

// jaegerTrace is a trace in Jaeger's HTTP API (the UI's JSON).
type jaegerTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		StartTime int64  `json:"startTime"` // µs since the epoch
		Duration  int64  `json:"duration"`  // µs
		ProcessID string `json:"processID"`
		Tags      []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

func (c *Client) get(ctx context.Context, path string) ([]Trace, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.BaseURL, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	client := c.HTTP
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask Jaeger: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, ErrNotFound
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("Jaeger answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var out struct {
		Data []jaegerTrace `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode Jaeger's answer: %w", err)
	}
	traces := make([]Trace, 0, len(out.Data))
	for _, jt := range out.Data {
		t := Trace{ID: jt.TraceID}
		for _, s := range jt.Spans {
			span := Span{
				ID: s.SpanID, Service: jt.Processes[s.ProcessID].ServiceName, Operation: s.OperationName,
				Start: time.UnixMicro(s.StartTime), Duration: time.Duration(s.Duration) * time.Microsecond,
			}
			for _, r := range s.References {
				if r.RefType == "CHILD_OF" || span.ParentID == "" {
					span.ParentID = r.SpanID
				}
			}
			for _, tag := range s.Tags {
				if tag.Key == "error" && tag.Value == true {
					span.Error = true
				}
			}
			t.Spans = append(t.Spans, span)
		}
		traces = append(traces, t)
	}
	return traces, nil
}

func (t Trace) start() time.Time {
	var first time.Time
	for _, s := range t.Spans {
		if first.IsZero() || s.Start.Before(first) {
			first = s.Start
		}
	}
	return first
}

// Print writes t as an indented tree, children below their parent in the
// order they started:
//
//	SERVICE   OPERATION                   DURATION  START
//	gateway   POST /orders                  3.21ms  +0s
//	gateway     HTTP POST                   2.80ms  +0.19ms
//	orders        POST /orders              2.52ms  +0.33ms
//
// A span whose parent is not in the trace (not exported yet, or lost) is
// printed as a root.
func Print(w io.Writer, t Trace) error {
	start := t.start()
	ids := map[string]bool{}
	for _, s := range t.Spans {
		ids[s.ID] = true
	}
	children := map[string][]Span{}
	var roots []Span
	for _, s := range t.Spans {
		if s.ParentID == "" || !ids[s.ParentID] || s.ParentID == s.ID {
			roots = append(roots, s)
			continue
		}
		children[s.ParentID] = append(children[s.ParentID], s)
	}
	byStart := func(a, b Span) int {
		return cmp.Or(a.Start.Compare(b.Start), strings.Compare(a.Operation, b.Operation))
	}
	slices.SortFunc(roots, byStart)
	for _, c := range children {
		slices.SortFunc(c, byStart)
	}

	rows := [][4]string{{"SERVICE", "OPERATION", "DURATION", "START"}}
	seen := map[string]bool{}
	var walk func(s Span, depth int)
	walk = func(s Span, depth int) {
		if seen[s.ID] { // a malformed trace with a cycle
			return
		}
		seen[s.ID] = true
		op := strings.Repeat("  ", depth) + s.Operation
		if s.Error {
			op += " (error)"
		}
		rows = append(rows, [4]string{s.Service, op, round(s.Duration).String(), "+" + round(s.Start.Sub(start)).String()})
		for _, c := range children[s.ID] {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	var width [4]int
	for _, r := range rows {
		for i, cell := range r {
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	if _, err := fmt.Fprintf(w, "trace %s: %d spans\n", t.ID, len(t.Spans)); err != nil {
		return err
	}
	for _, r := range rows {
		// Service and operation read left to right; times line up on the right.
		if _, err := fmt.Fprintf(w, "%-*s  %-*s  %*s  %*s\n", width[0], r[0], width[1], r[1], width[2], r[2], width[3], r[3]); err != nil {
			return err
		}
	}
	return nil
}

// round keeps durations readable: 3.21ms, 1.2s, 85µs.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
