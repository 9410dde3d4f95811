// Package idempotency makes a request that carries an Idempotency-Key (IETF
// draft "The Idempotency-Key HTTP Header Field") take effect once: its
// answer is recorded in the transaction of its effect, so a crash cannot
// separate them, and a retry with the same key and the same request is
// answered again instead of applied again.
//
// A key belongs to a user and an operation. Within one process, a request
// whose key is in flight is refused at once (ErrInFlight); between
// replicas the table's primary key decides which request takes effect, and
// the other answers what that one recorded.
package idempotency

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"
)

// Header is the request header that carries a key; ReplayedHeader marks an
// answer that repeats the first answer to its key.
const (
	Header         = "Idempotency-Key"
	ReplayedHeader = "Idempotent-Replayed"
	// MaxKeyLength bounds a key, in bytes.
	MaxKeyLength = 255
	// KeyPattern is what a key may hold: printable ASCII, no spaces.
	KeyPattern = "^[!-~]+$"
	// DefaultTTL is how long an answer is kept for retries.
	DefaultTTL = 24 * time.Hour
)

// Errors of a request whose key cannot take effect now.
var (
	// ErrMismatch: the key was used before with a different request.
	ErrMismatch = errors.New("this Idempotency-Key was used with a different request")
	// ErrInFlight: the first request with the key has not finished.
	ErrInFlight = errors.New("a request with this Idempotency-Key is still in progress; retry later")
)

// errTaken ends the transaction of a request whose key another request
// recorded first.
var errTaken = errors.New("idempotency key taken")

// Request identifies a request that carries a key. Its zero value has no
// key: such a request takes effect every time.
type Request struct {
	User      int64
	Operation string
	Key       string
	// Fingerprint is the sha256 (hex) of the validated request (see
	// NewRequest): the same key with another fingerprint is a mismatch.
	Fingerprint string
}

// NewRequest returns the Request of key (as the header gave it; "" for
// none) from user to operation, whose validated input is canonical (any
// value encoding/json writes the same way for the same request). The draft
// sends a key as a structured-field string, in double quotes: they are not
// part of the key, so "abc" and abc are the same key.
func NewRequest(user int64, operation, key string, canonical any) (Request, error) {
	if len(key) >= 2 && strings.HasPrefix(key, `"`) && strings.HasSuffix(key, `"`) {
		key = key[1 : len(key)-1]
	}
	if key == "" {
		return Request{}, nil
	}
	b, err := json.Marshal(canonical)
	if err != nil {
		return Request{}, fmt.Errorf("fingerprint of %s: %w", operation, err)
	}
	sum := sha256.Sum256(b)
	return Request{User: user, Operation: operation, Key: key, Fingerprint: hex.EncodeToString(sum[:])}, nil
}

// Keyed reports whether r carries a key.
func (r Request) Keyed() bool { return r.Key != "" }

// Response is the answer recorded for a request: its status and body.
type Response struct {
	Status int
	Body   []byte
}

// Record is a request's answer, to be saved with its effect.
type Record struct {
	Request
	Response
}

// Row is a row of the idempotency_keys table, which messaging.Migrations
// creates.
type Row struct {
	bun.BaseModel `bun:"table:idempotency_keys"`

	User        int64     `bun:"user_id,pk"`
	Operation   string    `bun:"operation,pk"`
	Key         string    `bun:"idempotency_key,pk"`
	Fingerprint string    `bun:"fingerprint,notnull"`
	Status      int       `bun:"status,notnull"`
	Body        string    `bun:"body,notnull"`
	CreatedAt   time.Time `bun:"created_at,notnull"`
}

// Config configures Keys. The zero value is sensible.
type Config struct {
	// TTL is how long an answer is replayed (default DefaultTTL); past it
	// the key is new again. The janitor deletes what is older.
	TTL time.Duration
}

func (c Config) withDefaults() Config {
	if c.TTL <= 0 {
		c.TTL = DefaultTTL
	}
	return c
}

type scope struct {
	user      int64
	operation string
	key       string
}

// Keys records and replays the answers to keyed requests on a database
// whose schema has the idempotency_keys table.
type Keys struct {
	db  bun.IDB
	cfg Config

	mu       sync.Mutex
	inFlight map[scope]struct{}
}

// New returns Keys on db.
func New(db bun.IDB, cfg Config) *Keys {
	return &Keys{db: db, cfg: cfg.withDefaults(), inFlight: map[scope]struct{}{}}
}

// Begin claims the key of req in this process until release is called; a
// key claimed already is ErrInFlight.
func (k *Keys) Begin(req Request) (release func(), err error) {
	s := scope{req.User, req.Operation, req.Key}
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.inFlight[s]; ok {
		return nil, ErrInFlight
	}
	k.inFlight[s] = struct{}{}
	return func() {
		k.mu.Lock()
		delete(k.inFlight, s)
		k.mu.Unlock()
	}, nil
}

