package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"shop/services/contract"
	"shop/services/platform/polltest"
	"shop/services/platform/service/servicetest"
)

// TestRedisDataLossStrandsNothing runs two replicas of each service on a
// redis-server of the test's own, without persistence, under load, and
// loses the streams three times: FLUSHALL while payment requests wait on
// their stream (payments stopped), FLUSHALL while payment results wait on
// theirs (orders stopped: users debited, their orders NEW), and a restart
// of the server, the load going on while it is down. Reconciliation
// (RECONCILE_AFTER=2s) requests the payment of every order left NEW again,
// and payments answers the orders it decided with the result it recorded:
// every order settles, every balance equals its ledger, and nothing is
// debited without a FINISHED order. The time from "Redis is back" to
// "every order settled" is logged.
func TestRedisDataLossStrandsNothing(t *testing.T) {
	r := startRedisServer(t)
	s := startShop(t, 2, "REDIS_URL="+r.url, "RECONCILE_AFTER=2s", "CLAIM_IDLE=2s")
	l := load{
		users: 30, workers: 6,
		ordersURL:   func(i int) string { return s.orders[i%2].URL },
		paymentsURL: func(i int) string { return s.payments[i%2].URL },
	}
	l.setup(t)
	ctx := context.Background()
	rdb := r.client(t)

	orders := startOrdering(t, 6, func(i int) string { return s.orders[i%2].URL })
	defer orders.stop()
	orders.waitFor(t, 50)

	// 1. Requests on their stream, nobody to read them: lost.
	for _, p := range s.payments {
		p.Stop()
	}
	waitStreamLen(t, rdb, contract.PaymentRequestsStream, 20)
	r.flushAll(t)
	t.Logf("FLUSHALL with payments stopped, %d orders accepted so far", orders.accepted.Load())

	// 2. Results on their stream, nobody to read them: lost, the users
	// debited and their orders NEW.
	waitStreamLen(t, rdb, contract.PaymentRequestsStream, 10)
	for _, o := range s.orders {
		o.Stop()
	}
	for _, p := range s.payments {
		p.Restart()
	}
	waitStreamLen(t, rdb, contract.PaymentResultsStream, 5)
	r.flushAll(t)
	stranded := decidedButNew(t, s.ordersDB, s.paymentsDB)
	t.Logf("FLUSHALL with orders stopped: %d orders decided by payments and NEW", stranded)
	for _, o := range s.orders {
		o.Restart()
	}
	orders.waitFor(t, orders.accepted.Load()+50)

	// 3. The server restarts without persistence; orders are taken while
	// it is down, and the load ends.
	r.kill(t)
	time.Sleep(time.Second)
	orders.stop()
	r.start(t)
	back := time.Now()
	waitSettled(t, s.ordersDB, 2*time.Minute)
	settledIn := time.Since(back)
	t.Logf("%d orders; every order settled %v after Redis was back (RECONCILE_AFTER=2s)",
		orders.accepted.Load(), settledIn.Round(10*time.Millisecond))

	finished, cancelled := checkInvariants(t, s.ordersDB, s.paymentsDB)
	t.Logf("%d FINISHED, %d CANCELLED", finished, cancelled)
	var rerequested, resent int
	if err := s.ordersDB.NewRaw("SELECT count(*) FROM orders WHERE payment_requests > 1").Scan(ctx, &rerequested); err != nil {
		t.Fatal(err)
	}
	err := s.paymentsDB.NewRaw("SELECT (SELECT count(*) FROM outbox WHERE stream = ?) - (SELECT count(*) FROM payments)",
		contract.PaymentResultsStream).Scan(ctx, &resent)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d orders requested again, %d recorded results sent again", rerequested, resent)
	if rerequested == 0 {
		t.Error("no order was requested again, although requests were lost")
	}
	if resent == 0 {
		t.Error("no recorded result was sent again, although results were lost")
	}
}

