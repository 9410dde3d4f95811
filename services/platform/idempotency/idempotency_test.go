package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"shop/services/platform/idempotency"
	mt "shop/services/platform/messaging/messagingtest"
	"shop/services/platform/polltest"
)

func request(t *testing.T, user int64, key string, body any) idempotency.Request {
	t.Helper()
	req, err := idempotency.NewRequest(user, "top-up", key, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestNewRequest(t *testing.T) {
	a := request(t, 1, `"k-1"`, map[string]int{"amount": 5})
	b := request(t, 1, `k-1`, map[string]int{"amount": 5})
	if a != b || a.Key != "k-1" || len(a.Fingerprint) != 64 {
		t.Fatalf("quoted and bare key differ: %+v, %+v", a, b)
	}
	if c := request(t, 1, "k-1", map[string]int{"amount": 6}); c.Fingerprint == a.Fingerprint {
		t.Fatal("another body has the same fingerprint")
	}
	if none := request(t, 1, "", map[string]int{"amount": 5}); none.Keyed() || none != (idempotency.Request{}) {
		t.Fatalf("no key: %+v", none)
	}
}

// effect counts its runs in n and answers body.
func effect(n *atomic.Int64, body string) func(context.Context, bun.Tx) (idempotency.Response, error) {
	return func(ctx context.Context, tx bun.Tx) (idempotency.Response, error) {
		n.Add(1)
		return idempotency.Response{Status: 201, Body: []byte(body)}, nil
	}
}

func TestDo(t *testing.T) {
	for _, d := range mt.Databases(t) {
		t.Run(d.Name, func(t *testing.T) {
			ctx := context.Background()
			keys := idempotency.New(d.DB, idempotency.Config{})
			var effects atomic.Int64

			req := request(t, 7, "key-1", map[string]string{"amount": "1.00"})
			resp, replayed, err := keys.Do(ctx, req, effect(&effects, `{"n":1}`))
			if err != nil || replayed || resp.Status != 201 || string(resp.Body) != `{"n":1}` {
				t.Fatalf("first: %+v %v %v", resp, replayed, err)
			}
			// The retry answers the first answer without a second effect.
			resp, replayed, err = keys.Do(ctx, req, effect(&effects, `{"n":2}`))
			if err != nil || !replayed || resp.Status != 201 || string(resp.Body) != `{"n":1}` {
				t.Fatalf("retry: %+v %v %v", resp, replayed, err)
			}
			if n := effects.Load(); n != 1 {
				t.Fatalf("%d effects, want 1", n)
			}
			// The same key with another body is refused.
			other := request(t, 7, "key-1", map[string]string{"amount": "2.00"})
			if _, _, err := keys.Do(ctx, other, effect(&effects, `{}`)); !errors.Is(err, idempotency.ErrMismatch) {
				t.Fatalf("other body: %v, want ErrMismatch", err)
			}
			// Another user's key, or another operation's, is another key.
			mine := request(t, 8, "key-1", map[string]string{"amount": "1.00"})
			if _, replayed, err := keys.Do(ctx, mine, effect(&effects, `{"n":3}`)); err != nil || replayed {
				t.Fatalf("another user's key: %v %v", replayed, err)
			}
			op := req
			op.Operation = "create-order"
			if _, replayed, err := keys.Do(ctx, op, effect(&effects, `{"n":4}`)); err != nil || replayed {
				t.Fatalf("another operation's key: %v %v", replayed, err)
			}
			// A failed effect records nothing: the key is free again.
			failing := request(t, 7, "key-2", 1)
			boom := errors.New("boom")
			if _, _, err := keys.Do(ctx, failing, func(context.Context, bun.Tx) (idempotency.Response, error) {
				return idempotency.Response{}, boom
			}); !errors.Is(err, boom) {
				t.Fatalf("failing effect: %v", err)
			}
			if _, replayed, err := keys.Do(ctx, failing, effect(&effects, `{"n":5}`)); err != nil || replayed {
				t.Fatalf("after a failure: %v %v", replayed, err)
			}
			// Without a key, every call takes effect.
			for range 2 {
				if _, replayed, err := keys.Do(ctx, idempotency.Request{}, effect(&effects, `{}`)); err != nil || replayed {
					t.Fatalf("no key: %v %v", replayed, err)
				}
			}
			if n := effects.Load(); n != 6 {
				t.Fatalf("%d effects, want 6", n)
			}
		})
	}
}

func TestInFlight(t *testing.T) {
	db := mt.SQLite(t)
	keys := idempotency.New(db, idempotency.Config{})
	req := request(t, 7, "key-1", 1)
	release, err := keys.Begin(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := keys.Do(context.Background(), req, effect(new(atomic.Int64), `{}`)); !errors.Is(err, idempotency.ErrInFlight) {
		t.Fatalf("while in flight: %v, want ErrInFlight", err)
	}
	other := req
	other.User = 8
	if r, err := keys.Begin(other); err != nil {
		t.Fatalf("another user's key is in flight: %v", err)
	} else {
		r()
	}
	release()
	if _, _, err := keys.Do(context.Background(), req, effect(new(atomic.Int64), `{}`)); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// Two replicas (two Keys on one database) with one key at once: one takes
// effect, the other replays it or, while it cannot see it yet, is in
// flight.
func TestConcurrentReplicas(t *testing.T) {
	for _, d := range mt.Databases(t) {
		t.Run(d.Name, func(t *testing.T) {
			replicas := []*idempotency.Keys{idempotency.New(d.DB, idempotency.Config{}), idempotency.New(d.DB, idempotency.Config{})}
			req := request(t, 7, "key-1", 1)
			var effects atomic.Int64
			var wg sync.WaitGroup
			type answer struct {
				resp     idempotency.Response
				replayed bool
				err      error
			}
			answers := make([]answer, 20)
			for i := range answers {
				wg.Go(func() {
					var a answer
					a.resp, a.replayed, a.err = replicas[i%2].Do(context.Background(), req, func(ctx context.Context, tx bun.Tx) (idempotency.Response, error) {
						effects.Add(1)
						if _, err := tx.NewRaw("SELECT 1").Exec(ctx); err != nil {
							return idempotency.Response{}, err
						}
						time.Sleep(5 * time.Millisecond) // widen the window for the other replica
						return idempotency.Response{Status: 201, Body: []byte(`{"ok":true}`)}, nil
					})
					answers[i] = a
				})
			}
			wg.Wait()
			var firsts int
			for _, a := range answers {
				switch {
				case a.err == nil && !a.replayed:
					firsts++
				case a.err == nil && a.replayed:
				case errors.Is(a.err, idempotency.ErrInFlight):
				default:
					t.Fatalf("answer %+v", a)
				}
				if a.err == nil && (a.resp.Status != 201 || string(a.resp.Body) != `{"ok":true}`) {
					t.Fatalf("answer %+v", a)
				}
			}
			rows, err := d.DB.NewSelect().Model((*idempotency.Row)(nil)).Count(context.Background())
			if err != nil || firsts != 1 || rows != 1 {
				t.Fatalf("%d first answers, %d records (%v); want 1 and 1 (%d effects ran)", firsts, rows, err, effects.Load())
			}
		})
	}
}

func TestSaveAll(t *testing.T) {
	for _, d := range mt.Databases(t) {
		t.Run(d.Name, func(t *testing.T) {
			ctx := context.Background()
			keys := idempotency.New(d.DB, idempotency.Config{TTL: time.Hour})
			rec := func(user int64, key string) idempotency.Record {
				return idempotency.Record{Request: request(t, user, key, 1), Response: idempotency.Response{Status: 201, Body: []byte("{}")}}
			}
			// An expired record of a key does not hold it.
			if _, err := d.DB.NewInsert().Model(&idempotency.Row{User: 1, Operation: "top-up", Key: "old", Fingerprint: "x", Status: 200,
				Body: "{}", CreatedAt: time.Now().UTC().Add(-2 * time.Hour)}).Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := keys.Find(ctx, rec(1, "old").Request); err != nil || ok {
				t.Fatalf("expired record found: %v %v", ok, err)
			}
			first, err := keys.SaveAll(ctx, d.DB, []idempotency.Record{rec(1, "a"), rec(2, "a")})
			if err != nil {
				t.Fatal(err)
			}
			saved, err := keys.SaveAll(ctx, d.DB, []idempotency.Record{rec(1, "b"), rec(1, "a"), rec(1, "b"), rec(1, "old")})
			if err != nil {
				t.Fatal(err)
			}
			if want := []bool{true, true}; first[0] != want[0] || first[1] != want[1] {
				t.Fatalf("first save %v", first)
			}
			if want := []bool{true, false, false, true}; len(saved) != 4 || saved[0] != want[0] || saved[1] != want[1] || saved[2] != want[2] || saved[3] != want[3] {
				t.Fatalf("saved %v, want %v", saved, want)
			}
			if resp, ok, err := keys.Find(ctx, rec(1, "old").Request); err != nil || !ok || resp.Status != 201 {
				t.Fatalf("replaced record: %+v %v %v", resp, ok, err)
			}
			if _, err := keys.Taken(ctx, rec(3, "none").Request); !errors.Is(err, idempotency.ErrInFlight) {
				t.Fatalf("Taken of a key not visible: %v, want ErrInFlight", err)
			}
		})
	}
}

func TestDeleteCreatedBefore(t *testing.T) {
	for _, d := range mt.Databases(t) {
		t.Run(d.Name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Now().UTC()
			for i, age := range []time.Duration{25 * time.Hour, 26 * time.Hour, 48 * time.Hour, time.Hour} {
				row := &idempotency.Row{User: int64(i + 1), Operation: "op", Key: "k", Fingerprint: "f", Status: 200, Body: "{}", CreatedAt: now.Add(-age)}
				if _, err := d.DB.NewInsert().Model(row).Exec(ctx); err != nil {
					t.Fatal(err)
				}
			}
			n, err := idempotency.DeleteCreatedBefore(ctx, d.DB, now.Add(-idempotency.DefaultTTL), 2)
			if err != nil || n != 3 {
				t.Fatalf("deleted %d (%v), want 3", n, err)
			}
			var left []idempotency.Row
			if err := d.DB.NewSelect().Model(&left).Scan(ctx); err != nil {
				t.Fatal(err)
			}
			if len(left) != 1 || left[0].User != 4 {
				t.Fatalf("left %+v, want only the recent key", left)
			}
		})
	}
}

func TestJanitorRuns(t *testing.T) {
	db := mt.SQLite(t)
	ctx := context.Background()
	row := &idempotency.Row{User: 1, Operation: "op", Key: "k", Fingerprint: "f", Status: 200, Body: "{}", CreatedAt: time.Now().UTC().Add(-time.Hour)}
	if _, err := db.NewInsert().Model(row).Exec(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		done <- idempotency.NewJanitor(db, idempotency.JanitorConfig{TTL: time.Minute, Interval: 10 * time.Millisecond}).Run(runCtx)
	}()
	polltest.Until(t, 5*time.Second, func() error {
		n, err := db.NewSelect().Model((*idempotency.Row)(nil)).Count(ctx)
		if err == nil && n != 0 {
			err = fmt.Errorf("%d keys left", n)
		}
		return err
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The tags of KeyInput say what the constants say.
func TestKeyInputTags(t *testing.T) {
	f, _ := reflect.TypeFor[idempotency.KeyInput]().FieldByName("IdempotencyKey")
	if f.Tag.Get("header") != idempotency.Header || f.Tag.Get("maxLength") != strconv.Itoa(idempotency.MaxKeyLength) ||
		f.Tag.Get("pattern") != idempotency.KeyPattern {
		t.Fatalf("KeyInput tags %q", f.Tag)
	}
}
