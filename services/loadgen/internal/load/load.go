// Package load drives the shop through its gateway: it creates users with
// accounts and top-ups, places orders at a target rate or as fast as its
// workers go, follows them until they settle, and checks the shop's
// invariants through the public API. Measuring settles from the orders' own
// timestamps, so how often it looks does not change what it measures.
package load

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"shop/services/platform/authtoken"
)

// Money the generator moves, in cents. Every user is topped up with TopUp;
// an affordable order costs at most MaxAffordable, so a user can pay for
// TopUp/MaxAffordable (100,000) of them before the balance runs short; an
// unaffordable one costs more than TopUp, so it is declined whatever else
// the user bought.
const (
	TopUp         int64 = 10_000_000_00 // 10,000,000.00
	MaxAffordable int64 = 100_00        // 100.00
	unaffordable  int64 = 2 * TopUp
)

// listLimit is the most orders GET /orders?user_id= returns at once.
const listLimit = 1000

// Config says how to load the shop.
type Config struct {
	// Gateway is the gateway's base URL.
	Gateway string
	// Users is how many users are created, each with an account and a top-up.
	Users int
	// Orders is how many orders are placed; 0 means no limit (Duration then
	// ends the run).
	Orders int
	// Duration ends the run after this long; 0 means no limit.
	Duration time.Duration
	// Workers is how many orders are in flight at most.
	Workers int
	// Rate is orders per second; 0 means as fast as the workers go.
	Rate float64
	// Unaffordable is the share of orders larger than the user's balance.
	Unaffordable float64
	// SettleTimeout is how long orders may stay NEW after the last one was
	// placed before the run counts them as unsettled (a failure).
	SettleTimeout time.Duration
	// UserBase numbers the users UserBase+1 … UserBase+Users. 0 picks a
	// random base, so a run never shares users with an earlier one.
	UserBase int64
	// Progress receives a progress line every ProgressEvery (nil: none);
	// on a terminal (TTY) the line is rewritten in place.
	Progress      io.Writer
	TTY           bool
	ProgressEvery time.Duration
	// PollEvery is the pause between passes that look for settled orders
	// (default 1s).
	PollEvery time.Duration
	// RequestTimeout bounds one HTTP request (default 10s).
	RequestTimeout time.Duration
	// JWTSecret, when set, is the gateway's JWT_HS256_SECRET: each user's
	// requests carry a token minted with it for that user.
	JWTSecret string
}

func (c Config) withDefaults() Config {
	c.Workers = cmp.Or(c.Workers, 16)
	c.Users = cmp.Or(c.Users, 50)
	c.SettleTimeout = cmp.Or(c.SettleTimeout, time.Minute)
	c.ProgressEvery = cmp.Or(c.ProgressEvery, time.Second)
	c.PollEvery = cmp.Or(c.PollEvery, time.Second)
	c.RequestTimeout = cmp.Or(c.RequestTimeout, 10*time.Second)
	if c.UserBase == 0 {
		// Room for a billion users below the API's largest user id (2^53-1).
		c.UserBase = (1 + rand.Int64N(8_000_000)) * 1_000_000_000
	}
	return c
}

// Validate checks the values before anything is sent.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Gateway); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("gateway %q: want http://host:port", c.Gateway))
	}
	if c.Users < 1 {
		errs = append(errs, errors.New("users: want at least 1"))
	}
	if c.Orders < 0 || c.Duration < 0 || (c.Orders == 0 && c.Duration == 0) {
		errs = append(errs, errors.New("want a positive number of orders or a positive duration"))
	}
	if c.Workers < 1 {
		errs = append(errs, errors.New("workers: want at least 1"))
	}
	if c.Rate < 0 {
		errs = append(errs, errors.New("rate: want 0 (flat out) or more"))
	}
	if c.Unaffordable < 0 || c.Unaffordable > 1 {
		errs = append(errs, errors.New("unaffordable: want a share between 0 and 1"))
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < authtoken.MinSecretLen {
		errs = append(errs, fmt.Errorf("jwt-secret: want at least %d bytes, as the gateway's JWT_HS256_SECRET", authtoken.MinSecretLen))
	}
	if c.UserBase < 0 || c.UserBase+int64(c.Users) > 1<<53-1 {
		errs = append(errs, errors.New("user-base: user ids must stay below 2^53"))
	}
	return errors.Join(errs...)
}

// order is one order the generator placed.
type order struct {
	id         string
	amount     int64
	expectPaid bool
	seq        int // the how-many-th order of its user, in answer order
}

