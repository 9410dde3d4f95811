package clienttest_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"shop/services/clienttest/shopclient"
)

// TestGeneratedClientDrivesTheShop is the contract test: see the package
// comment.
func TestGeneratedClientDrivesTheShop(t *testing.T) {
	gateway, devstack := startDevstack(t)
	checkGeneratedClient(t, gateway)

	ctx := context.Background()
	user := time.Now().UnixNano()%1_000_000_000 + 1
	big := user + 1
	// Each user calls with a token of its own, which devstack's token command mints.
	clientOf := func(user int64) *shopclient.ClientWithResponses {
		c, err := shopclient.NewClientWithResponses(gateway, withToken(t, devstack, user))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c, cBig, cNoAccount := clientOf(user), clientOf(big), clientOf(big+1)

	// The README's walk-through: an account, a top-up, an order, read back.
	acct, err := c.CreateAccountWithResponse(ctx, shopclient.CreateAccountBody{UserId: user})
	must(t, "create account", acct, err, http.StatusCreated)
	if acct.JSON201 == nil || acct.JSON201.UserId != user || acct.JSON201.Balance != "0.00" {
		t.Fatalf("create account: %s", acct.Body)
	}
	top, err := c.TopUpAccountWithResponse(ctx, shopclient.TopUpBody{UserId: user, Amount: "100.00"})
	must(t, "top up", top, err, http.StatusOK)
	if top.JSON200.Balance != "100.00" {
		t.Errorf("balance after top-up %q, want 100.00", top.JSON200.Balance)
	}
	desc := "two coffees"
	created, err := c.CreateOrderWithResponse(ctx, shopclient.CreateOrderBody{UserId: user, Amount: "30.00", Description: &desc})
	must(t, "create order", created, err, http.StatusCreated)
	o := created.JSON201
	if o.Amount != "30.00" || o.Status != shopclient.NEW || o.UserId != user || o.Description != desc {
		t.Errorf("created order %+v", o)
	}
	if got := waitSettled(t, c, o.Id); got.Status != shopclient.FINISHED {
		t.Errorf("order %s is %s, want FINISHED", o.Id, got.Status)
	}
	limit := int64(10)
	list, err := c.ListOrdersWithResponse(ctx, &shopclient.ListOrdersParams{UserId: user, Limit: &limit})
	must(t, "list orders", list, err, http.StatusOK)
	if list.JSON200 == nil || len(*list.JSON200) != 1 || (*list.JSON200)[0].Id != o.Id {
		t.Errorf("list orders: %s", list.Body)
	}
	bal, err := c.GetAccountBalanceWithResponse(ctx, user)
	must(t, "balance", bal, err, http.StatusOK)
	if bal.JSON200.Balance != "70.00" {
		t.Errorf("balance %q, want 70.00", bal.JSON200.Balance)
	}

	// An amount whose cents need more than float32's 24 bits (and than a
	// float64 printed short) round-trips exactly: the client holds strings.
	_, err = cBig.CreateAccountWithResponse(ctx, shopclient.CreateAccountBody{UserId: big})
	if err != nil {
		t.Fatal(err)
	}
	top, err = cBig.TopUpAccountWithResponse(ctx, shopclient.TopUpBody{UserId: big, Amount: "9999999.99"})
	must(t, "top up 9999999.99", top, err, http.StatusOK)
	if top.JSON200.Balance != "9999999.99" {
		t.Errorf("balance after topping up 9999999.99: %q", top.JSON200.Balance)
	}
	created, err = cBig.CreateOrderWithResponse(ctx, shopclient.CreateOrderBody{UserId: big, Amount: "9999999.99"})
	must(t, "order 9999999.99", created, err, http.StatusCreated)
	if created.JSON201.Amount != "9999999.99" {
		t.Errorf("order amount %q, want 9999999.99", created.JSON201.Amount)
	}
	if got := waitSettled(t, cBig, created.JSON201.Id); got.Status != shopclient.FINISHED || got.Amount != "9999999.99" {
		t.Errorf("order %+v, want FINISHED 9999999.99", got)
	}
	bal, err = cBig.GetAccountBalanceWithResponse(ctx, big)
	must(t, "balance", bal, err, http.StatusOK)
	if bal.JSON200.Balance != "0.00" {
		t.Errorf("balance after paying 9999999.99 of 9999999.99: %q", bal.JSON200.Balance)
	}

	// Errors arrive typed, as the description promises, with what is wrong.
	again, err := c.CreateAccountWithResponse(ctx, shopclient.CreateAccountBody{UserId: user})
	must(t, "create account again", again, err, http.StatusConflict)
	if p := again.ApplicationproblemJSON409; p == nil || p.Status == nil || *p.Status != 409 {
		t.Errorf("409 not typed: %s", again.Body)
	}
	for amount, want := range map[string]string{
		"1.001":         "must have at most two fraction digits",
		"0":             "must be greater than 0",
		"-1.00":         "must be greater than 0",
		"1000000000.01": "must be at most 1000000000.00",
		"1e2":           "must be a decimal number",
	} {
		bad, err := c.CreateOrderWithResponse(ctx, shopclient.CreateOrderBody{UserId: user, Amount: amount})
		must(t, "order "+amount, bad, err, http.StatusUnprocessableEntity)
		p := bad.ApplicationproblemJSON422
		if p == nil || p.Errors == nil || len(*p.Errors) != 1 || (*p.Errors)[0].Message == nil ||
			!strings.HasPrefix(*(*p.Errors)[0].Message, want) || *(*p.Errors)[0].Location != "body.amount" {
			t.Errorf("amount %s: want a typed 422 saying %q at body.amount, got %s", amount, want, bad.Body)
		}
	}
	missing, err := c.GetOrderWithResponse(ctx, uuid.Must(uuid.NewV7()))
	must(t, "unknown order", missing, err, http.StatusNotFound)
	if missing.ApplicationproblemJSON404 == nil {
		t.Errorf("404 not typed: %s", missing.Body)
	}
	noAcct, err := cNoAccount.TopUpAccountWithResponse(ctx, shopclient.TopUpBody{UserId: big + 1, Amount: "1.00"})
	must(t, "top up without account", noAcct, err, http.StatusNotFound)
	if noAcct.ApplicationproblemJSON404 == nil {
		t.Errorf("404 not typed: %s", noAcct.Body)
	}
	// A malformed body through the generated client's raw variant: 400.
	raw, err := c.CreateOrderWithBodyWithResponse(ctx, "application/json", strings.NewReader(`{"user_id":`))
	must(t, "malformed body", raw, err, http.StatusBadRequest)
	if raw.ApplicationproblemJSON400 == nil {
		t.Errorf("400 not typed: %s", raw.Body)
	}
}

type response interface{ StatusCode() int }

func must(t *testing.T, what string, r response, err error, status int) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.StatusCode() != status {
		t.Fatalf("%s: status %d, want %d", what, r.StatusCode(), status)
	}
}

