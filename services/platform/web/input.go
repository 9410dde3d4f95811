package web

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
)

func init() {
	// A body key that differs from a schema key only in case ("USER_ID" beside
	// "user_id") is an unexpected property, not a second value that Go's
	// case-insensitive JSON decoding might store past validation.
	huma.ValidateStrictCasing = true
}

// rejectBadText answers 422 to a JSON request body that holds invalid UTF-8
// or a NUL character in any string, key or value. Go's JSON decoding would
// turn the first into U+FFFD silently, and PostgreSQL refuses the second
// with an error that would surface as a 500.
func rejectBadText(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		r, _ := humago.Unwrap(ctx)
		op := ctx.Operation()
		if r == nil || op == nil || op.RequestBody == nil || r.Body == nil || r.Body == http.NoBody || !isJSON(r.Header.Get("Content-Type")) {
			next(ctx)
			return
		}
		limit := op.MaxBodyBytes
		if limit <= 0 {
			limit = 1 << 20
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		rest := r.Body
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), rest), rest}
		if err != nil || int64(len(body)) > limit {
			next(ctx) // Huma reports the read error or the size.
			return
		}
		if detail := badText(body); detail != nil {
			_ = huma.WriteErr(api, ctx, http.StatusUnprocessableEntity, "validation failed", detail)
			return
		}
		next(ctx)
	}
}

func isJSON(contentType string) bool {
	if contentType == "" {
		return true // Huma assumes JSON
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// badText returns what is wrong with the text of a JSON body, or nil. A
// body that is not JSON at all is left to Huma.
func badText(body []byte) *huma.ErrorDetail {
	if !utf8.Valid(body) {
		return &huma.ErrorDetail{Location: "body", Message: "is not valid UTF-8"}
	}
	if !bytes.Contains(body, []byte(`\u0000`)) {
		return nil // the only way to write NUL in valid JSON
	}
	var v any
	if json.Unmarshal(body, &v) != nil {
		return nil
	}
	if loc := findNUL(v, "body"); loc != "" {
		return &huma.ErrorDetail{Location: loc, Message: `contains a NUL character (\u0000)`}
	}
	return nil
}

// findNUL returns the location of the first string in v that holds NUL.
func findNUL(v any, loc string) string {
	switch v := v.(type) {
	case string:
		if strings.IndexByte(v, 0) >= 0 {
			return loc
		}
	case []any:
		for i, e := range v {
			if l := findNUL(e, loc+"["+strconv.Itoa(i)+"]"); l != "" {
				return l
			}
		}
	case map[string]any:
		for k, e := range v {
			if strings.IndexByte(k, 0) >= 0 {
				return loc
			}
			if l := findNUL(e, loc+"."+k); l != "" {
				return l
			}
		}
	}
	return ""
}
