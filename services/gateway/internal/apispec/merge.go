// Package apispec builds the gateway's public OpenAPI description: it fetches
// each upstream service's spec, keeps only the operations the gateway routes
// (never an internal one), merges them into the gateway's own spec, adds the
// answers the gateway itself gives, and serves the result as OpenAPI 3.1 and
// 3.0, JSON and YAML, once it is complete.
package apispec

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"shop/services/platform/web"
)

// Upstream is one service's OpenAPI document, decoded from JSON.
type Upstream struct {
	Name string
	Doc  map[string]any
}

// Routed reports whether the gateway sends method (upper case) and path (an
// OpenAPI path template such as /orders/{order_id}) to the named service.
type Routed func(service, method, path string) bool

// Rename records a component of an upstream that was renamed in the merged
// spec because another document already had a different one by that name.
type Rename struct {
	Service, Section, From, To string
}

// methods are the operation keys of an OpenAPI 3.1 path item.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Merge returns the public API the gateway serves: a copy of own (the
// gateway's own spec) plus, from each upstream in order, the operations that
// routed allows and that are not internal (tag "internal" or extension
// "x-internal": true). A path left with no operation is dropped, and so is
// every component no kept operation refers to, so nothing of an internal
// operation leaks into the merged spec.
//
// Components that are equal under the same name (ErrorModel, which every
// Huma service has) are kept once. A component whose name is taken by a
// different one is renamed with the service's name as prefix ("Account"
// from payments becomes "PaymentsAccount") and every reference to it in that
// service's operations follows; Merge reports such renames so they can be
// logged. An operationId already in use is prefixed the same way.
//
// The merged spec has one server, "/": "Try it out" in the docs goes through
// the gateway. Servers named by upstream paths or operations are dropped for
// the same reason. Merge never modifies its arguments.
func Merge(own map[string]any, upstreams []Upstream, routed Routed) (map[string]any, []Rename) {
	out := deepCopy(own).(map[string]any)
	paths := object(out, "paths")
	filterPaths(paths, func(string, string) bool { return true })
	opIDs := operationIDs(paths)
	var renames []Rename

	for _, up := range upstreams {
		doc := deepCopy(up.Doc).(map[string]any)
		upPaths, _ := doc["paths"].(map[string]any)
		filterPaths(upPaths, func(method, path string) bool {
			return routed(up.Name, strings.ToUpper(method), path)
		})
		components, _ := doc["components"].(map[string]any)
		keep := reachable(upPaths, components)

		outComponents := object(out, "components")
		refs := settleNames(up.Name, keep, outComponents)
		for _, ref := range slices.Sorted(maps.Keys(refs)) {
			section, from, _ := splitRef(ref)
			_, to, _ := splitRef(refs[ref])
			renames = append(renames, Rename{Service: up.Name, Section: section, From: from, To: to})
		}
		rewriteRefs(upPaths, refs)
		for ref, value := range keep {
			if to, ok := refs[ref]; ok {
				ref = to
			}
			section, name, _ := splitRef(ref)
			object(outComponents, section)[name] = rewriteRefs(value, refs)
		}
		// Security schemes are named by security requirements, not by $ref.
		if schemes, ok := components["securitySchemes"].(map[string]any); ok {
			target := object(outComponents, "securitySchemes")
			for name, scheme := range schemes {
				if _, taken := target[name]; !taken {
					target[name] = scheme
				}
			}
		}

		for _, path := range slices.Sorted(maps.Keys(upPaths)) {
			item := upPaths[path].(map[string]any)
			target, ok := paths[path].(map[string]any)
			if !ok {
				target = map[string]any{}
				paths[path] = target
			}
			for key, value := range item {
				if _, ok := target[key]; ok {
					// An earlier document has this operation: the routing
					// table sends each method and path to one service only,
					// so this is the gateway's own (its /health).
					continue
				}
				if op, ok := value.(map[string]any); ok && slices.Contains(methods, key) {
					if id, ok := op["operationId"].(string); ok {
						if opIDs[id] {
							id = up.Name + "-" + id
							op["operationId"] = id
						}
						opIDs[id] = true
					}
					addGatewayAnswers(op)
				}
				target[key] = value
			}
		}
		mergeTags(out, doc)
	}

	out["servers"] = []any{map[string]any{"url": "/", "description": "this gateway"}}
	object(object(out, "components"), "securitySchemes")[SecurityScheme] = map[string]any{
		"type":         "http",
		"scheme":       "bearer",
		"bearerFormat": "JWT",
		"description": "A JWT from the shop's OpenID Connect issuer, or one signed with the gateway's JWT_HS256_SECRET " +
			"(`go run ./services/devstack token -user N`). The user id is the issuer's tokens' claim OIDC_USER_CLAIM names (default sub), an HS256 token's sub.",
	}
	return out, renames
}

