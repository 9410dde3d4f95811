// Package stack runs the whole shop in one process: gateway, payments and
// orders, on the databases and Redis its Options name, or on embedded
// SQLite files and an embedded Redis server. The devstack command (make run)
// and the tests that need a running shop share it.
package stack

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"

	gateway "shop/services/gateway/app"
	orders "shop/services/orders/app"
	payments "shop/services/payments/app"
	"shop/services/platform/authtoken"
	"shop/services/platform/config"
	"shop/services/platform/service"
	"shop/services/platform/telemetry"
)

// Options say where each service listens and what it stores in. The zero
// value runs on free loopback ports, embedded stores and a temporary data
// directory.
type Options struct {
	// GatewayAddr, PaymentsAddr and OrdersAddr are the listen addresses
	// (default "127.0.0.1:0": a free port).
	GatewayAddr, PaymentsAddr, OrdersAddr string
	// OrdersDatabaseURL and PaymentsDatabaseURL name the databases
	// (default: SQLite files in DataDir).
	OrdersDatabaseURL, PaymentsDatabaseURL string
	// RedisURL names the Redis of the streams (default: an embedded server).
	RedisURL string
	// DataDir keeps the SQLite files (default: a temporary directory,
	// removed when the shop stops).
	DataDir string
	// LogLevel, ConsumerName and ShutdownTimeout go to every service
	// (defaults: their configuration's).
	LogLevel        slog.Level
	ConsumerName    string
	ShutdownTimeout time.Duration
	// ReconcileAfter goes to orders (default: its configuration's).
	ReconcileAfter time.Duration
	// Telemetry gives each service its providers (default
	// telemetry.ForService, so that each appears under its own name).
	Telemetry func(ctx context.Context, service string) (telemetry.Providers, error)
	// Gateway holds settings of the gateway by variable name (AUTH,
	// OIDC_ISSUER_URL, OIDC_AUDIENCE, JWT_HS256_SECRET, RATE_LIMIT,
	// RATE_LIMIT_BURST), over its defaults; its REDIS_URL is RedisURL's.
	// With authentication on (AUTH unset or "jwt") and neither a secret nor
	// an issuer, the gateway gets a fresh random JWT_HS256_SECRET, which
	// Shop.JWTSecret tells.
	Gateway map[string]string
}

// Shop is a running shop.
type Shop struct {
	// GatewayURL, PaymentsURL and OrdersURL are the services' base URLs.
	GatewayURL, PaymentsURL, OrdersURL string
	// DataDir holds the SQLite files, "" when both databases are external.
	DataDir string
	// JWTSecret is the gateway's JWT_HS256_SECRET, "" when it has none;
	// Audience is the aud its tokens carry. Token mints one.
	JWTSecret, Audience string
	// PaymentsInternalURL and OrdersInternalURL are the services' internal
	// listeners (on loopback), which take InternalToken.
	PaymentsInternalURL, OrdersInternalURL string
	InternalToken                          string

	done chan struct{}
	err  error
}

