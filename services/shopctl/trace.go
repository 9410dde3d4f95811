package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"shop/services/contract/shopattr"
	"time"

	"github.com/google/uuid"

	"shop/services/shopctl/internal/tracetree"
)

var jaegerURL = envVar{"JAEGER_URL", "Jaeger's query service (its UI address)", "http://localhost:16686"}

var traceCommand = command{
	name:    "trace",
	args:    "ORDER_ID",
	summary: "print the order's trace from Jaeger as a tree",
	help: "Prints the order's trace from Jaeger's query API as an indented tree: each span's service,\n" +
		"operation, duration and start offset from the beginning of the trace. The trace is the one\n" +
		"whose orders span \"POST /orders\" carries the tag " + string(shopattr.OrderID) + "=ORDER_ID.",
	env: []envVar{jaegerURL},
	run: runTrace,
}

func runTrace(ctx context.Context, fs *flag.FlagSet, args []string, stdout io.Writer) error {
	base := fs.String("jaeger", jaegerURL.get(), "Jaeger query URL (overrides JAEGER_URL)")
	lookback := fs.Duration("lookback", 7*24*time.Hour, "how far back to search for an order whose id carries no time (not a UUIDv7)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"want exactly one ORDER_ID"}
	}
	id, err := uuid.Parse(fs.Arg(0))
	if err != nil {
		return usageError{fmt.Sprintf("ORDER_ID %q is not a UUID", fs.Arg(0))}
	}
	// An order id is a UUIDv7: it says when the order was created, which
	// narrows Jaeger's search to that moment.
	end := time.Now().Add(time.Minute)
	start := end.Add(-*lookback)
	if id.Version() == 7 {
		sec, nsec := id.Time().UnixTime()
		created := time.Unix(sec, nsec)
		start, end = created.Add(-time.Minute), created.Add(time.Hour)
	}
	c := &tracetree.Client{BaseURL: *base}
	t, err := c.Find(ctx, tracetree.Query{
		Service: "orders", Operation: "POST /orders", Key: string(shopattr.OrderID), Value: id.String(), Start: start, End: end,
	})
	if errors.Is(err, tracetree.ErrNotFound) {
		return fmt.Errorf("Jaeger at %s holds no trace of order %s (is the shop sending its traces there?)", *base, id)
	}
	if err != nil {
		return err
	}
	return tracetree.Print(stdout, t)
}
