// Command bench is `make bench`: it runs the shop as three processes on
// PostgreSQL and Redis, measures a reference on the same machine — how many
// "insert an order and its outbox row" transactions PostgreSQL itself
// commits per second (pgbench, same client count) — then loads the shop flat
// out with loadgen and prints both numbers, their ratio and what the CPU
// per settled order goes to, by process; then latency at half that
// throughput, the same run on a database of 1,000,000 orders with a
// 100,000-row outbox, and the relay and consumer micro-benchmarks.
//
// Its environment is listed by usage (bench -h). Flat out and at half
// load, it counts PostgreSQL's commits and statements per settled order
// (pgstats.go), and the CPU time and the time waiting for a core of every
// process involved, from /proc; at half load, it also splits create →
// settled into hops (hops.go). The services run with the GOMAXPROCS and
// GOMEMLIMIT the chart gives them.
// The gateway authenticates with a fresh JWT_HS256_SECRET, which loadgen
// gets as -jwt-secret; its rate limit is set far above the load, so that it
// costs what it costs without capping the numbers.
// It creates and drops the databases shop_bench_orders, shop_bench_payments,
// shop_bench_ref and shop_bench_micro, and stops every process it starts.
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/uptrace/bun"

	"shop/services/loadgen/internal/load"
	ordersapp "shop/services/orders/app"
	"shop/services/platform/authtoken"
	"shop/services/platform/database"
)

type settings struct {
	adminURL, redisURL string
	workers            int
	duration           time.Duration
	scale, micro       bool
	profileDir         string
	jsonPath           string // BENCH_JSON: where the report goes as JSON too
	previousPath       string // BENCH_PREVIOUS: an earlier report, printed beside this one
	label              string // BENCH_LABEL: what this run measures, in its JSON report
	gomaxprocs         string // BENCH_GOMAXPROCS: each service's GOMAXPROCS, "0" for Go's default
	halfRate           int    // BENCH_HALF_RATE: the half-load run's orders/s; 0 for half the flat-out rate
	jwtSecret          string // the gateway's JWT_HS256_SECRET, fresh per run
}

// usage is what -h prints: bench takes no flags, only its environment.
const usage = `Usage: bench

Runs the shop as three processes on PostgreSQL and Redis, measures what PostgreSQL itself commits
on this machine (pgbench, same client count), loads the shop flat out with loadgen, and prints both
numbers, their ratio, the CPU per settled order by process, latency at half that throughput, a run
on 1,000,000 orders, and the relay and consumer micro-benchmarks. The gateway authenticates
(a fresh JWT_HS256_SECRET per run, passed to loadgen as -jwt-secret).

Environment:
  BENCH_DATABASE_URL  an administrative connection; bench creates and drops shop_bench_* databases (default "postgres://postgres:postgres@127.0.0.1:5432/postgres")
  BENCH_REDIS_URL     Redis for the streams; flushed (default "redis://127.0.0.1:6379/14")
  BENCH_WORKERS       concurrent clients (default "8")
  BENCH_DURATION      each load run (default "20s")
  BENCH_SCALE         0 skips the 1,000,000-orders run (default: run it)
  BENCH_MICRO         0 skips the micro-benchmarks (default: run them)
  BENCH_PROFILE       a directory: save CPU profiles of orders, payments and gateway under full load (default: none)
  BENCH_JSON          a file: write the report there as JSON too (default: none)
  BENCH_LABEL         what this run measures (a change's name), kept in its JSON report (default: none)
  BENCH_GOMAXPROCS    each service's GOMAXPROCS; 0 for Go's default, one per core (default "1": the chart sets it from each service's CPU limit, one core)
  BENCH_HALF_RATE     the half-load run's orders/s, the same for runs to compare (default: half the flat-out settled rate)
  BENCH_PREVIOUS      an earlier BENCH_JSON report, printed beside this one; "none" for none (default: the README's run, ` + readmeRun + `)

Flat out and at half load, it also counts PostgreSQL's commits (pg_stat_database) and statements
(pg_stat_statements, when shared_preload_libraries loads it) per settled order, and how long the
processes waited for a core and how often they were switched in (/proc/<pid>/task/*/schedstat); at
half load, it splits create → settled into hops from the timestamps the shop records (order row,
stream entry ids, payment row, order update).
`

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprint(os.Stderr, usage)
		fmt.Fprintf(os.Stderr, "\nbench: unexpected argument %q\n", fs.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := settings{
		adminURL:     cmp.Or(os.Getenv("BENCH_DATABASE_URL"), "postgres://postgres:postgres@127.0.0.1:5432/postgres"),
		redisURL:     cmp.Or(os.Getenv("BENCH_REDIS_URL"), "redis://127.0.0.1:6379/14"),
		workers:      8,
		duration:     20 * time.Second,
		scale:        os.Getenv("BENCH_SCALE") != "0",
		micro:        os.Getenv("BENCH_MICRO") != "0",
		profileDir:   os.Getenv("BENCH_PROFILE"),
		jsonPath:     os.Getenv("BENCH_JSON"),
		previousPath: os.Getenv("BENCH_PREVIOUS"),
		label:        os.Getenv("BENCH_LABEL"),
		gomaxprocs:   cmp.Or(os.Getenv("BENCH_GOMAXPROCS"), "1"),
	}
	if v := os.Getenv("BENCH_WORKERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			log.Fatalf("BENCH_WORKERS=%q: want a positive number", v)
		}
		s.workers = n
	}
	if v := os.Getenv("BENCH_HALF_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			log.Fatalf("BENCH_HALF_RATE=%q: want a positive number of orders per second", v)
		}
		s.halfRate = n
	}
	if v := os.Getenv("BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			log.Fatalf("BENCH_DURATION=%q: want a duration such as 20s", v)
		}
		s.duration = d
	}
	secret := make([]byte, authtoken.MinSecretLen)
	if _, err := rand.Read(secret); err != nil {
		log.Fatal(err)
	}
	s.jwtSecret = hex.EncodeToString(secret)
	if err := run(ctx, s); err != nil {
		stop()
		log.Print(err)
		os.Exit(1)
	}
}

