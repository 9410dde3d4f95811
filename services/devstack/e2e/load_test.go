package e2e

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// load creates users with random balances and then sends orders from them
// concurrently, some of them larger than the balance. target picks the
// service replica for each request. It returns how many orders were
// accepted; failed requests (a replica being down) are retried elsewhere or
// later, and counted.
type load struct {
	users, orders, workers int
	ordersURL              func(i int) string
	paymentsURL            func(i int) string
}

// setup creates the users' accounts with random balances.
func (l load) setup(t *testing.T) {
	t.Helper()
	c := newClient(TestSecret)
	for u := 1; u <= l.users; u++ {
		retry(t, func() error {
			status, err := c.as(int64(u)).call("POST", l.paymentsURL(u)+"/accounts", map[string]any{"user_id": u}, nil)
			if status == 409 { // created by an earlier try
				return nil
			}
			return err
		})
		cents := rand.IntN(100_00) // 0.00 to 99.99
		if cents > 0 {
			retry(t, func() error {
				_, err := c.as(int64(u)).call("POST", l.paymentsURL(u)+"/accounts/top-up",
					map[string]any{"user_id": u, "amount": fmt.Sprintf("%d.%02d", cents/100, cents%100)}, nil)
				return err
			})
		}
	}
}

// run sends the orders and returns how many were accepted and how many
// requests failed (and were retried) on the way.
func (l load) run(t *testing.T) (accepted, failures int64) {
	t.Helper()
	c := newClient(TestSecret)
	var next, failed atomic.Int64
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range l.workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > l.orders {
					return
				}
				user := rand.IntN(l.users) + 1
				cents := rand.IntN(30_00) + 1 // up to 30.00: some orders exceed what is left
				body := map[string]any{"user_id": user, "amount": fmt.Sprintf("%d.%02d", cents/100, cents%100)}
				for attempt := 0; ; attempt++ {
					if _, err := c.as(int64(user)).call("POST", l.ordersURL(i+attempt)+"/orders", body, nil); err == nil {
						ok.Add(1)
						break
					}
					failed.Add(1)
					if attempt > 1500 { // 30s
						t.Errorf("order %d: no replica accepted it", i)
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	return ok.Load(), failed.Load()
}

func retry(t *testing.T, fn func() error) {
	t.Helper()
	var err error
	for range 1500 { // 30s
		if err = fn(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal(err)
}

// TestConcurrentOrdersOnTwoReplicas: 500 orders from 50 users with random
// balances, sent concurrently to two replicas of each service sharing one
// PostgreSQL and Redis. Every order settles, and the money adds up.
func TestConcurrentOrdersOnTwoReplicas(t *testing.T) {
	s := startShop(t, 2)
	l := load{
		users: 50, orders: 500, workers: 16,
		ordersURL:   func(i int) string { return s.orders[i%2].URL },
		paymentsURL: func(i int) string { return s.payments[i%2].URL },
	}
	l.setup(t)
	accepted, _ := l.run(t)
	if accepted != 500 {
		t.Fatalf("%d orders accepted, want 500", accepted)
	}
	waitSettled(t, s.ordersDB, time.Minute)
	finished, cancelled := checkInvariants(t, s.ordersDB, s.paymentsDB)
	t.Logf("500 orders: %d FINISHED, %d CANCELLED", finished, cancelled)
	if finished == 0 || cancelled == 0 {
		t.Errorf("the load should both pay and decline orders: %d finished, %d cancelled", finished, cancelled)
	}
}

// TestCrashesLoseNothing kills the payments and orders processes with
// SIGKILL at random moments while orders flow, restarts them, and checks
// that every order still settles exactly once.
func TestCrashesLoseNothing(t *testing.T) {
	s := startShop(t, 1, "CLAIM_IDLE=2s")
	l := load{
		users: 50, orders: 500, workers: 8,
		ordersURL:   func(int) string { return s.orders[0].URL },
		paymentsURL: func(int) string { return s.payments[0].URL },
	}
	l.setup(t)

	stop := make(chan struct{})
	var kills atomic.Int64
	var killer sync.WaitGroup
	stopKilling := sync.OnceFunc(func() { close(stop); killer.Wait() })
	defer stopKilling() // also when the test fails half-way
	killer.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(200+rand.IntN(600)) * time.Millisecond):
			}
			victim := s.payments[0]
			if rand.IntN(2) == 0 {
				victim = s.orders[0]
			}
			victim.Kill()
			kills.Add(1)
			time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
			victim.Restart()
		}
	})
	// At least 500 orders, and more until each service was killed a few
	// times under load.
	const minKills = 8
	accepted, failures := l.run(t)
	for deadline := time.Now().Add(3 * time.Minute); kills.Load() < minKills; {
		if time.Now().After(deadline) {
			t.Fatalf("%d kills within 3m, want %d", kills.Load(), minKills)
		}
		more := l
		more.orders = 50
		a, f := more.run(t)
		accepted, failures = accepted+a, failures+f
	}
	stopKilling()
	t.Logf("%d orders accepted, %d requests failed during %d kills", accepted, failures, kills.Load())
	waitSettled(t, s.ordersDB, 2*time.Minute)
	checkInvariants(t, s.ordersDB, s.paymentsDB)
}