// SecurityScheme is the name of the bearer token scheme every routed
// operation requires.
const SecurityScheme = "bearerAuth"

// GatewayStatuses are the answers the gateway itself gives on every routed
// operation, besides the service's own: 401 without a good token, 429 over
// the rate limit, 502 when the service
// cannot be reached, 504 when it is too slow, and for a request body 400
// (unreadable) and 413 (over MAX_BODY_BYTES).
var GatewayStatuses = struct{ Always, WithBody []int }{
	Always: []int{http.StatusUnauthorized, http.StatusTooManyRequests,
		http.StatusBadGateway, http.StatusGatewayTimeout},
	WithBody: []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge},
}

func header(description, typ string) map[string]any {
	return map[string]any{"description": description, "schema": map[string]any{"type": typ}}
}

// gatewayHeaders are the headers the gateway's own answers carry.
var gatewayHeaders = map[int]map[string]any{
	http.StatusUnauthorized: {
		"WWW-Authenticate": header(`The bearer challenge: "Bearer" without a token, `+
			`Bearer error="invalid_token", error_description="…" with one that is refused.`, "string"),
	},
	http.StatusTooManyRequests: {
		"Retry-After":         header("Seconds until a request is allowed again (at least 1).", "integer"),
		"RateLimit-Limit":     header("Requests a caller may send at once (RATE_LIMIT_BURST).", "integer"),
		"RateLimit-Remaining": header("Requests left now: 0 when refused.", "integer"),
		"RateLimit-Reset":     header("Seconds until the whole allowance is back.", "integer"),
	},
}

// addGatewayAnswers documents GatewayStatuses on op (a routed operation),
// keeping the service's own description of a status it documents too, and
// requires the bearer token.
func addGatewayAnswers(op map[string]any) {
	op["security"] = []any{map[string]any{SecurityScheme: []any{}}}
	statuses := GatewayStatuses.Always
	if _, ok := op["requestBody"]; ok {
		statuses = slices.Concat(statuses, GatewayStatuses.WithBody)
	}
	responses := object(op, "responses")
	for _, status := range statuses {
		code := strconv.Itoa(status)
		if existing, ok := responses[code].(map[string]any); ok {
			// The service's own description, with the gateway's headers.
			if hs := gatewayHeaders[status]; hs != nil {
				target := object(existing, "headers")
				for name, h := range hs {
					if _, ok := target[name]; !ok {
						target[name] = deepCopy(h)
					}
				}
			}
			continue
		}
		resp := web.ProblemResponse(status, &huma.Schema{Ref: "#/components/schemas/ErrorModel"}, nil)
		b, _ := json.Marshal(resp) // plain data: cannot fail
		var v map[string]any
		_ = json.Unmarshal(b, &v)
		if hs := gatewayHeaders[status]; hs != nil {
			v["headers"] = deepCopy(map[string]any(hs))
		}
		responses[code] = v
	}
}

// filterPaths removes from paths every operation that is internal or that
// keep refuses, every path left without an operation, and every server list
// that would send requests around the gateway.
func filterPaths(paths map[string]any, keep func(method, path string) bool) {
	for path, v := range paths {
		item, ok := v.(map[string]any)
		if !ok {
			delete(paths, path)
			continue
		}
		delete(item, "servers")
		kept := 0
		for _, method := range methods {
			op, ok := item[method].(map[string]any)
			if !ok {
				delete(item, method)
				continue
			}
			if isInternal(op) || !keep(method, path) {
				delete(item, method)
				continue
			}
			delete(op, "servers")
			kept++
		}
		if kept == 0 {
			delete(paths, path)
		}
	}
}

func isInternal(op map[string]any) bool {
	if internal, _ := op["x-internal"].(bool); internal {
		return true
	}
	tags, _ := op["tags"].([]any)
	return slices.Contains(tags, any(web.InternalTag))
}

// reachable returns the components (by reference, "#/components/schemas/X")
// that the operations in paths use, directly or through other components.
func reachable(paths map[string]any, components map[string]any) map[string]any {
	found := map[string]any{}
	var queue []string
	enqueue := func(ref string) {
		if _, seen := found[ref]; seen {
			return
		}
		section, name, ok := splitRef(ref)
		if !ok {
			return
		}
		entries, _ := components[section].(map[string]any)
		value, ok := entries[name]
		if !ok {
			return
		}
		found[ref] = value
		queue = append(queue, ref)
	}
	walkStrings(paths, enqueue)
	for len(queue) > 0 {
		ref := queue[0]
		queue = queue[1:]
		walkStrings(found[ref], enqueue)
	}
	return found
}

const componentsPrefix = "#/components/"

// splitRef splits "#/components/schemas/Order" into its section and name.
func splitRef(ref string) (section, name string, ok bool) {
	rest, ok := strings.CutPrefix(ref, componentsPrefix)
	if !ok {
		return "", "", false
	}
	section, name, ok = strings.Cut(rest, "/")
	if !ok || section == "" || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return section, unescapePointer(name), true
}

