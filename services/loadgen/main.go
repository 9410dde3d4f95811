// Command loadgen drives the shop through its gateway and reports what it
// sustained: it creates users with accounts and top-ups, places orders at a
// target rate or flat out (a share of them unaffordable), follows them until
// they settle, and checks the shop's invariants through the API. It exits 1
// when an invariant fails or orders stay unsettled past the deadline.
//
// Users are numbered from a random base each run (-user-base to choose it),
// so a run never mixes its balances with an earlier run's.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"shop/services/loadgen/internal/load"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal stops placing orders and still reports; a second
		// one ends the process.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg load.Config
	var asJSON, quiet bool
	fs.StringVar(&cfg.Gateway, "gateway", "http://localhost:8000", "gateway base URL")
	fs.IntVar(&cfg.Users, "users", 50, "users created, each with an account and a top-up of "+fmt.Sprint(load.TopUp/100))
	fs.IntVar(&cfg.Orders, "orders", 10000, "how many orders (with -duration: at most this many, if set)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "place orders for this long instead of a count (e.g. 30s)")
	fs.IntVar(&cfg.Workers, "workers", 16, "concurrent clients")
	fs.Float64Var(&cfg.Rate, "rate", 0, "orders per second, 0 = as fast as the workers go")
	fs.Float64Var(&cfg.Unaffordable, "unaffordable", 0.1, "share of orders larger than the balance")
	fs.DurationVar(&cfg.SettleTimeout, "settle-timeout", time.Minute, "how long orders may stay unsettled after the last one was placed")
	fs.Int64Var(&cfg.UserBase, "user-base", 0, "number users from base+1 (0: a random base, new users every run)")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", "", "the gateway's JWT_HS256_SECRET: mint a bearer token with it for each user (default: $JWT_HS256_SECRET; none when both are empty)")
	fs.BoolVar(&asJSON, "json", false, "print one JSON object at the end instead of the table")
	fs.BoolVar(&quiet, "quiet", false, "no progress line")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: loadgen [flags]\n\nLoads the shop through its gateway and reports what it sustained.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadgen: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if cfg.JWTSecret == "" {
		cfg.JWTSecret = os.Getenv("JWT_HS256_SECRET")
	}
	ordersSet := false
	fs.Visit(func(f *flag.Flag) { ordersSet = ordersSet || f.Name == "orders" })
	if cfg.Duration > 0 && !ordersSet {
		cfg.Orders = 0 // the duration alone ends the run
	}
	if !quiet {
		cfg.Progress = stderr
		cfg.TTY = isTerminal(stderr)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}

	rep, err := load.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "loadgen: %v\n", err)
			return 1
		}
	} else {
		rep.WriteTable(stdout)
	}
	if !rep.OK() {
		return 1
	}
	return 0
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