// result is one row of the final table.
type result struct{ name, value string }

// bench is one run of the benchmark: what its phases share.
type bench struct {
	s         settings
	root, bin string            // the repository, and the binaries built
	dbURL     map[string]string // the fresh databases by name
	results   []result
	micro     []string

	procs                     []*process // the shop's, stopped in reverse
	payments, orders, gateway *process
	pprofAddr                 map[string]string
	otlp                      *otlpSink // where the services export their telemetry
	refTPS                    float64
	flat                      *load.Report

	statements bool        // pg_stat_statements is loaded (created in shop_bench_ref)
	pgFlat     *pgPerOrder // PostgreSQL's work per settled order, flat out
	pgHalf     *pgPerOrder // … and at half load
	hops       *hopBudget  // the per-hop budget at half load
}

// shopDatabases are the databases of the shop's services.
var shopDatabases = []string{"shop_bench_orders", "shop_bench_payments"}

func run(ctx context.Context, s settings) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	bin, err := os.MkdirTemp("", "shop-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	b := &bench{s: s, root: root, bin: bin, dbURL: map[string]string{}}
	b.add("load average at start (1/5/15 min)", "%s", loadAvg())
	defer func() { fmt.Printf("  %-58s %s\n", "load average at end (1/5/15 min)", loadAvg()) }()
	defer b.stopShop()
	for _, phase := range []func(context.Context) error{
		b.databases, b.build, b.reference, b.startShop, b.flatOut, b.halfLoad, b.scale, b.microBenchmarks,
	} {
		if err := phase(ctx); err != nil {
			return err
		}
	}
	b.table()
	if b.s.jsonPath != "" {
		return b.writeJSON(b.s.jsonPath)
	}
	return nil
}

// add records a row of the table and shows it at once.
func (b *bench) add(name, format string, args ...any) {
	b.results = append(b.results, result{name, fmt.Sprintf(format, args...)})
	fmt.Fprintf(os.Stderr, "  → %s: %s\n", name, fmt.Sprintf(format, args...))
}

// databases creates fresh databases and flushes the Redis database.
func (b *bench) databases(ctx context.Context) error {
	step("databases")
	admin, err := database.Open(ctx, b.s.adminURL, database.Options{MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, name := range []string{"shop_bench_orders", "shop_bench_payments", "shop_bench_ref", "shop_bench_micro"} {
		if err := exec1(ctx, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)", "CREATE DATABASE "+name); err != nil {
			return err
		}
		b.dbURL[name] = withDatabase(b.s.adminURL, name)
	}
	ropts, err := redis.ParseURL(b.s.redisURL)
	if err != nil {
		return fmt.Errorf("BENCH_REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("flush %s: %w", b.s.redisURL, err)
	}
	ref, err := database.Open(ctx, b.dbURL["shop_bench_ref"], database.Options{MaxOpenConns: 1})
	if err != nil {
		return err
	}
	defer ref.Close()
	b.statements, err = enableStatements(ctx, ref)
	return err
}

// pgSample samples PostgreSQL's counters of the shop's databases, through
// shop_bench_ref so that the reading does not count, after waiting for the
// backends to report theirs.
func (b *bench) pgSample(ctx context.Context) (pgSample, error) {
	select {
	case <-ctx.Done():
		return pgSample{}, ctx.Err()
	case <-time.After(statsFlushWait):
	}
	ref, err := database.Open(ctx, b.dbURL["shop_bench_ref"], database.Options{MaxOpenConns: 1})
	if err != nil {
		return pgSample{}, err
	}
	defer ref.Close()
	return samplePG(ctx, ref, shopDatabases, b.statements)
}

// build builds the binaries.
func (b *bench) build(ctx context.Context) error {
	step("build")
	for _, name := range []string{"orders", "payments", "gateway", "loadgen"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(b.bin, name), "./services/"+name)
		cmd.Dir, cmd.Stdout, cmd.Stderr = b.root, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build ./services/%s: %w", name, err)
		}
	}
	return nil
}