// user is one user and what the generator knows of its orders. mu guards
// everything below it.
type user struct {
	id int64
	// token is the user's bearer token, "" without Config.JWTSecret.
	token string
	mu    sync.Mutex
	// baseline is the balance right after the generator's top-up.
	baseline int64
	// known are orders that existed before this run (a reused user id).
	known    map[string]bool
	pending  map[string]*order
	created  int
	finished int64 // sum of the amounts of this run's FINISHED orders
	// ambiguous counts creates whose outcome is unknown (a timeout, a 5xx):
	// the order may exist.
	ambiguous int
	wrong     int // orders settled against expectation
}

// run is the state of one load run.
type run struct {
	cfg   Config
	c     *client
	users []*user

	sent, accepted, settled atomic.Int64
	errCount                atomic.Int64

	mu         sync.Mutex
	errors     map[string]int64
	settles    []time.Duration
	firstNew   time.Time
	lastSettle time.Time
	finished   int64
	cancelled  int64

	progMu sync.Mutex
	prog   progress
}

// Run loads the shop as cfg says and reports what it sustained. Ending ctx
// stops placing orders early; the run still waits for settlement and checks
// the invariants. An error means the run could not start (the gateway is
// unreachable, users could not be created).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, c: newClient(cfg.Gateway, cfg.Workers+8, cfg.RequestTimeout), errors: map[string]int64{}}
	defer r.c.close()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}

	start := time.Now()
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	if cfg.Duration > 0 {
		sendCtx, stopSending = context.WithTimeout(sendCtx, cfg.Duration)
		defer stopSending()
	}
	pollCtx, stopPolling := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPolling()
	var bg sync.WaitGroup
	bg.Go(func() { r.pollLoop(pollCtx) })
	bg.Go(func() { r.progressLoop(pollCtx, start) })

	creates := r.send(sendCtx, start)
	sendEnd := time.Now()

	// Wait for the rest to settle, within the deadline. The poll loop goes
	// on at its own pace: polling faster would load the shop while it
	// drains, and the latencies come from the orders' timestamps anyway.
	deadline := sendEnd.Add(cfg.SettleTimeout)
	for r.pendingCount() > 0 && time.Now().Before(deadline) {
		time.Sleep(min(20*time.Millisecond, time.Until(deadline)))
	}
	stopPolling()
	bg.Wait()
	r.progressLine(start, true)

	checkCtx := context.WithoutCancel(ctx)
	r.pollRemaining(checkCtx)
	rep := r.report(creates, start, sendEnd)
	r.check(checkCtx, rep)
	return rep, nil
}