func componentRef(section, name string) string {
	return componentsPrefix + section + "/" + escapePointer(name)
}

// JSON Pointer (RFC 6901) escapes "~" and "/" in a reference's segments.
var (
	pointerEscaper   = strings.NewReplacer("~", "~0", "/", "~1")
	pointerUnescaper = strings.NewReplacer("~1", "/", "~0", "~")
)

func escapePointer(s string) string   { return pointerEscaper.Replace(s) }
func unescapePointer(s string) string { return pointerUnescaper.Replace(s) }

// walkStrings calls f with every component reference in v: each "$ref" and
// each string that looks like one (discriminator mappings hold them too).
func walkStrings(v any, f func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			walkStrings(e, f)
		}
	case []any:
		for _, e := range v {
			walkStrings(e, f)
		}
	case string:
		if strings.HasPrefix(v, componentsPrefix) {
			f(v)
		}
	}
}

// rewriteRefs replaces, in place, every string in v that is a key of refs by
// its value, and returns v.
func rewriteRefs(v any, refs map[string]string) any {
	if len(refs) == 0 {
		return v
	}
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = rewriteRefs(e, refs)
		}
	case []any:
		for i, e := range v {
			v[i] = rewriteRefs(e, refs)
		}
	case string:
		if to, ok := refs[v]; ok {
			return to
		}
	}
	return v
}

// settleNames decides the name in the merged spec of each component in keep
// (an upstream's, by reference) and returns the references that change. A
// component is renamed when the merged spec has a different one by its name
// (or a rename took that name). Renaming changes the references inside other
// components, which can make them differ in turn, so this repeats until no
// new rename is needed.
func settleNames(service string, keep map[string]any, merged map[string]any) map[string]string {
	refs := map[string]string{}
	reserved := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for _, ref := range slices.Sorted(maps.Keys(keep)) {
			if _, renamed := refs[ref]; renamed {
				continue
			}
			section, name, _ := splitRef(ref)
			entries, _ := merged[section].(map[string]any)
			existing, taken := entries[name]
			value := rewriteRefs(deepCopy(keep[ref]), refs)
			if !taken || reflect.DeepEqual(existing, value) {
				continue
			}
			base := titleCase(service) + name
			to := componentRef(section, base)
			for i := 2; inUse(to, entries, keep, reserved); i++ {
				to = componentRef(section, fmt.Sprintf("%s%d", base, i))
			}
			refs[ref] = to
			reserved[to] = true
			changed = true
		}
	}
	return refs
}

// inUse reports whether a rename may not take ref: the merged spec, the
// upstream itself or an earlier rename has it.
func inUse(ref string, merged, keep map[string]any, reserved map[string]bool) bool {
	_, name, _ := splitRef(ref)
	_, inMerged := merged[name]
	_, inUpstream := keep[ref]
	return inMerged || inUpstream || reserved[ref]
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func operationIDs(paths map[string]any) map[string]bool {
	ids := map[string]bool{}
	for _, v := range paths {
		item, _ := v.(map[string]any)
		for _, method := range methods {
			op, _ := item[method].(map[string]any)
			if id, ok := op["operationId"].(string); ok {
				ids[id] = true
			}
		}
	}
	return ids
}

// mergeTags adds the top-level tags of doc that out lacks, except the
// internal tag, and drops the internal tag from out.
func mergeTags(out, doc map[string]any) {
	outTags, _ := out["tags"].([]any)
	docTags, _ := doc["tags"].([]any)
	if len(outTags) == 0 && len(docTags) == 0 {
		return
	}
	seen := map[string]bool{web.InternalTag: true}
	var merged []any
	for _, t := range slices.Concat(outTags, docTags) {
		tag, _ := t.(map[string]any)
		name, _ := tag["name"].(string)
		if seen[name] {
			continue
		}
		seen[name] = true
		merged = append(merged, t)
	}
	name := func(t any) string {
		tag, _ := t.(map[string]any)
		n, _ := tag["name"].(string)
		return n
	}
	slices.SortStableFunc(merged, func(a, b any) int { return strings.Compare(name(a), name(b)) })
	out["tags"] = merged
}

// object returns m[key] as an object, creating it when absent.
func object(m map[string]any, key string) map[string]any {
	if o, ok := m[key].(map[string]any); ok {
		return o
	}
	o := map[string]any{}
	m[key] = o
	return o
}

// deepCopy copies a decoded JSON value.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(v))
		for k, e := range v {
			c[k] = deepCopy(e)
		}
		return c
	case []any:
		c := make([]any, len(v))
		for i, e := range v {
			c[i] = deepCopy(e)
		}
		return c
	default:
		return v
	}
}
