package money_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"shop/services/platform/money"
)

// FuzzParse checks, for any text, that Parse either refuses it or returns an
// amount that formats back to the same value, and that refused text is
// refused by JSON decoding too. The seed corpus runs in every `go test`.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"0.1", "0.10", "1e2", "1.005", "-0", "00.50", " 5", "NaN", "1e300",
		"1000000000.01", "1000000000.00", "12.30", "-12.3", "9", ".5", "5.",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := money.Parse(s)
		if err != nil {
			var p money.Positive
			if json.Unmarshal([]byte(strconv.Quote(s)), &p) == nil {
				t.Fatalf("Parse(%q) failed (%v) but JSON decoding accepted it", s, err)
			}
			return
		}
		if a > money.MaxAmount || a < -money.MaxAmount {
			t.Fatalf("Parse(%q) = %d, out of range", s, a)
		}
		again, err := money.Parse(a.String())
		if err != nil || again != a {
			t.Fatalf("Parse(%q) = %d formats as %q which parses to %d, %v", s, a, a, again, err)
		}
		// The canonical text has the same digits as the input, padded.
		whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
		want := whole + "." + (frac + "00")[:2]
		if a != 0 && strings.TrimPrefix(a.String(), "-") != want {
			t.Fatalf("Parse(%q) formats as %q, want %q", s, a, want)
		}
		p, perr := money.ParsePositive(s)
		if (a > 0) != (perr == nil) || (perr == nil && money.Amount(p) != a) {
			t.Fatalf("ParsePositive(%q) = %d, %v; Parse gave %d", s, p, perr, a)
		}
	})
}
