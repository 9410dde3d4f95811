package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"shop/services/shopctl/internal/deadletter"
)

var redisURL = envVar{"REDIS_URL", "Redis that carries the message streams", "redis://localhost:6379/0"}

var dlqCommand = command{
	name:    "dlq",
	args:    "list [STREAM] | replay STREAM (-id ENTRY_ID… | -all)",
	summary: "list or replay the dead-letter streams",
	help: "A consumer moves a message it could not process to the dead-letter stream STREAM.dlq.\n\n" +
		"  list [STREAM]    prints the dead letters of STREAM (of every stream that has any, without\n" +
		"                   STREAM): entry id, message id and type, group, deliveries, age, reason.\n" +
		"  replay STREAM    puts the dead letters chosen with -id (repeatable) or -all back on STREAM\n" +
		"                   as new entries carrying the original message, its message id included, so\n" +
		"                   the consumer's inbox ignores one that was processed after all. Each is\n" +
		"                   removed from STREAM.dlq in the same atomic step as it is re-added, never\n" +
		"                   before; replaying it again finds nothing. A dead letter whose message had\n" +
		"                   been deleted from the stream has no content and stays.\n\n" +
		"Replay after fixing what made the messages fail, or they come back.",
	env: []envVar{redisURL},
	run: runDLQ,
}

var streamEntryID = regexp.MustCompile(`^\d+-\d+$`)

func runDLQ(ctx context.Context, fs *flag.FlagSet, args []string, stdout io.Writer) error {
	url := fs.String("redis", redisURL.get(), "Redis URL (overrides REDIS_URL)")
	limit := fs.Int64("limit", 100, "list: at most this many entries per stream, oldest first (0: all)")
	all := fs.Bool("all", false, "replay: every dead letter of STREAM")
	var ids []string
	fs.Func("id", "replay: the dead letter with this entry id (as list prints it; repeatable)", func(s string) error {
		if !streamEntryID.MatchString(s) {
			return fmt.Errorf("%q is not a stream entry id like 1700000000000-0", s)
		}
		ids = append(ids, s)
		return nil
	})
	// Flags may follow the positional arguments (replay STREAM -all).
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
	if len(pos) == 0 {
		return usageError{"want list or replay"}
	}
	opts, err := redis.ParseURL(*url)
	if err != nil {
		return usageError{fmt.Sprintf("Redis URL: %v", err)}
	}
	switch pos[0] {
	case "list":
		if len(pos) > 2 {
			return usageError{"list takes at most one STREAM"}
		}
		if *all || len(ids) > 0 {
			return usageError{"-all and -id belong to replay"}
		}
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		return listDLQ(ctx, rdb, pos[1:], *limit, stdout)
	case "replay":
		if len(pos) != 2 {
			return usageError{"replay takes exactly one STREAM"}
		}
		if *all == (len(ids) > 0) {
			return usageError{"replay wants either -id ENTRY_ID… or -all"}
		}
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		return replayDLQ(ctx, rdb, pos[1], ids, stdout)
	default:
		return usageError{fmt.Sprintf("unknown dlq command %q (want list or replay)", pos[0])}
	}
}

func listDLQ(ctx context.Context, rdb redis.UniversalClient, streams []string, limit int64, stdout io.Writer) error {
	if len(streams) == 0 {
		var err error
		if streams, err = deadletter.Streams(ctx, rdb); err != nil {
			return err
		}
		if len(streams) == 0 {
			fmt.Fprintln(stdout, "no dead-letter streams")
			return nil
		}
	}
	now := time.Now()
	for i, s := range streams {
		letters, total, err := deadletter.List(ctx, rdb, s, limit)
		if err != nil {
			return err
		}
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "%s.dlq: %d dead letter%s", s, total, plural(total))
		if int64(len(letters)) < total {
			fmt.Fprintf(stdout, " (the oldest %d shown)", len(letters))
		}
		fmt.Fprintln(stdout)
		if len(letters) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ENTRY\tMESSAGE\tTYPE\tGROUP\tDELIVERIES\tAGE\tREASON")
		for _, l := range letters {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", l.EntryID, dash(l.MessageID), dash(l.Type), dash(l.Group),
				l.Deliveries, now.Sub(l.At).Truncate(time.Second), oneLine(l.Reason))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func replayDLQ(ctx context.Context, rdb redis.UniversalClient, s string, ids []string, stdout io.Writer) error {
	if len(ids) == 0 { // -all
		letters, _, err := deadletter.List(ctx, rdb, s, 0)
		if err != nil {
			return err
		}
		for _, l := range letters {
			ids = append(ids, l.EntryID)
		}
	}
	var replayed, failed int
	for _, id := range ids {
		newID, err := deadletter.Replay(ctx, rdb, s, id)
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "%s: not replayed: %v\n", id, err)
			if errors.Is(err, deadletter.ErrNotFound) || errors.Is(err, deadletter.ErrNoContent) {
				continue
			}
			return fmt.Errorf("%d replayed, stopped at %s: %w", replayed, id, err)
		}
		replayed++
		fmt.Fprintf(stdout, "%s: replayed to %s as %s\n", id, s, newID)
	}
	fmt.Fprintf(stdout, "%d replayed, %d not\n", replayed, failed)
	if failed > 0 {
		return fmt.Errorf("%d of %d dead letters not replayed", failed, len(ids))
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}
