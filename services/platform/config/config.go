// Package config reads a service's configuration from the environment into
// one struct, answers -h with the variables it reads, and describes the
// effective configuration for the start-up log with secrets masked.
//
// Fields are tagged for github.com/caarlos0/env (`env:"HTTP_ADDR"
// envDefault:":8000"`) plus `help:"…"` for -h; a field tagged
// `secret:"true"` is never printed, and a URL's password never is either.
// A field without envDefault keeps the value it had before Load, so one
// struct can serve several binaries with different defaults.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"text/tabwriter"

	"github.com/caarlos0/env/v11"
)

// ErrHelp is returned by Load when the arguments asked for help; the usage
// has been printed and the program should exit with status 0.
var ErrHelp = flag.ErrHelp

// Validator is implemented by configuration structs that check their values
// after they are read.
type Validator interface {
	Validate() error
}

// Load parses args (only -h is defined besides the flags set up by the
// caller in fs, which may be nil) and then fills cfg from the environment.
// Any error names the variable and the bad value's problem.
func Load(name string, args []string, fs *flag.FlagSet, cfg any, out io.Writer) error {
	if fs == nil {
		fs = flag.NewFlagSet(name, flag.ContinueOnError)
	}
	fs.SetOutput(out)
	fs.Usage = func() { Usage(out, name, fs, cfg) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := env.Parse(cfg); err != nil {
		return fmt.Errorf("configuration: %w", explain(err, cfg))
	}
	if v, ok := cfg.(Validator); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
	}
	return nil
}

// Defaults fills cfg's fields from their envDefault tags alone, ignoring
// the environment: the configuration a program gets when nothing is set. A
// program that runs services in-process (devstack) starts from it.
func Defaults(cfg any) error {
	return env.ParseWithOptions(cfg, env.Options{Environment: map[string]string{}})
}

// explain rewrites env's errors to name the variable rather than the Go
// field: "SHUTDOWN_TIMEOUT: time: invalid duration "soon"".
func explain(err error, cfg any) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	keys := map[string]string{}
	for _, f := range fields(cfg) {
		keys[f.name] = f.tag.Get("env")
	}
	var errs []error
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) && keys[pe.Name] != "" {
			e = fmt.Errorf("%s: %w", keys[pe.Name], pe.Err)
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// Usage writes the command's flags and the environment variables it reads,
// with their defaults and help texts.
func Usage(w io.Writer, name string, fs *flag.FlagSet, cfg any) {
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		fmt.Fprintf(w, "Usage: %s [flags]\n\nFlags:\n", name)
		fs.PrintDefaults()
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "Usage: %s\n\n", name)
	}
	fmt.Fprintln(w, "Environment:")
	PrintEnv(w, cfg)
}

// PrintEnv writes the environment variables cfg reads, one a line, with
// their help texts and defaults.
func PrintEnv(w io.Writer, cfg any) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, f := range fields(cfg) {
		// A value set before loading is the default too (see Config).
		def := ""
		if d, ok := f.tag.Lookup("envDefault"); ok {
			def = fmt.Sprintf(" (default %q)", d)
		} else if !f.value.IsZero() {
			def = fmt.Sprintf(" (default %q)", fmt.Sprint(f.value.Interface()))
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", f.tag.Get("env"), f.tag.Get("help"), def)
	}
	tw.Flush()
}

// Attrs describes the effective configuration as slog attributes keyed by
// variable name, with secrets and URL passwords masked.
func Attrs(cfg any) []slog.Attr {
	var attrs []slog.Attr
	for _, f := range fields(cfg) {
		name := f.tag.Get("env")
		if f.tag.Get("secret") == "true" {
			if !f.value.IsZero() {
				attrs = append(attrs, slog.String(name, "****"))
			}
			continue
		}
		attrs = append(attrs, slog.String(name, Mask(fmt.Sprint(f.value.Interface()))))
	}
	return attrs
}

// Mask hides the password of a URL; any other text is returned as it is.
func Mask(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if _, ok := u.User.Password(); ok {
		return u.Redacted()
	}
	// Some URLs carry the password as a query parameter.
	q := u.Query()
	for _, k := range []string{"password", "pass"} {
		if q.Has(k) {
			q.Set(k, "xxxxx")
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

type field struct {
	name  string
	tag   reflect.StructTag
	value reflect.Value
}

// fields lists the env-tagged fields of cfg, embedded structs included.
func fields(cfg any) []field {
	v := reflect.Indirect(reflect.ValueOf(cfg))
	var out []field
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			fv := v.Field(i)
			if key, ok := sf.Tag.Lookup("env"); ok && key != "-" {
				out = append(out, field{name: sf.Name, tag: sf.Tag, value: fv})
				continue
			}
			if sf.Anonymous && fv.Kind() == reflect.Struct {
				walk(fv)
			}
		}
	}
	walk(v)
	return out
}
