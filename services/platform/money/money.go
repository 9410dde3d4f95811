// Package money holds amounts of money as integer minor units (cents) and
// converts them to and from the decimal text clients read and write. Nothing
// here uses floating point: "0.1" and 0.10 both parse to exactly 10 cents,
// and 1.005 is refused rather than rounded.
package money

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Amount is a sum of money in minor units (cents), such as a balance. It is
// written to JSON as a decimal string with two fraction digits: "12.30".
type Amount int64

// Positive is an amount a client sends: greater than zero and at most
// MaxAmount, with at most two fraction digits. The HTTP APIs take it as a
// JSON string only ("12.30", see Schema); decoding also reads a JSON number's
// text (12.3) by the same rules, never through float64.
type Positive Amount

// MaxAmount is the largest amount a client may send in one request,
// 1,000,000,000.00. It keeps every sum the services compute far from int64
// overflow.
const MaxAmount Amount = 1_000_000_000_00

// Errors returned by Parse and ParsePositive, worded for clients.
var (
	ErrSyntax      = errors.New("must be a decimal number such as 12.30, without sign, exponent or leading zeros")
	ErrPrecision   = errors.New("must have at most two fraction digits")
	ErrNotPositive = errors.New("must be greater than 0")
	ErrTooLarge    = fmt.Errorf("must be at most %s", MaxAmount)
)

// Parse reads an amount written as decimal digits with an optional minus sign
// and an optional fraction of one or two digits: "12", "12.3", "-0.30".
// Plus signs, exponents, spaces, leading zeros ("00.50"), a bare dot, NaN and
// infinities are refused; so is anything whose size exceeds MaxAmount.
func Parse(s string) (Amount, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || !digits(whole) || (hasDot && (frac == "" || !digits(frac))) {
		return 0, ErrSyntax
	}
	if len(whole) > 1 && whole[0] == '0' {
		return 0, fmt.Errorf("%w (no leading zeros)", ErrSyntax)
	}
	if len(frac) > 2 {
		return 0, ErrPrecision
	}
	// MaxAmount has 10 whole digits: anything longer is too large, and the
	// check keeps ParseInt far from overflow.
	if len(whole) > 10 {
		return 0, ErrTooLarge
	}
	units, _ := strconv.ParseInt(whole, 10, 64) // at most 10 digits, checked above
	cents := int64(0)
	if frac != "" {
		cents, _ = strconv.ParseInt(frac, 10, 64) // one or two digits
		if len(frac) == 1 {
			cents *= 10
		}
	}
	a := Amount(units*100 + cents)
	if a > MaxAmount {
		return 0, ErrTooLarge
	}
	if neg {
		a = -a
	}
	return a, nil
}

// ParsePositive is Parse for amounts a client pays or deposits: it also
// refuses zero and negative amounts.
func ParsePositive(s string) (Positive, error) {
	a, err := Parse(s)
	if err != nil {
		return 0, err
	}
	if a <= 0 {
		return 0, ErrNotPositive
	}
	return Positive(a), nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats the amount with two fraction digits: 1230 → "12.30".
func (a Amount) String() string {
	sign := ""
	u := uint64(a)
	if a < 0 {
		sign = "-"
		u = -u
	}
	return fmt.Sprintf("%s%d.%02d", sign, u/100, u%100)
}

// MarshalJSON writes the amount as a JSON string: "12.30".
func (a Amount) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, a.String()), nil
}

// UnmarshalJSON reads an amount written as a JSON string ("12.30") or a JSON
// number (12.3) by the rules of Parse. A number's text is read as decimal
// digits, never through float64.
func (a *Amount) UnmarshalJSON(b []byte) error {
	s, err := jsonText(b)
	if err != nil {
		return err
	}
	v, err := Parse(s)
	if err != nil {
		return fmt.Errorf("amount %w", err)
	}
	*a = v
	return nil
}

// String formats the amount with two fraction digits.
func (p Positive) String() string { return Amount(p).String() }

// MarshalJSON writes the amount as a JSON string: "12.30".
func (p Positive) MarshalJSON() ([]byte, error) { return Amount(p).MarshalJSON() }

// UnmarshalJSON reads a positive amount by the rules of ParsePositive.
func (p *Positive) UnmarshalJSON(b []byte) error {
	s, err := jsonText(b)
	if err != nil {
		return err
	}
	v, err := ParsePositive(s)
	if err != nil {
		return fmt.Errorf("amount %w", err)
	}
	*p = v
	return nil
}

// jsonText returns the text of a JSON string, or the literal text of any
// other JSON value (a number, or something Parse will refuse).
func jsonText(b []byte) (string, error) {
	s := string(b)
	if len(s) > 0 && s[0] == '"' {
		unq, err := strconv.Unquote(s)
		if err != nil {
			return "", fmt.Errorf("amount %w", ErrSyntax)
		}
		return unq, nil
	}
	return s, nil
}
