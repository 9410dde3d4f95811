package money

import "github.com/danielgtaylor/huma/v2"

// PositivePattern matches exactly the text ParsePositive accepts: a decimal
// greater than 0 and at most 1000000000.00, with at most two fraction
// digits, no sign, exponent or leading zeros. Generated clients can check an
// amount with it before sending; the services answer 422 for anything else,
// with the reason (see Explain).
const PositivePattern = `^(0\.(0[1-9]|[1-9][0-9]?)|[1-9][0-9]{0,8}(\.[0-9]{1,2})?|1000000000(\.00?)?)$`

// AmountPattern matches what the services write for an Amount: exactly two
// fraction digits, a minus sign for a negative amount.
const AmountPattern = `^-?(0|[1-9][0-9]*)\.[0-9]{2}$`

// Schema describes Amount in OpenAPI: always a decimal string with two
// fraction digits, never a JSON number, so no generated client reads it
// into binary floating point.
func (Amount) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{
		Type: huma.TypeString,
		Description: "Amount of money in major units, written as a decimal string with exactly two " +
			"fraction digits (\"12.30\"). Read it as a decimal, never as a binary floating-point number.",
		Pattern:  AmountPattern,
		Examples: []any{"12.30"},
	}
}

// Schema describes Positive in OpenAPI: a decimal string greater than 0, at
// most MaxAmount, with at most two fraction digits. A JSON number is refused:
// a client that sends one has usually been through binary floating point
// already (0.1 + 0.2 = 0.30000000000000004).
func (Positive) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{
		Type: huma.TypeString,
		Description: "Amount of money in major units, as a decimal string: greater than 0, at most " +
			MaxAmount.String() + ", with at most two fraction digits (\"12.30\", \"12.3\" and \"12\" are " +
			"fine; \"0\", \"-1.00\", \"1.001\" and \"1e2\" are not). A JSON number is not accepted.",
		Pattern:  PositivePattern,
		Examples: []any{"12.30"},
	}
}

// Explain says what is wrong with text a client sent as a positive amount,
// in the words of ParsePositive's errors ("must have at most two fraction
// digits"), or "" when nothing is.
func Explain(text string) string {
	if _, err := ParsePositive(text); err != nil {
		return err.Error()
	}
	return ""
}
