// Command shopctl is the shop's operator tool: it answers questions about
// the running shop from the outside. `shopctl -h` lists its commands.
//
//	shopctl trace ORDER_ID     the order's trace from Jaeger, as a tree
//	shopctl dlq list [STREAM]  the dead letters of the streams
//	shopctl dlq replay STREAM  puts dead letters back on their stream
//	shopctl order ORDER_ID     all the shop knows about one order
//
// Each command is an entry in commands: a name, a one-line summary, the
// environment it reads and a run function with its own flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
)

// command is one subcommand of shopctl.
type command struct {
	name    string
	args    string // the arguments after the name, for the usage line
	summary string // one line, for the list of commands
	help    string // a paragraph, for the command's own -h
	env     []envVar
	run     func(ctx context.Context, fs *flag.FlagSet, args []string, stdout io.Writer) error
}

// envVar is a variable a command reads.
type envVar struct {
	name, help, def string
}

// usageError is a mistake in the command line: it is reported with the
// command's usage and exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

var commands = []command{traceCommand, dlqCommand, orderCommand}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole program; it returns the exit status: 0, 1 when the
// command failed, 2 for a usage mistake.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		fmt.Fprintln(stderr, "\nshopctl: no command given")
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		fs := flag.NewFlagSet("shopctl "+c.name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.Usage = func() { commandUsage(stderr, c, fs) }
		err := c.run(ctx, fs, args[1:], stdout)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case strings.HasPrefix(err.Error(), "flag provided but not defined") || strings.HasPrefix(err.Error(), "invalid "):
			// The flag package has printed the usage already.
			fmt.Fprintf(stderr, "\nshopctl %s: %v\n", c.name, err)
			return 2
		case errors.As(err, new(usageError)):
			commandUsage(stderr, c, fs)
			fmt.Fprintf(stderr, "\nshopctl %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "shopctl %s: %v\n", c.name, err)
			return 1
		}
	}
	usage(stderr)
	fmt.Fprintf(stderr, "\nshopctl: unknown command %q\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: shopctl COMMAND [flags] [arguments]\n\nThe shop's operator tool.\n\nCommands:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.summary)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nEnvironment:")
	printEnv(w, allEnv())
	fmt.Fprintln(w, "\n`shopctl COMMAND -h` describes a command and its flags.")
}

func commandUsage(w io.Writer, c command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: shopctl %s [flags] %s\n\n%s\n", c.name, c.args, c.help)
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
	if len(c.env) > 0 {
		fmt.Fprintln(w, "\nEnvironment:")
		printEnv(w, c.env)
	}
}

func printEnv(w io.Writer, vars []envVar) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, v := range vars {
		fmt.Fprintf(tw, "  %s\t%s (default %q)\n", v.name, v.help, v.def)
	}
	tw.Flush()
}

// allEnv lists every variable any command reads, once.
func allEnv() []envVar {
	seen := map[string]bool{}
	var out []envVar
	for _, c := range commands {
		for _, v := range c.env {
			if !seen[v.name] {
				seen[v.name] = true
				out = append(out, v)
			}
		}
	}
	return out
}

// getenv returns the variable's value, or its default.
func (v envVar) get() string {
	if s, ok := os.LookupEnv(v.name); ok && s != "" {
		return s
	}
	return v.def
}
