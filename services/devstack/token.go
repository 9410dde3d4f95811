package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"shop/services/devstack/stack"
	"shop/services/platform/authtoken"
)

// tokenCommand is `devstack token -user N`: it prints a token for user N
// signed with JWT_HS256_SECRET (for OIDC_AUDIENCE, if set), which the
// gateway of a devstack started with the same secret accepts. It returns
// the exit status.
func tokenCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devstack token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.Int64("user", 0, "the user id the token is for (its sub); required, positive")
	ttl := fs.Duration("ttl", authtoken.DefaultTTL, "how long the token is valid")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: devstack token -user N [-ttl D]\n\n"+
			"Prints a bearer token for user N, signed with JWT_HS256_SECRET (at least 32 bytes), which a\n"+
			"devstack or gateway started with the same secret accepts. OIDC_AUDIENCE sets its aud (default shop).\n\n"+
			"Flags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "devstack token: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *user <= 0 {
		fmt.Fprintln(stderr, "devstack token: -user N is required, a positive user id")
		return 2
	}
	if *ttl <= 0 {
		fmt.Fprintln(stderr, "devstack token: -ttl must be positive")
		return 2
	}
	secret := getenv("JWT_HS256_SECRET")
	if secret == "" {
		fmt.Fprintln(stderr, "devstack token: JWT_HS256_SECRET is not set; give it the secret the running devstack uses "+
			"(it prints one at start when it made its own)")
		return 2
	}
	tok, err := authtoken.Mint([]byte(secret), *user, authtoken.Options{Audience: getenv("OIDC_AUDIENCE"), TTL: *ttl})
	if err != nil {
		fmt.Fprintf(stderr, "devstack token: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, tok)
	return 0
}

// banner tells where the shop runs and, when its gateway takes tokens
// devstack can mint, gives ready ones for users 1 and 2 and a curl line
// that uses the first.
func banner(w io.Writer, shop *stack.Shop, cfg settings) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nShop is running.\n  API:      %s\n  Docs:     %s/docs\n  Payments: %s/docs\n  Orders:   %s/docs\n  Data:     %s\n",
		shop.GatewayURL, shop.GatewayURL, shop.PaymentsURL, shop.OrdersURL, dataDescription(shop.DataDir))
	switch {
	case cfg.Auth == "off":
		b.WriteString("\nAuthentication is off (AUTH=off): the API takes requests without a token.\n")
	case shop.JWTSecret == "":
		fmt.Fprintf(&b, "\nThe gateway takes tokens from %s (OIDC_ISSUER_URL) only: get one there.\n", cfg.OIDCIssuerURL)
	default:
		tokens := make([]string, 2)
		for i := range tokens {
			tok, err := shop.Token(int64(i + 1))
			if err != nil {
				return err
			}
			tokens[i] = tok
		}
		b.WriteString("\nEvery API call needs a token (Authorization: Bearer …); these are valid for 24 hours.\n")
		fmt.Fprintf(&b, "  user 1:   %s\n  user 2:   %s\n", tokens[0], tokens[1])
		if cfg.JWTSecret == "" {
			fmt.Fprintf(&b, "  Secret:   %s (fresh for this run; JWT_HS256_SECRET=… keeps one)\n", shop.JWTSecret)
		}
		b.WriteString("  More:     JWT_HS256_SECRET=<the secret> go run ./services/devstack token -user 3\n")
		b.WriteString("\nTry it as user 1 (in the docs, paste a token into Authorize):\n")
		fmt.Fprintf(&b, "  export TOKEN=%s\n", tokens[0])
		fmt.Fprintf(&b, "  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{\"user_id\":1}' %s/accounts\n",
			shop.GatewayURL)
	}
	b.WriteString("\nPress Ctrl-C to stop.\n\n")
	_, err := io.WriteString(w, b.String())
	return err
}