// decidedButNew counts the orders payments decided (debiting the user, or
// declining) that orders still has NEW: what a lost result leaves behind
// until it is sent again.
func decidedButNew(t *testing.T, ordersDB, paymentsDB *bun.DB) int {
	t.Helper()
	ctx := context.Background()
	var decided []string
	if err := paymentsDB.NewRaw("SELECT order_id::text FROM payments").Scan(ctx, &decided); err != nil {
		t.Fatal(err)
	}
	if len(decided) == 0 {
		return 0
	}
	var n int
	if err := ordersDB.NewRaw("SELECT count(*) FROM orders WHERE status = 'NEW' AND id::text IN (?)", bun.In(decided)).Scan(ctx, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitStreamLen waits until stream s holds at least n entries.
func waitStreamLen(t *testing.T, rdb *redis.Client, s string, n int64) {
	t.Helper()
	polltest.Until(t, 30*time.Second, func() error {
		if got, err := rdb.XLen(context.Background(), s).Result(); err != nil || got < n {
			return fmt.Errorf("%s holds %d entries (%v), want %d", s, got, err, n)
		}
		return nil
	})
}

// ordering places orders on the orders replicas until stopped, each from
// a random user of 1…30 for up to 30.00, retrying a refused or failed one
// on the next replica.
type ordering struct {
	accepted atomic.Int64
	done     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

func startOrdering(t *testing.T, workers int, url func(i int) string) *ordering {
	o := &ordering{done: make(chan struct{})}
	c := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		o.wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-o.done:
					return
				default:
				}
				cents := rand.IntN(30_00) + 1
				body := fmt.Sprintf(`{"user_id":%d,"amount":"%d.%02d"}`, rand.IntN(30)+1, cents/100, cents%100)
				if err := postJSON(c, url(i)+"/orders", body); err != nil {
					time.Sleep(20 * time.Millisecond) // a replica stopped: the next one
					continue
				}
				o.accepted.Add(1)
			}
		})
	}
	t.Cleanup(o.stop)
	return o
}

// waitFor waits until n orders were accepted.
func (o *ordering) waitFor(t *testing.T, n int64) {
	t.Helper()
	polltest.Until(t, time.Minute, func() error {
		if got := o.accepted.Load(); got < n {
			return fmt.Errorf("%d orders accepted, want %d", got, n)
		}
		return nil
	})
}

// stop stops placing orders and waits for the calls in flight.
func (o *ordering) stop() {
	o.stopOnce.Do(func() { close(o.done) })
	o.wg.Wait()
}

func postJSON(c *http.Client, url, body string) error {
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, data)
	}
	return nil
}

// redisServer is a redis-server of the test's own, from PATH, on a free
// port, keeping nothing on disk: a restart loses every stream.
type redisServer struct {
	addr, url, dir string
	cmd            *exec.Cmd
	done           chan struct{}
	log            *bytes.Buffer
}

func startRedisServer(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is not on PATH (.ci/run installs it): %v", err)
	}
	addr := servicetest.FreeAddr(t)
	r := &redisServer{addr: addr, url: "redis://" + addr + "/0", dir: t.TempDir()}
	r.start(t)
	t.Cleanup(func() {
		r.kill(t)
		if t.Failed() {
			t.Logf("redis-server output:\n%s", r.log)
		}
	})
	return r
}

func (r *redisServer) start(t *testing.T) {
	t.Helper()
	_, port, _ := strings.Cut(r.addr, ":")
	r.log = &bytes.Buffer{}
	r.cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--appendonly", "no")
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(r.cmd, r.done)
	rdb := redis.NewClient(&redis.Options{Addr: r.addr})
	defer rdb.Close()
	polltest.Until(t, 10*time.Second, func() error { return rdb.Ping(context.Background()).Err() })
}

// kill stops the server at once (SIGKILL): what it held is gone.
func (r *redisServer) kill(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Kill()
	<-r.done
}

func (r *redisServer) flushAll(t *testing.T) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: r.addr})
	defer rdb.Close()
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

func (r *redisServer) client(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: r.addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