// Start starts the three services and returns once all of them listen. The
// shop runs until ctx ends or one service fails, which stops the others;
// Wait returns then.
func Start(ctx context.Context, opts Options) (*Shop, error) {
	ctx, cancel := context.WithCancel(ctx)
	var cleanup []func()
	fail := func(err error) (*Shop, error) {
		cancel()
		for _, f := range cleanup {
			f()
		}
		return nil, err
	}
	// 1. The data directory for the SQLite databases.
	if opts.DataDir == "" && (opts.OrdersDatabaseURL == "" || opts.PaymentsDatabaseURL == "") {
		dir, err := os.MkdirTemp("", "shop-devstack-")
		if err != nil {
			return fail(err)
		}
		cleanup = append(cleanup, func() { os.RemoveAll(dir) })
		opts.DataDir = dir
	}
	if opts.OrdersDatabaseURL == "" {
		opts.OrdersDatabaseURL = "sqlite:" + filepath.Join(opts.DataDir, "orders.db")
	}
	if opts.PaymentsDatabaseURL == "" {
		opts.PaymentsDatabaseURL = "sqlite:" + filepath.Join(opts.DataDir, "payments.db")
	}

	// 2. The embedded Redis server, unless one is given.
	if opts.RedisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return fail(fmt.Errorf("start embedded Redis: %w", err))
		}
		cleanup = append(cleanup, mr.Close)
		opts.RedisURL = "redis://" + mr.Addr() + "/0"
		slog.Info("embedded Redis server started", "url", opts.RedisURL)
	}

	// 3. Telemetry. The OpenTelemetry globals are one per process, but a
	// trace must show three services, not one "devstack": so each service
	// gets providers of its own, whose resource names it (gateway, orders,
	// payments), and is handed them in its configuration, as a binary's
	// service would use the globals. Exporters and sampling come from the
	// same OTEL_* environment; cli.Main's shutdown flushes them all.
	if opts.Telemetry == nil {
		opts.Telemetry = telemetry.ForService
	}
	tel := map[string]telemetry.Providers{}
	for _, name := range []string{"gateway", "orders", "payments"} {
		p, err := opts.Telemetry(ctx, name)
		if err != nil {
			return fail(err)
		}
		tel[name] = p
	}

	// 4. Credentials: the gateway's token secret (unless it has an issuer
	// or none is wanted), and the services' internal credential.
	gwVars, err := gatewaySettings(opts.Gateway, opts.RedisURL)
	if err != nil {
		return fail(err)
	}
	internalToken, err := randomText(16)
	if err != nil {
		return fail(err)
	}

	// 5. Payments and orders, then the gateway in front of them; when one
	// stops, all do.
	s := &Shop{DataDir: opts.DataDir, done: make(chan struct{}), InternalToken: internalToken,
		JWTSecret: gwVars["JWT_HS256_SECRET"], Audience: cmp.Or(gwVars["OIDC_AUDIENCE"], authtoken.Audience)}
	r := runner{stop: cancel, errc: make(chan error, 3)}
	svc := func(addr, dbURL string, p telemetry.Providers) (service.Config, error) {
		var c service.Config
		err := config.Defaults(&c)
		c.HTTPAddr, c.DatabaseURL, c.RedisURL, c.Telemetry = listenAddr(addr), dbURL, opts.RedisURL, p
		// The internal endpoints on loopback only, whatever addr is.
		c.InternalAddr, c.InternalToken = "127.0.0.1:0", internalToken
		c.LogLevel = opts.LogLevel
		if opts.ConsumerName != "" {
			c.ConsumerName = opts.ConsumerName
		}
		if opts.ShutdownTimeout > 0 {
			c.ShutdownTimeout = opts.ShutdownTimeout
		}
		return c, err
	}
	paymentsCfg, err := svc(opts.PaymentsAddr, opts.PaymentsDatabaseURL, tel["payments"])
	if err != nil {
		return fail(err)
	}
	ordersSvc, err := svc(opts.OrdersAddr, opts.OrdersDatabaseURL, tel["orders"])
	if err != nil {
		return fail(err)
	}
	ordersCfg := orders.Config{Config: ordersSvc}
	ordersCfg.ReconcileAfter, err = reconcileAfter(opts.ReconcileAfter)
	if err != nil {
		return fail(err)
	}
	paymentsInternalAt, ordersInternalAt := make(chan net.Addr, 1), make(chan net.Addr, 1)
	paymentsCfg.OnInternalListen = func(a net.Addr) { paymentsInternalAt <- a }
	ordersCfg.OnInternalListen = func(a net.Addr) { ordersInternalAt <- a }
	paymentsAt := r.start(ctx, "payments", func(ctx context.Context, on func(net.Addr)) error {
		paymentsCfg.OnListen = on
		return payments.Run(ctx, paymentsCfg)
	})
	ordersAt := r.start(ctx, "orders", func(ctx context.Context, on func(net.Addr)) error {
		ordersCfg.OnListen = on
		return orders.Run(ctx, ordersCfg)
	})
	if s.PaymentsURL, err = r.await("payments", paymentsAt); err == nil {
		s.OrdersURL, err = r.await("orders", ordersAt)
	}
	if err == nil {
		s.PaymentsInternalURL, err = awaitInternal("payments", paymentsInternalAt, paymentsAt)
	}
	if err == nil {
		s.OrdersInternalURL, err = awaitInternal("orders", ordersInternalAt, ordersAt)
	}
	if err == nil {
		var gw gateway.Config
		err = config.DefaultsWith(&gw, gwVars)
		gw.HTTPAddr, gw.OrdersURL, gw.PaymentsURL = listenAddr(opts.GatewayAddr), s.OrdersURL, s.PaymentsURL
		gw.LogLevel, gw.Telemetry = opts.LogLevel, tel["gateway"]
		if opts.ShutdownTimeout > 0 {
			gw.ShutdownTimeout = opts.ShutdownTimeout
		}
		gatewayAt := r.start(ctx, "gateway", func(ctx context.Context, on func(net.Addr)) error {
			gw.OnListen = on
			return gateway.Run(ctx, gw)
		})
		if err == nil {
			s.GatewayURL, err = r.await("gateway", gatewayAt)
		}
	}
	go func() {
		s.err = r.wait()
		for _, f := range cleanup {
			f()
		}
		close(s.done)
	}()
	if err != nil {
		cancel()
		<-s.done
		return nil, err
	}
	return s, nil
}

