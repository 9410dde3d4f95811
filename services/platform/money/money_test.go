package money_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"

	"shop/services/platform/money"
)

func TestPositiveUnmarshalJSON(t *testing.T) {
	tests := []struct {
		in      string
		want    money.Positive
		wantErr error
	}{
		{in: `"12.30"`, want: 1230},
		{in: `"12.3"`, want: 1230},
		{in: `"12"`, want: 1200},
		{in: `12.3`, want: 1230},
		{in: `0.10`, want: 10},
		{in: `"0.1"`, want: 10},
		{in: `"0.01"`, want: 1},
		{in: `1`, want: 100},
		{in: `"1000000000.00"`, want: money.Positive(money.MaxAmount)},
		{in: `1000000000`, want: money.Positive(money.MaxAmount)},

		{in: `"0"`, wantErr: money.ErrNotPositive},
		{in: `0`, wantErr: money.ErrNotPositive},
		{in: `"0.00"`, wantErr: money.ErrNotPositive},
		{in: `"-0"`, wantErr: money.ErrNotPositive},
		{in: `-0`, wantErr: money.ErrNotPositive},
		{in: `"-5.00"`, wantErr: money.ErrNotPositive},
		{in: `-1`, wantErr: money.ErrNotPositive},
		{in: `"1.005"`, wantErr: money.ErrPrecision},
		{in: `1.005`, wantErr: money.ErrPrecision},
		{in: `0.001`, wantErr: money.ErrPrecision},
		{in: `"1000000000.01"`, wantErr: money.ErrTooLarge},
		{in: `1000000000.01`, wantErr: money.ErrTooLarge},
		{in: `99999999999`, wantErr: money.ErrTooLarge},
		{in: `1e300`, wantErr: money.ErrSyntax},
		{in: `1e2`, wantErr: money.ErrSyntax},
		{in: `1E2`, wantErr: money.ErrSyntax},
		{in: `0.1e1`, wantErr: money.ErrSyntax},
		{in: `"00.50"`, wantErr: money.ErrSyntax},
		{in: `"01"`, wantErr: money.ErrSyntax},
		{in: `" 5"`, wantErr: money.ErrSyntax},
		{in: `"5 "`, wantErr: money.ErrSyntax},
		{in: `"+5"`, wantErr: money.ErrSyntax},
		{in: `"NaN"`, wantErr: money.ErrSyntax},
		{in: `"Infinity"`, wantErr: money.ErrSyntax},
		{in: `"1."`, wantErr: money.ErrSyntax},
		{in: `".5"`, wantErr: money.ErrSyntax},
		{in: `"1.2.3"`, wantErr: money.ErrSyntax},
		{in: `"1,50"`, wantErr: money.ErrSyntax},
		{in: `""`, wantErr: money.ErrSyntax},
		{in: `"١٢"`, wantErr: money.ErrSyntax}, // non-ASCII digits
		{in: `true`, wantErr: money.ErrSyntax},
		{in: `null`, wantErr: money.ErrSyntax},
		{in: `[]`, wantErr: money.ErrSyntax},
		{in: `{}`, wantErr: money.ErrSyntax},
		{in: `"99999999999999999999999"`, wantErr: money.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var body struct {
				Amount money.Positive `json:"amount"`
			}
			err := json.Unmarshal([]byte(`{"amount":`+tt.in+`}`), &body)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Unmarshal(%s) error = %v, want %v", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tt.in, err)
			}
			if body.Amount != tt.want {
				t.Fatalf("Unmarshal(%s) = %d, want %d", tt.in, body.Amount, tt.want)
			}
		})
	}
}

func TestAmountJSON(t *testing.T) {
	tests := []struct {
		cents money.Amount
		text  string
	}{
		{0, `"0.00"`},
		{1, `"0.01"`},
		{10, `"0.10"`},
		{1230, `"12.30"`},
		{-1230, `"-12.30"`},
		{money.MaxAmount, `"1000000000.00"`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.cents)
		if err != nil || string(got) != tt.text {
			t.Errorf("Marshal(%d) = %s, %v; want %s", tt.cents, got, err, tt.text)
		}
		var back money.Amount
		if err := json.Unmarshal(got, &back); err != nil || back != tt.cents {
			t.Errorf("Unmarshal(%s) = %d, %v; want %d", got, back, err, tt.cents)
		}
	}
}

func TestPositiveMarshalJSON(t *testing.T) {
	got, err := json.Marshal(struct {
		A money.Positive `json:"a"`
	}{A: 705})
	if err != nil || string(got) != `{"a":"7.05"}` {
		t.Fatalf("Marshal = %s, %v", got, err)
	}
}

// TestPositivePattern checks that the published pattern accepts exactly the
// text ParsePositive accepts, on the edges and on every short decimal.
func TestPositivePattern(t *testing.T) {
	re := regexp.MustCompile(money.PositivePattern)
	check := func(s string) {
		_, err := money.ParsePositive(s)
		if re.MatchString(s) != (err == nil) {
			t.Errorf("%q: pattern matches %v, ParsePositive error %v", s, re.MatchString(s), err)
		}
		if (err == nil) != (money.Explain(s) == "") {
			t.Errorf("%q: Explain = %q, ParsePositive error %v", s, money.Explain(s), err)
		}
	}
	for _, s := range []string{
		"0", "0.0", "0.00", "0.01", "0.1", "0.10", "0.09", "0.9", "0.99", "1", "1.0", "1.00", "1.001",
		"999999999.99", "1000000000", "1000000000.0", "1000000000.00", "1000000000.01", "1000000001",
		"9999999999", "10000000000", "-1.00", "1e2", "01", "00.5", ".5", "5.", "+5", " 5", "",
	} {
		check(s)
	}
	alphabet := []byte("0159.-")
	var gen func(prefix []byte, n int)
	gen = func(prefix []byte, n int) {
		check(string(prefix))
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(append(prefix, c), n-1)
		}
	}
	gen(nil, 6)
}

func TestExplainSaysWhatIsWrong(t *testing.T) {
	for in, want := range map[string]string{
		"1.001":         "at most two fraction digits",
		"0":             "must be greater than 0",
		"-1.00":         "must be greater than 0",
		"1000000000.01": "at most 1000000000.00",
		"1e2":           "decimal number such as 12.30",
	} {
		if got := money.Explain(in); !strings.Contains(got, want) {
			t.Errorf("Explain(%q) = %q, want it to say %q", in, got, want)
		}
	}
}