// reference measures PostgreSQL's own commit rate for the orders service's
// transaction, with the same number of clients.
func (b *bench) reference(ctx context.Context) error {
	step("reference (pgbench)")
	// Two connections: Migrate holds its lock on one and migrates on another.
	ref, err := database.Open(ctx, b.dbURL["shop_bench_ref"], database.Options{MaxOpenConns: 2})
	if err != nil {
		return err
	}
	// The orders service's own schema, outbox included.
	_, err = database.Migrate(ctx, ref, ordersapp.Migrations)
	ref.Close()
	if err != nil {
		return err
	}
	b.refTPS, err = pgbench(ctx, b.dbURL["shop_bench_ref"], b.s.workers, refScript)
	if err != nil {
		return err
	}
	b.add("reference: order+outbox commits/s (pgbench)", "%.0f", b.refTPS)
	return nil
}

// startShop starts the shop: three processes.
func (b *bench) startShop(ctx context.Context) error {
	step("start the shop")
	sink, err := startOTLPSink()
	if err != nil {
		return err
	}
	b.otlp = sink
	// The services log at their default level (info), as deployed.
	common := append([]string{"REDIS_URL=" + b.s.redisURL, "SHUTDOWN_TIMEOUT=10s"}, sink.env()...)
	// As the chart deploys them: it sets GOMAXPROCS and GOMEMLIMIT from each
	// container's limits, one core and 256 MiB.
	common = append(common, "GOMEMLIMIT=256MiB")
	if b.s.gomaxprocs != "0" {
		common = append(common, "GOMAXPROCS="+b.s.gomaxprocs)
	}
	start := func(name string, env ...string) (*process, error) {
		p, err := startProcess(ctx, name, filepath.Join(b.bin, name), append(slices.Clone(common), env...))
		if p != nil {
			b.procs = append(b.procs, p)
		}
		return p, err
	}
	b.pprofAddr = map[string]string{}
	for _, n := range []string{"orders", "payments", "gateway"} {
		b.pprofAddr[n] = freeAddr()
	}
	if b.payments, err = start("payments", "DATABASE_URL="+b.dbURL["shop_bench_payments"], "CONSUMER_NAME=bench", "PPROF_ADDR="+b.pprofAddr["payments"]); err != nil {
		return err
	}
	if b.orders, err = start("orders", "DATABASE_URL="+b.dbURL["shop_bench_orders"], "CONSUMER_NAME=bench", "PPROF_ADDR="+b.pprofAddr["orders"]); err != nil {
		return err
	}
	b.gateway, err = start("gateway", "ORDERS_URL="+b.orders.url, "PAYMENTS_URL="+b.payments.url,
		"AUTH=jwt", "JWT_HS256_SECRET="+b.s.jwtSecret, "RATE_LIMIT=1000000", "RATE_LIMIT_BURST=1000000", "PPROF_ADDR="+b.pprofAddr["gateway"])
	return err
}

// stopShop stops the shop's processes, the last started first.
func (b *bench) stopShop() {
	for _, p := range slices.Backward(b.procs) {
		p.stop()
	}
	b.procs = nil
	if b.otlp != nil {
		b.otlp.stop()
	}
}