// Token mints a token for userID that the gateway accepts: signed with
// JWTSecret, for Audience. It fails when the gateway has no secret (AUTH
// off, or an issuer).
func (s *Shop) Token(userID int64) (string, error) {
	if s.JWTSecret == "" {
		return "", errors.New("the gateway has no JWT_HS256_SECRET to mint tokens with")
	}
	return authtoken.Mint([]byte(s.JWTSecret), userID, authtoken.Options{Audience: s.Audience})
}

// gatewaySettings returns the gateway's settings: given, with REDIS_URL,
// and a fresh JWT_HS256_SECRET when authentication is on without a secret
// or an issuer.
func gatewaySettings(given map[string]string, redisURL string) (map[string]string, error) {
	vars := maps.Clone(given)
	if vars == nil {
		vars = map[string]string{}
	}
	vars["REDIS_URL"] = redisURL
	auth := cmp.Or(vars["AUTH"], "jwt")
	if auth == "jwt" && vars["JWT_HS256_SECRET"] == "" && vars["OIDC_ISSUER_URL"] == "" {
		secret, err := randomText(authtoken.MinSecretLen)
		if err != nil {
			return nil, err
		}
		vars["JWT_HS256_SECRET"] = secret
	}
	if auth != "jwt" {
		delete(vars, "JWT_HS256_SECRET") // no tokens to mint
	}
	return vars, nil
}

// randomText returns n random bytes as hexadecimal text (2n characters).
func randomText(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// awaitInternal returns the base URL of a service's internal listener once
// it listens.
func awaitInternal(name string, at chan net.Addr, st started) (string, error) {
	select {
	case a := <-at:
		return "http://" + loopback(a.String()), nil
	case err := <-st.err:
		return "", fmt.Errorf("%s stopped before its internal listener listened: %w", name, cmp.Or(err, context.Canceled))
	}
}

// Wait waits until the shop has stopped and returns why, nil when its
// context ended.
func (s *Shop) Wait() error {
	<-s.done
	return s.err
}

// runner runs the services, each in a goroutine, and stops all when one
// stops.
type runner struct {
	stop    context.CancelFunc
	errc    chan error
	started int
}

// started reports a service's address, or its error if it stopped first.
type started struct {
	addr chan net.Addr
	err  chan error
}

func (r *runner) start(ctx context.Context, name string, run func(context.Context, func(net.Addr)) error) started {
	st := started{addr: make(chan net.Addr, 1), err: make(chan error, 1)}
	r.started++
	go func() {
		err := run(ctx, func(a net.Addr) { st.addr <- a })
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			err = nil // stopped while starting: not a failure
		}
		if err != nil {
			err = fmt.Errorf("%s: %w", name, err)
		}
		r.stop()
		st.err <- err
		r.errc <- err
	}()
	return st
}

// await returns the base URL of a service once it listens.
func (r *runner) await(name string, st started) (string, error) {
	select {
	case a := <-st.addr:
		return "http://" + loopback(a.String()), nil
	case err := <-st.err:
		return "", fmt.Errorf("%s stopped before it listened: %w", name, cmp.Or(err, context.Canceled))
	}
}

// wait returns once every started service has stopped.
func (r *runner) wait() error {
	var errs []error
	for range r.started {
		errs = append(errs, <-r.errc)
	}
	return errors.Join(errs...)
}

// reconcileAfter is d, or the orders service's default when d is zero.
func reconcileAfter(d time.Duration) (time.Duration, error) {
	if d > 0 {
		return d, nil
	}
	var c orders.Config
	err := config.Defaults(&c)
	return c.ReconcileAfter, err
}

func listenAddr(addr string) string {
	if addr == "" {
		return "127.0.0.1:0"
	}
	return addr
}

// loopback turns a listen address into one a client on this machine can use.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
