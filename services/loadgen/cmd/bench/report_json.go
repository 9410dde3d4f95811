package main

import (
	"cmp"
	"encoding/json"
	"log"
	"os"
	"path/filepath"
)

// readmeRun is the report of the run the README's Performance section
// shows, which the next run prints beside its own (BENCH_PREVIOUS).
const readmeRun = "services/loadgen/cmd/bench/readme-run.json"

// jsonReport is what BENCH_JSON receives: the table's rows as they print,
// and the parts with structure of their own.
type jsonReport struct {
	// Label names the run (BENCH_LABEL), e.g. the change it measures.
	Label   string       `json:"label,omitempty"`
	Results []jsonResult `json:"results"`
	// PostgresFlatOut is PostgreSQL's work per settled order flat out;
	// statements are absent when pg_stat_statements is not loaded.
	PostgresFlatOut *pgPerOrder `json:"postgres_per_settled_order_flat_out,omitempty"`
	// PostgresHalfLoad is the same at half load.
	PostgresHalfLoad *pgPerOrder `json:"postgres_per_settled_order_half_load,omitempty"`
	// HopsHalfLoad is the per-hop budget at half load.
	HopsHalfLoad *hopBudget `json:"hops_half_load,omitempty"`
	Micro        []string   `json:"micro_benchmarks,omitempty"`
}

type jsonResult struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// writeJSON writes the report to path.
func (b *bench) writeJSON(path string) error {
	rep := jsonReport{Label: b.s.label, PostgresFlatOut: b.pgFlat, PostgresHalfLoad: b.pgHalf, HopsHalfLoad: b.hops, Micro: b.micro}
	for _, r := range b.results {
		rep.Results = append(rep.Results, jsonResult{r.name, r.value})
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// previous reads the earlier report BENCH_PREVIOUS names (by default the
// README's run) and returns its values by row name, with a column label;
// nil when there is none or it cannot be read.
func (b *bench) previous() (map[string]string, string) {
	path := cmp.Or(b.s.previousPath, filepath.Join(b.root, readmeRun))
	if path == "none" {
		return nil, ""
	}
	data, err := os.ReadFile(path)
	if err != nil {
		log.Printf("previous report: %v", err)
		return nil, ""
	}
	var rep jsonReport
	if err := json.Unmarshal(data, &rep); err != nil {
		log.Printf("previous report %s: %v", path, err)
		return nil, ""
	}
	values := make(map[string]string, len(rep.Results))
	for _, r := range rep.Results {
		values[r.Name] = r.Value
	}
	label := "previous: " + filepath.Base(path)
	if rep.Label != "" {
		label = "previous: " + rep.Label
	}
	return values, label
}
