package main

import (
	"encoding/json"
	"os"
)

// jsonReport is what BENCH_JSON receives: the table's rows as they print,
// and the parts with structure of their own.
type jsonReport struct {
	Results []jsonResult `json:"results"`
	// PostgresFlatOut is PostgreSQL's work per settled order flat out;
	// statements are absent when pg_stat_statements is not loaded.
	PostgresFlatOut *pgPerOrder `json:"postgres_per_settled_order_flat_out,omitempty"`
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
	rep := jsonReport{PostgresFlatOut: b.pgFlat, HopsHalfLoad: b.hops, Micro: b.micro}
	for _, r := range b.results {
		rep.Results = append(rep.Results, jsonResult{r.name, r.value})
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