// setup creates the users' accounts and tops them up, Workers at a time.
func (r *run) setup(ctx context.Context) error {
	r.users = make([]*user, r.cfg.Users)
	for i := range r.users {
		u := &user{id: r.cfg.UserBase + int64(i) + 1, pending: map[string]*order{}}
		if r.cfg.JWTSecret != "" {
			// Valid well past any run: the settle wait and checks included.
			tok, err := authtoken.Mint([]byte(r.cfg.JWTSecret), u.id, authtoken.Options{TTL: 7 * 24 * time.Hour})
			if err != nil {
				return fmt.Errorf("token for user %d: %w", u.id, err)
			}
			u.token = tok
		}
		r.users[i] = u
	}
	next := atomic.Int64{}
	errc := make(chan error, r.cfg.Workers)
	var wg sync.WaitGroup
	for range min(r.cfg.Workers, len(r.users)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(r.users) || ctx.Err() != nil {
					return
				}
				if err := r.setupUser(ctx, r.users[i]); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	return ctx.Err()
}

func (r *run) setupUser(ctx context.Context, u *user) error {
	status, err := r.retry(ctx, func() (int, error) {
		return r.c.call(ctx, u.token, http.MethodPost, "/accounts", map[string]any{"user_id": u.id}, nil)
	})
	switch {
	case status == http.StatusConflict:
		// The account exists (a chosen user base, or a retried create):
		// orders it already has are not this run's.
		var listed []apiOrder
		if _, err := r.retry(ctx, func() (int, error) {
			return r.c.call(ctx, u.token, http.MethodGet, listPath(u.id, listLimit), nil, &listed)
		}); err != nil {
			return fmt.Errorf("list orders of existing user %d: %w", u.id, err)
		}
		u.known = map[string]bool{}
		for _, o := range listed {
			u.known[o.ID] = true
		}
	case err != nil:
		return fmt.Errorf("create account of user %d: %w", u.id, err)
	}
	var a account
	if _, err := r.retry(ctx, func() (int, error) {
		return r.c.call(ctx, u.token, http.MethodPost, "/accounts/top-up", map[string]any{"user_id": u.id, "amount": cents(TopUp)}, &a)
	}); err != nil {
		return fmt.Errorf("top up user %d: %w", u.id, err)
	}
	b, err := parseCents(a.Balance)
	if err != nil {
		return fmt.Errorf("top-up of user %d: %w", u.id, err)
	}
	u.baseline = b
	return nil
}

// retry calls fn until it succeeds, answers a 4xx (which another try would
// not change), or fails three times.
func (r *run) retry(ctx context.Context, fn func() (int, error)) (int, error) {
	var status int
	var err error
	for attempt := range 3 {
		if status, err = fn(); err == nil || (status >= 400 && status < 500) {
			return status, err
		}
		r.countError(err)
		select {
		case <-ctx.Done():
			return status, err
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
	return status, err
}

// send places the orders and returns the create latencies of the accepted
// ones. Requests in flight when ctx ends are seen through.
func (r *run) send(ctx context.Context, start time.Time) []time.Duration {
	var next atomic.Int64
	lat := make([][]time.Duration, r.cfg.Workers)
	var wg sync.WaitGroup
	for w := range r.cfg.Workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(rand.Uint64(), uint64(w)))
			reqCtx := context.WithoutCancel(ctx)
			for {
				i := next.Add(1) - 1
				if r.cfg.Orders > 0 && i >= int64(r.cfg.Orders) {
					return
				}
				if r.cfg.Rate > 0 {
					due := start.Add(time.Duration(float64(i) / r.cfg.Rate * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						t := time.NewTimer(d)
						select {
						case <-ctx.Done():
							t.Stop()
							return
						case <-t.C:
						}
					}
				}
				if ctx.Err() != nil {
					return
				}
				if d, ok := r.place(reqCtx, rng); ok {
					lat[w] = append(lat[w], d)
				}
			}
		})
	}
	wg.Wait()
	return slices.Concat(lat...)
}

// place creates one order and reports how long the request took.
func (r *run) place(ctx context.Context, rng *rand.Rand) (time.Duration, bool) {
	u := r.users[rng.IntN(len(r.users))]
	o := &order{expectPaid: rng.Float64() >= r.cfg.Unaffordable}
	if o.expectPaid {
		o.amount = 1 + rng.Int64N(MaxAffordable)
	} else {
		o.amount = unaffordable + rng.Int64N(MaxAffordable)
	}
	r.sent.Add(1)
	t0 := time.Now()
	var created apiOrder
	_, err := r.c.call(ctx, u.token, http.MethodPost, "/orders",
		map[string]any{"user_id": u.id, "amount": cents(o.amount), "description": "loadgen"}, &created)
	d := time.Since(t0)
	if err != nil {
		r.countError(err)
		if kindOf(err) != KindHTTP4xx { // the order may exist all the same
			u.mu.Lock()
			u.ambiguous++
			u.mu.Unlock()
		}
		return 0, false
	}
	r.accepted.Add(1)
	o.id = created.ID
	u.mu.Lock()
	o.seq = u.created
	u.created++
	if created.Status == "NEW" {
		u.pending[o.id] = o
		u.mu.Unlock()
	} else {
		u.mu.Unlock()
		r.settle(u, o, created) // settled before the answer left
	}
	return d, true
}

func (r *run) countError(err error) {
	r.errCount.Add(1)
	r.mu.Lock()
	r.errors[kindOf(err)]++
	r.mu.Unlock()
}

func (r *run) pendingCount() int64 { return r.accepted.Load() - r.settled.Load() }

// pollLoop looks for settled orders every PollEvery until ctx ends.
func (r *run) pollLoop(ctx context.Context) {
	for ctx.Err() == nil {
		r.pollOnce(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(r.cfg.PollEvery):
		}
	}
}

// pollOnce lists, for every user with pending orders, just enough of its
// newest orders to cover the oldest pending one, a few users at a time.
func (r *run) pollOnce(ctx context.Context) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(8, len(r.users)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(r.users) {
					return
				}
				u := r.users[i]
				limit := r.listWindow(u)
				if limit == 0 || limit > listLimit {
					// Nothing pending, or too far back for one list:
					// pollRemaining asks for those one by one at the end.
					continue
				}
				var listed []apiOrder
				if _, err := r.c.call(ctx, u.token, http.MethodGet, listPath(u.id, limit), nil, &listed); err != nil {
					if ctx.Err() == nil {
						r.countError(err)
					}
					continue
				}
				r.apply(u, listed)
			}
		})
	}
	wg.Wait()
}

