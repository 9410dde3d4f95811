package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"shop/services/platform/service/servicetest"
)

// TestREADMEMatchesTheSpecs checks the README's API table and error list
// against the live descriptions: each operation's operationId, success
// status and error statuses, in its service's spec and, for the public ones,
// in the gateway's (plus the gateway's own answers).
func TestREADMEMatchesTheSpecs(t *testing.T) {
	dir := t.TempDir()
	cfg := settings{OpenAPIDir: dir, GatewayAddr: servicetest.FreeAddr(t), PaymentsAddr: servicetest.FreeAddr(t), OrdersAddr: servicetest.FreeAddr(t)}
	if err := run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	specs := map[string]map[string]any{}
	for _, name := range []string{"gateway", "orders", "payments", "orders-internal", "payments-internal"} {
		b, err := os.ReadFile(filepath.Join(dir, name+".openapi.json"))
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		specs[name] = doc
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	section = section[strings.Index(section, "\n## HTTP API\n"):]
	section = section[:strings.Index(section[1:], "\n## ")]

	row := regexp.MustCompile("(?m)^\\| (orders|payments)(, internal)? \\| `(GET|POST) ([^`?]+)[^`]*`[^|]*\\(`([a-z-]+)`\\) \\| ([0-9]{3})[^|]* \\| ([^|]*) \\|$")
	rows := row.FindAllStringSubmatch(section, -1)
	if len(rows) != 8 {
		t.Fatalf("found %d operations in the README's API table, want 8", len(rows))
	}
	status := regexp.MustCompile(`\b[1-5][0-9]{2}\b`)
	allErrors := map[string]bool{}
	for _, r := range rows {
		svc, internal, method, path, opID, success := r[1], r[2] != "", strings.ToLower(r[3]), r[4], r[5], r[6]
		want := slices.Concat([]string{success}, status.FindAllString(r[7], -1))
		slices.Sort(want)
		spec := svc
		if internal {
			// Internal operations live on the internal listener only.
			spec += "-internal"
			if dig(specs[svc], "paths", path, method) != nil {
				t.Errorf("%s's public spec documents the internal %s %s", svc, method, path)
			}
		}
		op, _ := dig(specs[spec], "paths", path, method).(map[string]any)
		if op == nil {
			t.Errorf("README lists %s %s, which %s's spec lacks", method, path, spec)
			continue
		}
		if op["operationId"] != opID {
			t.Errorf("%s %s: README says operationId %s, the spec %v", method, path, opID, op["operationId"])
		}
		if got := responseCodes(op); !slices.Equal(got, want) {
			t.Errorf("%s %s in %s: README lists %v, the spec %v", method, path, svc, want, got)
		}
		for _, code := range want[1:] {
			allErrors[code] = true
		}
		gw, _ := dig(specs["gateway"], "paths", path, method).(map[string]any)
		if internal {
			if gw != nil {
				t.Errorf("the gateway documents the internal %s %s", method, path)
			}
			continue
		}
		wantGW := slices.Concat(want, []string{"401", "429", "502", "504"})
		if _, ok := op["requestBody"]; ok {
			wantGW = append(wantGW, "400", "413")
		}
		slices.Sort(wantGW)
		wantGW = slices.Compact(wantGW)
		if got := responseCodes(gw); !slices.Equal(got, wantGW) {
			t.Errorf("%s %s in the gateway: want %v (README plus the gateway's own), the spec %v", method, path, wantGW, got)
		}
		for _, code := range wantGW[1:] {
			allErrors[code] = true
		}
	}
	// The error list explains every error status any description uses.
	errorList := regexp.MustCompile("(?m)^\\| ([0-9]{3}) \\|").FindAllStringSubmatch(section, -1)
	listed := map[string]bool{}
	for _, m := range errorList {
		listed[m[1]] = true
	}
	for code := range allErrors {
		if !listed[code] {
			t.Errorf("status %s is documented by the specs but not in the README's error list", code)
		}
	}
}

func responseCodes(op map[string]any) []string {
	responses, _ := op["responses"].(map[string]any)
	var codes []string
	for code := range responses {
		if _, err := strconv.Atoi(code); err == nil {
			codes = append(codes, code)
		}
	}
	slices.Sort(codes)
	return codes
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
