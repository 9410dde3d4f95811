// Package deadletter reads and replays the shop's dead-letter streams: a
// consumer moves a message it could not process to <stream>.dlq, with the
// fields stream.FieldReason, FieldGroup, FieldDeliveries and
// FieldOriginalID added to those of the original entry.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"shop/services/platform/messaging"
	"shop/services/platform/stream"
)

// Letter is one entry of a dead-letter stream.
type Letter struct {
	Stream     string    // the stream the message was read from
	EntryID    string    // the entry's id in the dead-letter stream
	At         time.Time // when it was dead-lettered (from EntryID)
	OriginalID string    // the entry's id in Stream
	MessageID  string    // the message's own id, the key of the consumer's inbox
	Type       string
	Reason     string
	Group      string
	Deliveries int64
	// Message holds the original entry's fields; it is empty when the
	// entry had been deleted from the stream before it was dead-lettered.
	Message map[string]string
}

// Streams returns the streams that have a dead-letter stream, sorted.
func Streams(ctx context.Context, rdb redis.UniversalClient) ([]string, error) {
	var out []string
	iter := rdb.ScanType(ctx, 0, "*.dlq", 100, "stream").Iterator()
	for iter.Next(ctx) {
		out = append(out, strings.TrimSuffix(iter.Val(), ".dlq"))
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("scan for dead-letter streams: %w", err)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// List returns up to limit entries (all for limit <= 0) of the dead-letter
// stream of s, oldest first, and how many it holds in all.
func List(ctx context.Context, rdb redis.UniversalClient, s string, limit int64) ([]Letter, int64, error) {
	dlq := stream.DLQ(s)
	total, err := rdb.XLen(ctx, dlq).Result()
	if err != nil {
		return nil, 0, fmt.Errorf("length of %s: %w", dlq, err)
	}
	var entries []redis.XMessage
	if limit > 0 {
		entries, err = rdb.XRangeN(ctx, dlq, "-", "+", limit).Result()
	} else {
		entries, err = rdb.XRange(ctx, dlq, "-", "+").Result()
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", dlq, err)
	}
	out := make([]Letter, len(entries))
	for i, e := range entries {
		out[i] = parse(s, e)
	}
	return out, total, nil
}

// dlqFields are the fields a dead-letter entry adds to the original's.
var dlqFields = []string{stream.FieldReason, stream.FieldGroup, stream.FieldDeliveries, stream.FieldOriginalID}

func parse(s string, e redis.XMessage) Letter {
	str := func(k string) string { v, _ := e.Values[k].(string); return v }
	l := Letter{
		Stream: s, EntryID: e.ID, OriginalID: str(stream.FieldOriginalID),
		MessageID: str(messaging.FieldID), Type: str(messaging.FieldType),
		Reason: str(stream.FieldReason), Group: str(stream.FieldGroup),
		Message: map[string]string{},
	}
	l.Deliveries, _ = strconv.ParseInt(str(stream.FieldDeliveries), 10, 64)
	if ms, _, ok := strings.Cut(e.ID, "-"); ok {
		if n, err := strconv.ParseInt(ms, 10, 64); err == nil {
			l.At = time.UnixMilli(n)
		}
	}
	for k, v := range e.Values {
		if !slices.Contains(dlqFields, k) {
			l.Message[k], _ = v.(string)
		}
	}
	return l
}

// ErrNotFound means the dead-letter stream holds no entry with that id:
// it never did, or it has been replayed already.
var ErrNotFound = errors.New("no such dead letter")

// ErrNoContent means the dead letter records a message that was deleted
// from its stream before it was dead-lettered: there is nothing to replay.
var ErrNoContent = errors.New("dead letter has no message content")

// replayScript re-adds a dead letter's original fields to its stream and
// only then deletes it from the dead-letter stream, atomically: an entry
// is never lost between the two, and two replays of one entry (two
// operators, or a retry after a lost reply) add it once. A failing XADD
// raises an error and leaves the dead letter in place.
//
// KEYS[1] dead-letter stream, KEYS[2] stream; ARGV[1] entry id; ARGV[2…]
// the fields that belong to the dead letter, not to the message.
var replayScript = redis.NewScript(`
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entries == 0 then return false end
local skip = {}
for i = 2, #ARGV do skip[ARGV[i]] = true end
local fields = {}
local kv = entries[1][2]
for i = 1, #kv, 2 do
  if not skip[kv[i]] then
    table.insert(fields, kv[i])
    table.insert(fields, kv[i + 1])
  end
end
if #fields == 0 then return {err = 'NOCONTENT'} end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
`)

// Replay puts the dead letter entryID of stream s back on s, as a new
// entry with the original message's fields (its message id among them, so
// the consumer's inbox drops it if it was processed after all), and
// removes it from the dead-letter stream. It returns the new entry's id.
func Replay(ctx context.Context, rdb redis.UniversalClient, s, entryID string) (string, error) {
	args := make([]any, 0, 1+len(dlqFields))
	args = append(args, entryID)
	for _, f := range dlqFields {
		args = append(args, f)
	}
	id, err := replayScript.Run(ctx, rdb, []string{stream.DLQ(s), s}, args...).Text()
	switch {
	case errors.Is(err, redis.Nil):
		return "", fmt.Errorf("%s in %s: %w", entryID, stream.DLQ(s), ErrNotFound)
	case err != nil && strings.Contains(err.Error(), "NOCONTENT"):
		return "", fmt.Errorf("%s in %s: %w", entryID, stream.DLQ(s), ErrNoContent)
	case err != nil:
		return "", fmt.Errorf("replay %s of %s: %w", entryID, stream.DLQ(s), err)
	}
	return id, nil
}
