package money

import "github.com/danielgtaylor/huma/v2"

// decimalPattern is the text Parse accepts for a positive amount.
const decimalPattern = `^(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?$`

// Schema describes Amount in OpenAPI: always a string with two fraction digits.
func (Amount) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{
		Type:        huma.TypeString,
		Description: "Amount of money in major units with exactly two fraction digits.",
		Pattern:     `^-?[0-9]+\.[0-9]{2}$`,
		Examples:    []any{"12.30"},
	}
}

// Schema describes Positive in OpenAPI: a string or a number, greater than
// zero, at most MaxAmount, with at most two fraction digits.
func (Positive) Schema(huma.Registry) *huma.Schema {
	maxAmount := float64(MaxAmount / 100)
	zero := 0.0
	return &huma.Schema{
		Description: "Amount of money in major units: greater than zero, at most " + MaxAmount.String() +
			", with at most two fraction digits. Send it as a string (\"12.30\") to keep it exact " +
			"in every client; a JSON number (12.3) is accepted too.",
		OneOf: []*huma.Schema{
			{
				Type:               huma.TypeString,
				Pattern:            decimalPattern,
				PatternDescription: "a decimal amount such as 12.30",
			},
			{Type: huma.TypeNumber, ExclusiveMinimum: &zero, Maximum: &maxAmount},
		},
		Examples: []any{"12.30"},
	}
}
