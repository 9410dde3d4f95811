package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"shop/services/platform/database"
	"shop/services/platform/money"
	"shop/services/shopctl/internal/forensics"
)

var (
	ordersDatabaseURL   = envVar{"ORDERS_DATABASE_URL", "the orders service's DATABASE_URL (postgres://… or sqlite:PATH)", "sqlite:data/orders.db"}
	paymentsDatabaseURL = envVar{"PAYMENTS_DATABASE_URL", "the payments service's DATABASE_URL", "sqlite:data/payments.db"}
)

var orderCommand = command{
	name:    "order",
	args:    "ORDER_ID",
	summary: "print all the shop knows about one order",
	help: "Prints, reading both services' databases and Redis (never writing):\n\n" +
		"  the order        status, cancel reason, times, and its payment requests: how many were sent,\n" +
		"                   the last when, and when reconciliation sends the next while it stays NEW\n" +
		"  the payment      the outcome the payments service recorded, and the debit in its ledger\n" +
		"  messages         the outbox rows that carried its requests (orders) and results (payments),\n" +
		"                   each with whether the relay published it and whether the other service's\n" +
		"                   inbox records it as applied, and its trace id\n" +
		"  dead letters     entries of payments.requests.dlq and payments.results.dlq naming the order\n" +
		"  traces           the order's trace id (its creation, its payment and any request sent again;\n" +
		"                   `shopctl trace ORDER_ID` prints it), and any other trace a message is in\n\n" +
		"Outbox rows are kept a day after they are published and inbox records a week; older ones are gone.\n" +
		"Exit status 1 when the order does not exist.",
	env: []envVar{ordersDatabaseURL, paymentsDatabaseURL, redisURL},
	run: runOrder,
}

func runOrder(ctx context.Context, fs *flag.FlagSet, args []string, stdout io.Writer) error {
	ordersURL := fs.String("orders-db", ordersDatabaseURL.get(), "orders database URL (overrides ORDERS_DATABASE_URL)")
	paymentsURL := fs.String("payments-db", paymentsDatabaseURL.get(), "payments database URL (overrides PAYMENTS_DATABASE_URL)")
	rurl := fs.String("redis", redisURL.get(), "Redis URL (overrides REDIS_URL)")
	// Flags may follow the ORDER_ID.
	var pos []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(pos) != 1 {
		return usageError{"want exactly one ORDER_ID"}
	}
	id, err := uuid.Parse(pos[0])
	if err != nil {
		return usageError{fmt.Sprintf("ORDER_ID %q is not a UUID", pos[0])}
	}
	for _, u := range []struct{ name, url string }{{"orders database", *ordersURL}, {"payments database", *paymentsURL}} {
		if err := database.ValidateURL(u.url); err != nil {
			return usageError{fmt.Sprintf("%s URL: %v", u.name, err)}
		}
	}
	opts, err := redis.ParseURL(*rurl)
	if err != nil {
		return usageError{fmt.Sprintf("Redis URL: %v", err)}
	}
	ordersDB, err := database.Open(ctx, *ordersURL, database.Options{MaxOpenConns: 1})
	if err != nil {
		return fmt.Errorf("orders database: %w", err)
	}
	defer ordersDB.Close()
	paymentsDB, err := database.Open(ctx, *paymentsURL, database.Options{MaxOpenConns: 1})
	if err != nil {
		return fmt.Errorf("payments database: %w", err)
	}
	defer paymentsDB.Close()
	rdb := redis.NewClient(opts)
	defer rdb.Close()

	r, err := forensics.Gather(ctx, ordersDB, paymentsDB, rdb, id)
	if errors.Is(err, forensics.ErrNotFound) {
		return fmt.Errorf("the orders database holds no order %s", id)
	}
	if err != nil {
		return err
	}
	return printReport(stdout, r, time.Now())
}

func printReport(w io.Writer, r forensics.Report, now time.Time) error {
	o := r.Order
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "order\t%s\n", o.ID)
	fmt.Fprintf(tw, "  status\t%s\n", o.Status)
	if o.CancelReason != nil {
		fmt.Fprintf(tw, "  cancel reason\t%s\n", *o.CancelReason)
	}
	fmt.Fprintf(tw, "  user\t%d\n", o.UserID)
	fmt.Fprintf(tw, "  amount\t%s\n", money.Amount(o.Amount))
	fmt.Fprintf(tw, "  description\t%s\n", dash(oneLine(o.Description)))
	fmt.Fprintf(tw, "  created\t%s\n", stamp(o.CreatedAt))
	fmt.Fprintf(tw, "  updated\t%s\n", stamp(o.UpdatedAt))
	fmt.Fprintf(tw, "  payment requests\t%d, the last at %s", o.PaymentRequests, stamp(o.PaymentRequestedAt))
	if o.Status == "NEW" {
		fmt.Fprintf(tw, "; the next at %s (in %s)", stamp(o.PaymentRetryAt), o.PaymentRetryAt.Sub(now).Round(time.Second))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "payment\tas the payments service recorded it")
	if p := r.Payment; p != nil {
		fmt.Fprintf(tw, "  outcome\t%s\n", p.Status)
		if p.Reason != "" {
			fmt.Fprintf(tw, "  reason\t%s\n", p.Reason)
		}
		fmt.Fprintf(tw, "  decided\t%s, for user %d, amount %s\n", stamp(p.CreatedAt), p.UserID, money.Amount(p.Amount))
		if p.UserID != o.UserID || p.Amount != o.Amount {
			fmt.Fprintln(tw, "  MISMATCH\tthe payment's user or amount is not the order's")
		}
	} else {
		fmt.Fprintln(tw, "  outcome\tnone recorded: payments has not decided")
	}
	if d := r.Debit; d != nil {
		fmt.Fprintf(tw, "  debit\t%s at %s (ledger %s)\n", money.Amount(d.Amount), stamp(d.CreatedAt), d.ID)
	} else {
		fmt.Fprintln(tw, "  debit\tnone")
	}
	if r.Debit != nil && o.Status != "FINISHED" {
		fmt.Fprintf(tw, "  ATTENTION\tdebited, yet the order is %s (a result still on its way, or lost: reconciliation resends it)\n", o.Status)
	}
	fmt.Fprintf(tw, "traces\t%s\n", dash(strings.Join(r.TraceIDs(), ", ")))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nmessages: %d\n", len(r.Messages))
	if len(r.Messages) > 0 {
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  FROM\tMESSAGE\tSTREAM\tOCCURRED\tPUBLISHED\tAPPLIED\tTRACE\tPAYLOAD")
		for _, m := range r.Messages {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Service, m.ID, m.Stream, stamp(m.OccurredAt),
				when(m.PublishedAt, "no"), when(m.ProcessedAt, "no"), dash(m.TraceID()), oneLine(m.Payload))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintf(w, "\ndead letters: %d\n", len(r.DeadLetters))
	if len(r.DeadLetters) > 0 {
		tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  STREAM\tENTRY\tMESSAGE\tGROUP\tDELIVERIES\tAGE\tREASON")
		for _, l := range r.DeadLetters {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\t%s\n", l.Stream, l.EntryID, dash(l.MessageID), dash(l.Group),
				l.Deliveries, now.Sub(l.At).Truncate(time.Second), oneLine(l.Reason))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w, "  (`shopctl dlq replay STREAM -id ENTRY` puts one back once its cause is fixed)")
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func when(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return stamp(*t)
}