// loadgen runs the load generator and returns its report and its own CPU
// time (user+system).
func (b *bench) loadgen(ctx context.Context, extra ...string) (*load.Report, time.Duration, error) {
	args := append([]string{"-gateway", b.gateway.url, "-jwt-secret", b.s.jwtSecret, "-json", "-workers", strconv.Itoa(b.s.workers),
		"-users", "50", "-duration", b.s.duration.String(), "-settle-timeout", "5m"}, extra...)
	cmd := exec.CommandContext(ctx, filepath.Join(b.bin, "loadgen"), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	runErr := cmd.Run()
	var rep load.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return nil, 0, fmt.Errorf("loadgen %s: %w (output %q)", strings.Join(args, " "), errors.Join(runErr, err), out.String())
	}
	if runErr != nil {
		fmt.Fprintf(os.Stderr, "loadgen failed (%v): violations %q\n", runErr, rep.Violations)
	}
	return &rep, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// latency records a report's latencies and errors.
func (b *bench) latency(label string, rep *load.Report) {
	b.add(label+" create p50/p95/p99 ms", "%.1f / %.1f / %.1f", rep.CreateP50Ms, rep.CreateP95Ms, rep.CreateP99Ms)
	b.add(label+" create→settled p50/p95/p99 ms", "%.1f / %.1f / %.1f", rep.SettleP50Ms, rep.SettleP95Ms, rep.SettleP99Ms)
	b.add(label+" errors, invariants", "%v, ok=%v, unsettled=%d", rep.Errors, rep.InvariantsOK, rep.OrdersUnsettled)
}

// flatOut runs a short warm-up, then the shop flat out, sampling memory and
// CPU (and profiling).
func (b *bench) flatOut(ctx context.Context) error {
	step("warm-up")
	if _, _, err := b.loadgen(ctx, "-duration", "3s"); err != nil {
		return err
	}
	pgBefore, err := b.pgSample(ctx)
	if err != nil {
		return err
	}
	spansBefore := b.otlp.spans.Load()
	step(fmt.Sprintf("flat out, %d workers, %s", b.s.workers, b.s.duration))
	rss := startRSS(ctx, b.orders, b.payments, b.gateway)
	if b.s.profileDir != "" {
		go profile(ctx, b.s.profileDir, b.pprofAddr, b.s.duration)
	}
	cpu := startCPU(b.orders, b.payments, b.gateway)
	flat, loadgenCPU, err := b.loadgen(ctx)
	if err != nil {
		return err
	}
	b.flat = flat
	perOrder, wait := cpu(loadgenCPU, flat.OrdersSettled)
	b.add("shop: settled orders/s (flat out)", "%.0f", flat.SettledPerSec)
	b.add("ratio settled/reference", "%.2f (goal ≥ 0.35)", flat.SettledPerSec/b.refTPS)
	b.latency("flat out:", flat)
	if perOrder != "" {
		b.add("flat out: CPU per settled order, ms", "%s", perOrder)
		b.add("flat out: waiting for a core per settled order, ms", "%s", wait)
	}
	b.add("RSS MiB orders/payments/gateway (first 5s → end)", "%s", rss())
	pgAfter, err := b.pgSample(ctx)
	if err != nil {
		return err
	}
	// pgSample waited long enough for the services' span batches (sent
	// every 5 s) to arrive.
	b.add("flat out: spans exported per settled order", "%.1f", float64(b.otlp.spans.Load()-spansBefore)/float64(max(1, flat.OrdersSettled)))
	pg := pgWork(pgBefore, pgAfter, flat.OrdersSettled, 12)
	b.pgFlat = &pg
	b.addPG("flat out:", pg)
	return nil
}

// addPG adds the rows of PostgreSQL's work per settled order.
func (b *bench) addPG(label string, pg pgPerOrder) {
	b.add(label+" PostgreSQL commits per settled order", "%.2f (%s; rollbacks %.2f)", pg.Commits, byDB(pg.CommitsBy, "shop_bench_"), pg.Rollbacks)
	if pg.Statements != nil {
		b.add(label+" statements per settled order", "%.2f (%s)", *pg.Statements, byDB(pg.StatementsBy, "shop_bench_"))
	} else {
		b.add(label+" statements per settled order", "%s", pgssNotLoaded)
	}
}

// halfLoad measures latency at half the flat-out throughput, or at
// BENCH_HALF_RATE.
func (b *bench) halfLoad(ctx context.Context) error {
	half := max(1, b.flat.SettledPerSec/2)
	if b.s.halfRate > 0 {
		half = float64(b.s.halfRate)
	}
	step(fmt.Sprintf("half load, %.0f orders/s", half))
	ropts, err := redis.ParseURL(b.s.redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	release, err := holdStreams(ctx, rdb)
	if err != nil {
		return err
	}
	defer release()
	pgBefore, err := b.pgSample(ctx)
	if err != nil {
		return err
	}
	since := time.Now().Add(-time.Second)
	cpu := startCPU(b.orders, b.payments, b.gateway)
	rep, loadgenCPU, err := b.loadgen(ctx, "-rate", strconv.FormatFloat(half, 'f', 0, 64), "-workers", strconv.Itoa(4*b.s.workers))
	if err != nil {
		return err
	}
	b.add("half load: rate orders/s", "%.0f (settled %.0f/s)", half, rep.SettledPerSec)
	b.latency("half load:", rep)
	if perOrder, wait := cpu(loadgenCPU, rep.OrdersSettled); perOrder != "" {
		b.add("half load: CPU per settled order, ms", "%s", perOrder)
		b.add("half load: waiting for a core per settled order, ms", "%s", wait)
	}
	// Fewer orders per second make smaller batches: each order then carries
	// more of the statements and commits that a batch costs whatever its size.
	pgAfter, err := b.pgSample(ctx)
	if err != nil {
		return err
	}
	pgHalf := pgWork(pgBefore, pgAfter, rep.OrdersSettled, 12)
	b.pgHalf = &pgHalf
	b.addPG("half load:", pgHalf)
	bud, err := b.readHops(ctx, rdb, since, rep)
	if err != nil {
		return err
	}
	bud.Create = hopStat{Name: "create request", P50: rep.CreateP50Ms, P95: rep.CreateP95Ms, P99: rep.CreateP99Ms}
	b.hops = &bud
	b.add("half load: per hop p50/p95/p99 ms", "%d orders; stream times from entry ids %d + %d, else published_at", bud.Orders, bud.FromEntryID[0], bud.FromEntryID[1])
	b.add("  create request (loadgen, gateway → orders → back)", "%.1f / %.1f / %.1f", rep.CreateP50Ms, rep.CreateP95Ms, rep.CreateP99Ms)
	for _, h := range bud.Hops {
		b.add("  "+h.Name, "%.1f / %.1f / %.1f", h.P50, h.P95, h.P99)
	}
	b.add("  order written → settled (all hops)", "%.1f / %.1f / %.1f", rep.SettleP50Ms, rep.SettleP95Ms, rep.SettleP99Ms)
	return nil
}

// readHops reads the per-hop budget of the orders a loadgen run placed.
func (b *bench) readHops(ctx context.Context, rdb redis.UniversalClient, since time.Time, rep *load.Report) (hopBudget, error) {
	orders, err := database.Open(ctx, b.dbURL["shop_bench_orders"], database.Options{MaxOpenConns: 1})
	if err != nil {
		return hopBudget{}, err
	}
	defer orders.Close()
	payments, err := database.Open(ctx, b.dbURL["shop_bench_payments"], database.Options{MaxOpenConns: 1})
	if err != nil {
		return hopBudget{}, err
	}
	defer payments.Close()
	_, bud, err := readHops(ctx, orders, payments, rdb, since, rep.UserBase+1, rep.UserBase+int64(rep.Users))
	return bud, err
}

// scale runs flat out again with 1,000,000 orders and a 100,000-row outbox
// already there, and times listing a user's orders among them.
func (b *bench) scale(ctx context.Context) error {
	if !b.s.scale {
		return nil
	}
	step("scale: seed 1,000,000 orders and 100,000 outbox rows")
	seeded, err := seed(ctx, b.dbURL["shop_bench_orders"])
	if err != nil {
		return err
	}
	b.add("scale: seeding took", "%.1fs", seeded.Seconds())
	big, _, err := b.loadgen(ctx)
	if err != nil {
		return err
	}
	b.add("scale: settled orders/s", "%.0f (%.0f%% of the empty database)", big.SettledPerSec, 100*big.SettledPerSec/b.flat.SettledPerSec)
	b.latency("scale:", big)
	p50, p99, err := listLatency(ctx, b.gateway.url, b.s.jwtSecret)
	if err != nil {
		return err
	}
	b.add("scale: GET /orders?user_id= (100 of 100 orders) p50/p99 ms", "%.1f / %.1f", p50, p99)
	return nil
}

// microBenchmarks stops the shop, so that it does not share the machine
// with them, and runs the relay and consumer micro-benchmarks.
func (b *bench) microBenchmarks(ctx context.Context) error {
	b.stopShop()
	if !b.s.micro {
		return nil
	}
	step("micro-benchmarks")
	env := append(os.Environ(), "TEST_DATABASE_URL="+b.dbURL["shop_bench_micro"], "TEST_REDIS_URL="+b.s.redisURL)
	for _, m := range []struct{ pkg, bench, times string }{
		{"./services/platform/outbox", "BenchmarkRelayBacklog", "20000x"},
		{"./services/platform/outbox", "BenchmarkRelayIdleLatency", "300x"},
		{"./services/platform/stream", "BenchmarkConsumer", "3000x"},
	} {
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^"+m.bench+"$", "-benchtime", m.times, m.pkg)
		cmd.Dir, cmd.Env = b.root, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", m.bench, err, out)
		}
		for line := range strings.Lines(string(out)) {
			if strings.HasPrefix(line, "Benchmark") {
				b.micro = append(b.micro, strings.TrimSpace(line))
			}
		}
	}
	return nil
}

// table prints the results.
func (b *bench) table() {
	fmt.Printf("\nShop benchmark — %d cores, %d workers, %s per run, %s\n\n", numCPU(), b.s.workers, b.s.duration, time.Now().Format(time.DateTime))
	prev, label := b.previous()
	if prev != nil {
		fmt.Printf("  %-58s %-42s %s\n", "", "this run", label)
	}
	for _, r := range b.results {
		if prev == nil {
			fmt.Printf("  %-58s %s\n", r.name, r.value)
			continue
		}
		fmt.Printf("  %-58s %-42s %s\n", r.name, r.value, prev[r.name])
	}
	for _, pg := range []struct {
		when string
		work *pgPerOrder
	}{{"flat out", b.pgFlat}, {"half load", b.pgHalf}} {
		if pg.work == nil || len(pg.work.Top) == 0 {
			continue
		}
		fmt.Printf("\nStatements per settled order, %s (pg_stat_statements, top by calls)\n", pg.when)
		for _, t := range pg.work.Top {
			fmt.Printf("  %6.2f  %-9s %s\n", t.PerOrder, strings.TrimPrefix(t.DB, "shop_bench_"), t.Query)
		}
	}
	if len(b.micro) > 0 {
		fmt.Println("\nMicro-benchmarks (PostgreSQL and Redis from BENCH_*; SQLite and miniredis too)")
		for _, m := range b.micro {
			fmt.Println("  " + m)
		}
	}
}

func step(what string) { fmt.Fprintf(os.Stderr, "\n== %s\n", what) }

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOWORK").Output()
	gowork := strings.TrimSpace(string(out))
	if err != nil || gowork == "" || gowork == "off" {
		return "", fmt.Errorf("find go.work (run from the repository): %w", err)
	}
	return filepath.Dir(gowork), nil
}