// listWindow is how many of u's newest orders cover its oldest pending one,
// with room for orders placed while the list is on its way; 0 if none is
// pending.
func (r *run) listWindow(u *user) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.pending) == 0 {
		return 0
	}
	oldest := u.created
	for _, o := range u.pending {
		oldest = min(oldest, o.seq)
	}
	return u.created - oldest + r.cfg.Workers + len(u.known)
}

// apply settles u's pending orders that listed shows terminal.
func (r *run) apply(u *user, listed []apiOrder) {
	for _, lo := range listed {
		if lo.Status == "NEW" {
			continue
		}
		u.mu.Lock()
		o, ok := u.pending[lo.ID]
		if ok {
			delete(u.pending, lo.ID)
		}
		u.mu.Unlock()
		if ok {
			r.settle(u, o, lo)
		}
	}
}

// settle records a terminal order: its create→settled time from its own
// timestamps, and whether it settled as expected.
func (r *run) settle(u *user, o *order, got apiOrder) {
	paid := got.Status == "FINISHED"
	u.mu.Lock()
	if paid {
		u.finished += o.amount
	}
	if paid != o.expectPaid {
		u.wrong++
	}
	u.mu.Unlock()
	r.settled.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.settles = append(r.settles, got.UpdatedAt.Sub(got.CreatedAt))
	if r.firstNew.IsZero() || got.CreatedAt.Before(r.firstNew) {
		r.firstNew = got.CreatedAt
	}
	if got.UpdatedAt.After(r.lastSettle) {
		r.lastSettle = got.UpdatedAt
	}
	if paid {
		r.finished++
	} else {
		r.cancelled++
	}
}

// pollRemaining asks for each order still pending on its own: the ones a
// list could not reach, and a last look before they count as unsettled.
func (r *run) pollRemaining(ctx context.Context) {
	for _, u := range r.users {
		u.mu.Lock()
		ids := make([]*order, 0, len(u.pending))
		for _, o := range u.pending {
			ids = append(ids, o)
		}
		u.mu.Unlock()
		for _, o := range ids {
			var got apiOrder
			if _, err := r.c.call(ctx, u.token, http.MethodGet, "/orders/"+o.id, nil, &got); err != nil {
				r.countError(err)
				continue
			}
			if got.Status != "NEW" {
				r.apply(u, []apiOrder{got})
			}
		}
	}
}

func listPath(userID int64, limit int) string {
	return "/orders?user_id=" + strconv.FormatInt(userID, 10) + "&limit=" + strconv.Itoa(limit)
}

// progressLoop writes the progress line every ProgressEvery until ctx ends.
func (r *run) progressLoop(ctx context.Context, start time.Time) {
	if r.cfg.Progress == nil {
		return
	}
	tick := time.NewTicker(r.cfg.ProgressEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.progressLine(start, false)
		}
	}
}

// progress is what the last progress line counted, for the rates.
type progress struct {
	at                time.Time
	accepted, settled int64
}

func (r *run) progressLine(start time.Time, final bool) {
	if r.cfg.Progress == nil {
		return
	}
	r.progMu.Lock()
	defer r.progMu.Unlock()
	now := time.Now()
	acc, set := r.accepted.Load(), r.settled.Load()
	prev := r.prog
	if prev.at.IsZero() {
		prev.at = start
	}
	r.prog = progress{at: now, accepted: acc, settled: set}
	secs := now.Sub(prev.at).Seconds()
	line := fmt.Sprintf("%6.1fs  sent %d  accepted %d  settled %d  errors %d  create %.0f/s  settle %.0f/s",
		now.Sub(start).Seconds(), r.sent.Load(), acc, set, r.errCount.Load(),
		float64(acc-prev.accepted)/secs, float64(set-prev.settled)/secs)
	switch {
	case r.cfg.TTY && final:
		fmt.Fprintf(r.cfg.Progress, "\r\033[K%s\n", line)
	case r.cfg.TTY:
		fmt.Fprintf(r.cfg.Progress, "\r\033[K%s", line)
	default:
		fmt.Fprintln(r.cfg.Progress, line)
	}
}