// Find returns the answer recorded for the key of req within the TTL, and
// whether there is one. A key recorded for another request is ErrMismatch.
func (k *Keys) Find(ctx context.Context, req Request) (Response, bool, error) {
	row := new(Row)
	err := k.db.NewSelect().Model(row).
		Where("user_id = ?", req.User).
		Where("operation = ?", req.Operation).
		Where("idempotency_key = ?", req.Key).
		Where("created_at >= ?", k.cutoff()).
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return Response{}, false, nil
	}
	if err != nil {
		return Response{}, false, fmt.Errorf("find idempotency key: %w", err)
	}
	if row.Fingerprint != req.Fingerprint {
		return Response{}, false, ErrMismatch
	}
	return Response{Status: row.Status, Body: []byte(row.Body)}, true, nil
}

// Taken answers a request whose key another request (on another replica)
// recorded while this one was under way: the recorded answer, or
// ErrInFlight while it is not visible yet, or ErrMismatch.
func (k *Keys) Taken(ctx context.Context, req Request) (Response, error) {
	resp, ok, err := k.Find(ctx, req)
	if err == nil && !ok {
		err = ErrInFlight
	}
	return resp, err
}

// SaveAll records the answers within tx, with one statement, and reports
// for each whether it was saved: false when its key is recorded already
// (and not expired) or repeats a key earlier in records. An expired record
// of the key is replaced. On PostgreSQL a key another transaction is
// recording waits for that transaction, so its outcome decides.
func (k *Keys) SaveAll(ctx context.Context, tx bun.IDB, records []Record) ([]bool, error) {
	saved := make([]bool, len(records))
	now := time.Now().UTC()
	var rows []Row
	index := make(map[scope]int, len(records))
	for i, r := range records {
		s := scope{r.User, r.Operation, r.Key}
		if _, dup := index[s]; dup {
			continue // the first with the key wins; this one is taken
		}
		index[s] = i
		rows = append(rows, Row{User: r.User, Operation: r.Operation, Key: r.Key, Fingerprint: r.Fingerprint,
			Status: r.Status, Body: string(r.Body), CreatedAt: now})
	}
	if len(rows) == 0 {
		return saved, nil
	}
	// In one order everywhere, so that two batches with the same keys wait
	// for each other rather than deadlock.
	slices.SortFunc(rows, func(a, b Row) int {
		return cmp.Or(cmp.Compare(a.User, b.User), strings.Compare(a.Operation, b.Operation), strings.Compare(a.Key, b.Key))
	})
	var inserted []Row
	err := tx.NewInsert().Model(&rows).
		On("CONFLICT (user_id, operation, idempotency_key) DO UPDATE").
		Set("fingerprint = EXCLUDED.fingerprint").
		Set("status = EXCLUDED.status").
		Set("body = EXCLUDED.body").
		Set("created_at = EXCLUDED.created_at").
		Where("?TableAlias.created_at < ?", k.cutoff()).
		Returning("user_id, operation, idempotency_key").
		Scan(ctx, &inserted)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("record %d idempotency keys: %w", len(rows), err)
	}
	for _, r := range inserted {
		saved[index[scope{r.User, r.Operation, r.Key}]] = true
	}
	return saved, nil
}

// Do runs effect once for the key of req, in a transaction on the database
// of k, and records the answer effect returns in that transaction. It
// returns the answer, and whether it is a replay of the first one (then
// effect did not run). A request without a key runs effect each time and
// records nothing. The errors are effect's, ErrMismatch and ErrInFlight;
// an error of effect records nothing.
func (k *Keys) Do(ctx context.Context, req Request, effect func(ctx context.Context, tx bun.Tx) (Response, error)) (resp Response, replayed bool, err error) {
	if !req.Keyed() {
		err = k.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			resp, err = effect(ctx, tx)
			return err
		})
		return resp, false, err
	}
	release, err := k.Begin(req)
	if err != nil {
		return Response{}, false, err
	}
	defer release()
	if resp, ok, err := k.Find(ctx, req); err != nil || ok {
		return resp, ok, err
	}
	err = k.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		r, err := effect(ctx, tx)
		if err != nil {
			return err
		}
		saved, err := k.SaveAll(ctx, tx, []Record{{Request: req, Response: r}})
		if err != nil {
			return err
		}
		if !saved[0] {
			return errTaken
		}
		resp = r
		return nil
	})
	if errors.Is(err, errTaken) {
		resp, err = k.Taken(ctx, req)
		return resp, err == nil, err
	}
	return resp, false, err
}

// cutoff is the creation time before which a record has expired.
func (k *Keys) cutoff() time.Time {
	return time.Now().UTC().Add(-k.cfg.TTL)
}