func exec1(ctx context.Context, db *bun.DB, stmts ...string) error {
	for _, q := range stmts {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// withDatabase is the admin URL with another database name.
func withDatabase(admin, name string) string {
	u, err := url.Parse(admin)
	if err != nil {
		return admin
	}
	u.Path = "/" + name
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// refScript is one create-order transaction as pgbench runs it: the order
// and its outbox row.
const refScript = `\set uid random(1, 100000)
\set amt random(1, 10000)
BEGIN;
INSERT INTO orders (id, user_id, amount, description, status, created_at, updated_at)
  VALUES (gen_random_uuid(), :uid, :amt, 'pgbench', 'NEW', now(), now());
INSERT INTO outbox (id, stream, type, payload, traceparent, tracestate, occurred_at)
  VALUES (gen_random_uuid(), 'payments.requests', 'payment.requested',
          '{"order_id":"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b","user_id":1000000001,"amount":1234}', '', '', now());
COMMIT;
`

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// pgbench runs script for 10 seconds with clients connections and returns
// the transactions per second.
func pgbench(ctx context.Context, dbURL string, clients int, script string) (float64, error) {
	f, err := os.CreateTemp("", "shop-bench-*.sql")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(script); err != nil {
		return 0, err
	}
	f.Close()
	cmd := exec.CommandContext(ctx, "pgbench", "-n", "-M", "prepared", "-c", strconv.Itoa(clients),
		"-j", strconv.Itoa(min(clients, numCPU())), "-T", "10", "-f", f.Name(), dbURL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench (install postgresql-contrib or postgresql-client): %v\n%s", err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench: no tps in\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// seed writes 1,000,000 settled orders for users 1–10,000 (100 each) and
// 100,000 published outbox rows into the orders database.
func seed(ctx context.Context, dbURL string) (time.Duration, error) {
	db, err := database.Open(ctx, dbURL, database.Options{MaxOpenConns: 1})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	t0 := time.Now()
	err = exec1(ctx, db,
		`INSERT INTO orders (id, user_id, amount, description, status, created_at, updated_at)
		 SELECT gen_random_uuid(), 1 + i % 10000, 1 + i % 10000, 'seeded', 'FINISHED',
		        now() - make_interval(secs => 1000000 - i), now() - make_interval(secs => 1000000 - i)
		 FROM generate_series(1, 1000000) AS i`,
		`INSERT INTO outbox (id, stream, type, payload, occurred_at, published_at)
		 SELECT gen_random_uuid(), 'payments.requests', 'payment.requested', '{"seeded":true}', now(), now()
		 FROM generate_series(1, 100000)`,
		`ANALYZE orders`, `ANALYZE outbox`)
	return time.Since(t0), err
}

// listLatency times 200 GET /orders?user_id= of seeded users, each with
// 100 orders among the million.
func listLatency(ctx context.Context, gateway, secret string) (p50, p99 float64, err error) {
	var ds []time.Duration
	for i := range 200 {
		user := int64(1 + i*37%10000)
		token, err := authtoken.Mint([]byte(secret), user, authtoken.Options{})
		if err != nil {
			return 0, 0, err
		}
		t0 := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/orders?user_id=%d", gateway, user), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0, err
		}
		var orders []json.RawMessage
		err = json.NewDecoder(resp.Body).Decode(&orders)
		resp.Body.Close()
		if err != nil || len(orders) != 100 {
			return 0, 0, fmt.Errorf("GET /orders?user_id: %d orders, %v", len(orders), err)
		}
		ds = append(ds, time.Since(t0))
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return ms(ds[len(ds)/2]), ms(ds[len(ds)*99/100]), nil
}

// profile saves CPU profiles of the services while the load runs.
func profile(ctx context.Context, dir string, addrs map[string]string, d time.Duration) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Print(err)
		return
	}
	secs := max(1, int(min(d, 15*time.Second).Seconds())-3)
	time.Sleep(2 * time.Second) // past the ramp-up
	for name, addr := range addrs {
		go func() {
			u := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs)
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				log.Printf("profile %s: %v", name, err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(filepath.Join(dir, name+".cpu.pprof"))
			if err != nil {
				log.Print(err)
				return
			}
			defer f.Close()
			io.Copy(f, resp.Body)
		}()
	}
}

// process is a service the benchmark started.
type process struct {
	name, url string
	cmd       *exec.Cmd
	done      chan struct{}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startProcess(ctx context.Context, name, bin string, env []string) (*process, error) {
	addr := freeAddr()
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), env...), "HTTP_ADDR="+addr)
	out, err := prefixed(name)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, url: "http://" + addr, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			return p, fmt.Errorf("%s exited before it was ready", name)
		case <-ctx.Done():
			return p, ctx.Err()
		default:
		}
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			return p, fmt.Errorf("%s not ready within 60s", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and kills the process after 15 seconds.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// prefixed writes a service's output to $TMPDIR/shop-bench-NAME.log, and
// to stderr, prefixed with the name, what is not routine.
func prefixed(name string) (io.Writer, error) {
	file, err := os.Create(filepath.Join(os.TempDir(), "shop-bench-"+name+".log"))
	if err != nil {
		return nil, err
	}
	r, w := io.Pipe()
	go func() {
		defer file.Close()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			file.Write(append(line, '\n'))
			if !routine(line) {
				fmt.Fprintf(os.Stderr, "[%s] %s\n", name, line)
			}
		}
	}()
	return w, nil
}

// routine reports whether a log line is a JSON record below WARN: the
// services log at info as deployed (a declined payment is a line), which
// goes to the file only.
func routine(line []byte) bool {
	var rec struct{ Level string }
	if json.Unmarshal(line, &rec) != nil {
		return false
	}
	return rec.Level == "INFO" || rec.Level == "DEBUG"
}

// startRSS samples the processes' resident memory every second; the
// returned function stops and formats first-5s-peak → last, per process.
func startRSS(ctx context.Context, procs ...*process) func() string {
	ctx, cancel := context.WithCancel(ctx)
	samples := make([][]int64, len(procs))
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			for i, p := range procs {
				samples[i] = append(samples[i], rssKiB(p.cmd.Process.Pid))
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() string {
		cancel()
		<-done
		var parts []string
		for _, s := range samples {
			if len(s) == 0 {
				parts = append(parts, "?")
				continue
			}
			warm := slices.Max(s[:min(5, len(s))])
			parts = append(parts, fmt.Sprintf("%d→%d", warm/1024, s[len(s)-1]/1024))
		}
		return strings.Join(parts, " / ")
	}
}

func rssKiB(pid int) int64 {
	data, err := readProc(pid, "status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

func readProc(pid int, file string) ([]byte, error) {
	return os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
}

// ticksPerSecond is USER_HZ, the unit of the CPU times in /proc: 100 on
// every common Linux configuration.
const ticksPerSecond = 100

// cpuSample is the CPU time spent so far, in ticks, by each process the
// bench accounts for (by pid, under its group's name) and by the machine.
type cpuSample struct {
	procs      map[int]procTicks
	busy, idle int64 // all cores
}

type procTicks struct {
	group string
	ticks int64
	// waitNs is how long the process's threads were ready to run but
	// waited for a core (the run queue), and runs how many times one was
	// put on a core, from /proc/<pid>/task/*/schedstat.
	waitNs, runs int64
}

// startCPU samples the CPU time of the services, of every postgres and
// redis-server process and of the machine; the returned function samples
// again and formats the difference per settled order with cpuPerOrder, and
// the time those processes waited for a core with waitPerOrder. Both are
// empty without /proc.
func startCPU(services ...*process) func(loadgen time.Duration, settled int64) (cpu, wait string) {
	before, ok := sampleCPU(services)
	return func(loadgen time.Duration, settled int64) (string, string) {
		after, ok2 := sampleCPU(services)
		if !ok || !ok2 || settled == 0 {
			return "", ""
		}
		return cpuPerOrder(before, after, loadgen, settled), waitPerOrder(before, after, settled)
	}
}

func sampleCPU(services []*process) (cpuSample, bool) {
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSample{}, false
	}
	busy, idle, err := machineTicks(string(stat))
	if err != nil {
		return cpuSample{}, false
	}
	s := cpuSample{procs: map[int]procTicks{}, busy: busy, idle: idle}
	add := func(pid int, group string) {
		if data, err := readProc(pid, "stat"); err == nil {
			if t, err := statTicks(string(data)); err == nil {
				wait, runs := runQueue(pid)
				s.procs[pid] = procTicks{group, t, wait, runs}
			}
		}
	}
	for _, p := range services {
		add(p.cmd.Process.Pid, p.name)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := readProc(pid, "comm")
		switch c := strings.TrimSpace(string(comm)); {
		case c == "postgres":
			add(pid, "postgres")
		case strings.HasPrefix(c, "redis-server"):
			add(pid, "redis")
		}
	}
	return s, true
}

// cpuPerOrder is the CPU milliseconds per settled order that each group
// spent between two samples, highest first, and the machine's busy share of
// all cores. A process that exited in between loses its time (PostgreSQL
// backends of the services' pools live through the run); one that started
// counts whole. loadgen's own time covers its whole run, setup and final
// invariant checks included, as the samples do.
func cpuPerOrder(before, after cpuSample, loadgen time.Duration, settled int64) string {
	ms := map[string]float64{"loadgen": float64(loadgen.Microseconds()) / 1000}
	for pid, a := range after.procs {
		ms[a.group] += float64(a.ticks-before.procs[pid].ticks) * 1000 / ticksPerSecond
	}
	groups := slices.SortedFunc(maps.Keys(ms), func(a, b string) int { return cmp.Compare(ms[b], ms[a]) })
	var parts []string
	shop := 0.0 // every process but the load generator: what the goal counts
	for _, g := range groups {
		parts = append(parts, fmt.Sprintf("%s %.2f", g, ms[g]/float64(settled)))
		if g != "loadgen" {
			shop += ms[g] / float64(settled)
		}
	}
	busy, idle := after.busy-before.busy, after.idle-before.idle
	return fmt.Sprintf("%.2f without the load generator: %s (machine busy %.0f%%)", shop, strings.Join(parts, ", "), 100*float64(busy)/float64(max(1, busy+idle)))
}

// waitPerOrder is the milliseconds per settled order that each group's
// processes were ready to run but waited for a core, between two samples,
// highest first, and how many times per order their threads were put on a
// core (each a context switch). On a machine whose cores the database,
// Redis, the three services and the load generator share, this is where
// latency goes that no span shows: each step of an order wakes a process,
// which then queues for a core behind the others.
func waitPerOrder(before, after cpuSample, settled int64) string {
	ms, runs := map[string]float64{}, 0.0
	for pid, a := range after.procs {
		ms[a.group] += float64(a.waitNs-before.procs[pid].waitNs) / 1e6
		runs += float64(a.runs - before.procs[pid].runs)
	}
	groups := slices.SortedFunc(maps.Keys(ms), func(a, b string) int { return cmp.Compare(ms[b], ms[a]) })
	var parts []string
	total := 0.0
	for _, g := range groups {
		parts = append(parts, fmt.Sprintf("%s %.2f", g, ms[g]/float64(settled)))
		total += ms[g] / float64(settled)
	}
	return fmt.Sprintf("%.2f: %s; %.0f context switches", total, strings.Join(parts, ", "), runs/float64(settled))
}

// runQueue is how long all of pid's threads have waited on a run queue, in
// nanoseconds, and how many times they were put on a core: the second and
// third fields of each /proc/<pid>/task/<tid>/schedstat; 0 where the kernel
// keeps no schedstats. Threads that exited are not counted.
func runQueue(pid int) (waitNs, runs int64) {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err == nil {
			w, r := schedstat(string(data))
			waitNs, runs = waitNs+w, runs+r
		}
	}
	return waitNs, runs
}

// schedstat is the run-queue wait and the number of runs in a schedstat
// line ("<on cpu ns> <waiting ns> <runs>"), 0 and 0 if the line is not one.
func schedstat(line string) (waitNs, runs int64) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return 0, 0
	}
	waitNs, err1 := strconv.ParseInt(f[1], 10, 64)
	runs, err2 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0
	}
	return waitNs, runs
}

