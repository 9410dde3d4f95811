package web

import (
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// Contact and License are the same in every API description the shop
// publishes.
var (
	Contact = &huma.Contact{Name: "Shop API support", URL: "https://shop.example.com/support", Email: "api@shop.example.com"}
	License = &huma.License{Name: "Proprietary", URL: "https://shop.example.com/license"}
)

// HealthTag groups the health operations; InternalTag the internal ones.
const HealthTag = "health"

// Tag declares a tag and its description in api's OpenAPI, once: every tag
// an operation uses is declared, so docs and generated clients can group
// and explain the operations.
func Tag(api huma.API, name, description string) {
	oapi := api.OpenAPI()
	for _, t := range oapi.Tags {
		if t.Name == name {
			return
		}
	}
	oapi.Tags = append(oapi.Tags, &huma.Tag{Name: name, Description: description})
	// In alphabetical order, as docs list them.
	slices.SortFunc(oapi.Tags, func(a, b *huma.Tag) int { return strings.Compare(a.Name, b.Name) })
}

// problem documents one error status: when it is answered, and a typical
// detail for its example.
type problem struct {
	when, detail string
}

// problems are the error answers the shop documents. Authentication (401,
// 403) and rate limits (429) are documented here already; an operation lists
// them once something answers them, by adding the status to its errors (or
// to apispec's gateway statuses for every routed operation).
var problems = map[int]problem{
	http.StatusBadRequest:            {"The request body is not well-formed JSON, or could not be read.", "unexpected end of JSON input"},
	http.StatusUnauthorized:          {"No token, or a token that is not valid (see WWW-Authenticate).", "a valid bearer token is required"},
	http.StatusForbidden:             {"The input names another user than the token's.", "this user_id belongs to another user"},
	http.StatusNotFound:              {"The resource does not exist.", "no such resource"},
	http.StatusConflict:              {"The request conflicts with the current state: a resource that exists already, or a request with the same Idempotency-Key still in progress.", "the resource exists already"},
	http.StatusRequestEntityTooLarge: {"The request body is larger than the limit.", "request body is larger than 1048576 bytes"},
	http.StatusUnsupportedMediaType:  {"The request body is not JSON (see Content-Type).", "unknown content type"},
	http.StatusUnprocessableEntity:   {"The input is invalid: errors[] names each field and what is wrong with it. Also an Idempotency-Key used before with a different request.", "validation failed"},
	http.StatusTooManyRequests:       {"Over the rate limit; try again after Retry-After seconds.", "rate limit exceeded"},
	http.StatusInternalServerError:   {"Something failed inside the service. The body says only \"internal error\" and the request id; the cause is in the service's log.", "internal error"},
	http.StatusBadGateway:            {"The gateway could not reach the service that answers this operation.", "upstream service unavailable, try again"},
	http.StatusServiceUnavailable:    {"A dependency (the database) is unavailable for now, or the service is not ready (starting, or shutting down); try again after Retry-After seconds.", "service temporarily unavailable, try again"},
	http.StatusGatewayTimeout:        {"The service that answers this operation did not answer in time.", "upstream service did not answer in time"},
}

// ProblemResponse documents an error answer: its description and a
// problem+json example of it, whose schema is ref (the ErrorModel schema).
// It panics for a status the shop does not document, so a new one gets a
// description.
func ProblemResponse(status int, ref *huma.Schema, example *huma.ErrorModel) *huma.Response {
	p, ok := problems[status]
	if !ok {
		panic("web: no documentation for status " + strconv.Itoa(status))
	}
	if example == nil {
		example = ProblemExample(status)
	}
	return &huma.Response{
		Description: p.when,
		Content: map[string]*huma.MediaType{
			"application/problem+json": {Schema: ref, Example: example},
		},
	}
}

// ProblemExample is an example problem+json body for status, with the
// detail the shop typically writes for it.
func ProblemExample(status int) *huma.ErrorModel {
	m := &huma.ErrorModel{
		Title:    http.StatusText(status),
		Status:   status,
		Detail:   problems[status].detail,
		Instance: "urn:request:5f0c6a36-1f0e-4d7c-9a43-2d0b8c1e7a10",
	}
	if status == http.StatusUnprocessableEntity {
		m.Errors = []*huma.ErrorDetail{{Location: "body.user_id", Message: "expected number >= 1", Value: 0}}
	}
	return m
}

// documentOperation adds to op every error answer it can give besides the
// ones its handler declares: 422 for any input, 400, 413 and 415 for a
// request body, 500 and 503 (a dependency unavailable) always. Every error answer gets a description and an
// example of its own status (not Huma's generic "400 Bad Request"), and
// the catch-all "default" answer goes once the answers are listed.
func documentOperation(oapi *huma.OpenAPI, op *huma.Operation) {
	statuses := []int{http.StatusInternalServerError, http.StatusServiceUnavailable}
	if len(op.Parameters) > 0 || op.RequestBody != nil {
		statuses = append(statuses, http.StatusUnprocessableEntity)
	}
	if op.RequestBody != nil {
		statuses = append(statuses, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
	}
	if op.Responses == nil {
		op.Responses = map[string]*huma.Response{}
	}
	ref := oapi.Components.Schemas.Schema(reflect.TypeFor[huma.ErrorModel](), true, "Error")
	for _, s := range statuses {
		if _, ok := op.Responses[strconv.Itoa(s)]; !ok {
			op.Responses[strconv.Itoa(s)] = &huma.Response{}
		}
	}
	delete(op.Responses, "default")
	for _, code := range slices.Sorted(maps.Keys(op.Responses)) {
		status, err := strconv.Atoi(code)
		if err != nil || status < 400 {
			continue
		}
		example := ProblemExample(status)
		if status == http.StatusUnprocessableEntity {
			example.Errors = []*huma.ErrorDetail{invalidInputExample(oapi, op)}
		}
		op.Responses[code] = ProblemResponse(status, ref, example)
	}
}

// invalidInputExample is a 422 error detail that fits op: a missing
// required body property, or else a bad first parameter.
func invalidInputExample(oapi *huma.OpenAPI, op *huma.Operation) *huma.ErrorDetail {
	if op.RequestBody != nil {
		for _, mt := range op.RequestBody.Content {
			s := mt.Schema
			if s != nil && s.Ref != "" {
				s = oapi.Components.Schemas.SchemaFromRef(s.Ref)
			}
			if s != nil && len(s.Required) > 0 {
				return &huma.ErrorDetail{Location: "body", Message: "expected required property " + s.Required[0] + " to be present", Value: map[string]any{}}
			}
		}
		return &huma.ErrorDetail{Location: "body", Message: "expected object", Value: "[]"}
	}
	p := op.Parameters[0]
	msg := "expected value to be valid"
	switch {
	case p.Schema != nil && p.Schema.Format == "uuid":
		msg = "expected string to be RFC 4122 uuid: invalid UUID length: 3"
	case p.Schema != nil && (p.Schema.Type == huma.TypeInteger || p.Schema.Type == huma.TypeNumber):
		msg = "invalid integer"
	}
	return &huma.ErrorDetail{Location: p.In + "." + p.Name, Message: msg, Value: "abc"}
}

// explainAmounts rewrites the validation messages of amounts (see
// money.PositivePattern) to say what is wrong: "must have at most two
// fraction digits" rather than the pattern. amounts are the locations of
// amount fields ("body.amount").
func explainAmounts(errs []error, explain func(string) string, pattern string, isAmount func(loc string) bool) {
	patternMsg := "expected string to match pattern " + pattern
	for _, e := range errs {
		d, ok := e.(*huma.ErrorDetail)
		if !ok {
			continue
		}
		switch {
		case d.Message == patternMsg:
			if s, ok := d.Value.(string); ok {
				if why := explain(s); why != "" {
					d.Message = why
				}
			}
		case d.Message == "expected string" && isAmount(d.Location):
			d.Message = `must be a JSON string such as "12.30", not a number: numbers lose cents in clients that read them as binary floating point`
		}
	}
}

// amountLocations returns the error locations ("body.amount") of the
// properties of op's request body whose schema has pattern.
func amountLocations(oapi *huma.OpenAPI, op *huma.Operation, pattern string) []string {
	if op.RequestBody == nil {
		return nil
	}
	var out []string
	var walk func(prefix string, s *huma.Schema, depth int)
	walk = func(prefix string, s *huma.Schema, depth int) {
		if s == nil || depth > 8 {
			return
		}
		if s.Ref != "" {
			s = oapi.Components.Schemas.SchemaFromRef(s.Ref)
			if s == nil {
				return
			}
		}
		if s.Pattern == pattern {
			out = append(out, prefix)
		}
		for name, p := range s.Properties {
			walk(prefix+"."+name, p, depth+1)
		}
	}
	for _, mt := range op.RequestBody.Content {
		walk("body", mt.Schema, 0)
	}
	return out
}