func waitSettled(t *testing.T, c *shopclient.ClientWithResponses, id uuid.UUID) shopclient.OrderBody {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := c.GetOrderWithResponse(context.Background(), id)
		must(t, "get order", r, err, http.StatusOK)
		if r.JSON200.Status != shopclient.NEW {
			return *r.JSON200
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s still NEW after 20s", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkGeneratedClient generates the client from the gateway's live
// description and compares it with shopclient (or, with UPDATE_CLIENT=1,
// writes it there).
func checkGeneratedClient(t *testing.T, gateway string) {
	t.Helper()
	resp, err := http.Get(gateway + "/openapi-3.0.json")
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi-3.0.json: %s", resp.Status)
	}
	dir := t.TempDir()
	specPath := filepath.Join(dir, "openapi-3.0.json")
	if err := os.WriteFile(specPath, spec, 0o644); err != nil {
		t.Fatal(err)
	}
	// The committed configuration, writing elsewhere.
	config, err := os.ReadFile("oapi-codegen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	generated := filepath.Join(dir, "client.gen.go")
	config = bytes.Replace(config, []byte("output: shopclient/client.gen.go"), []byte("output: "+generated), 1)
	configPath := filepath.Join(dir, "oapi-codegen.yaml")
	if err := os.WriteFile(configPath, config, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "tool", "oapi-codegen", "-config", configPath, specPath)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, out)
	}
	got, err := os.ReadFile(generated)
	if err != nil {
		t.Fatal(err)
	}
	const committed = "shopclient/client.gen.go"
	if os.Getenv("UPDATE_CLIENT") == "1" {
		if err := os.WriteFile(committed, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the live description generates a client other than %s: the API changed. Review the change, "+
			"then regenerate it with UPDATE_CLIENT=1 go test ./... (GOWORK=off) in services/clienttest", committed)
	}
}

// testSecret is the JWT_HS256_SECRET devstack runs with in this test.
const testSecret = "clienttest-secret-of-the-gateway-tokens"

// withToken has every request of a client carry a token for user, minted
// by `devstack token` with testSecret.
func withToken(t *testing.T, devstack string, user int64) shopclient.ClientOption {
	t.Helper()
	cmd := exec.Command(devstack, "token", "-user", strconv.FormatInt(user, 10))
	cmd.Env = append(os.Environ(), "JWT_HS256_SECRET="+testSecret)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("devstack token -user %d: %v", user, err)
	}
	token := strings.TrimSpace(string(out))
	return shopclient.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	})
}

// startDevstack builds devstack from the workspace and runs it on free
// loopback ports, with authentication by testSecret, until the test ends; it
// returns the gateway's URL once the gateway is ready (then it holds the
// complete description) and the devstack binary.
func startDevstack(t *testing.T) (gateway, bin string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(t.TempDir(), "devstack")
	build := exec.Command("go", "build", "-o", bin, "./services/devstack")
	build.Dir = root
	build.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build devstack: %v\n%s", err, out)
	}
	addrs := make([]string, 3)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = ln.Addr().String()
		ln.Close()
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "GATEWAY_ADDR="+addrs[0], "PAYMENTS_ADDR="+addrs[1], "ORDERS_ADDR="+addrs[2], "LOG_LEVEL=warn",
		"AUTH=jwt", "JWT_HS256_SECRET="+testSecret)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("devstack did not stop within 30s")
		}
		if t.Failed() {
			t.Logf("devstack output:\n%s", out.String())
		}
	})
	gateway = "http://" + addrs[0]
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("devstack exited: %v\n%s", err, out.String())
		default:
		}
		resp, err := http.Get(gateway + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return gateway, bin
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready within 60s: %v\n%s", errors.Join(err), out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