// statTicks is utime+stime from a /proc/<pid>/stat line. The command name
// in parentheses may hold spaces and parentheses, so fields count from the
// last ')': utime and stime are fields 14 and 15 of proc(5), field 3 the
// first after it.
func statTicks(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	f := strings.Fields(stat[i+1:]) // from field 3 on
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("short /proc/<pid>/stat: %q", stat)
	}
	utime, err1 := strconv.ParseInt(f[14-3], 10, 64)
	stime, err2 := strconv.ParseInt(f[15-3], 10, 64)
	return utime + stime, errors.Join(err1, err2)
}

// machineTicks is the busy (user, nice, system, irq, softirq, steal) and
// idle (idle, iowait) time of all cores from /proc/stat's "cpu" line; guest
// time is already in user.
func machineTicks(stat string) (busy, idle int64, err error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("no cpu line in /proc/stat: %q", line)
	}
	var t [8]int64
	for i := range t {
		if t[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return 0, 0, err
		}
	}
	user, nice, system, idleT, iowait, irq, softirq, steal := t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]
	return user + nice + system + irq + softirq + steal, idleT + iowait, nil
}

func numCPU() int { return runtime.NumCPU() }

// loadAvg is the machine's load average: other work on the machine skews
// every number here, so the table says how busy it was.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}
