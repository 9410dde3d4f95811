package kubeapitest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"shop/services/kubeapitest/kubebins"
)

// cluster is etcd, kube-apiserver and kube-controller-manager running on loopback ports, with
// a static admin token, RBAC and Pod Security admission (namespace labels decide the level).
type cluster struct {
	dir     string // certificates, data and logs
	server  string // https://127.0.0.1:port
	token   string // of the admin user (group system:masters)
	caFile  string
	version string // the Kubernetes version of the binaries
	procs   []*process
}

// process is one running program and its log file.
type process struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // set when done closes
}

// startCluster builds the binaries when missing and starts the three programs; stop them with
// cluster.stop, also after an error.
func startCluster(ctx context.Context, log io.Writer) (*cluster, error) {
	bins, err := kubebins.Ensure(ctx, log)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kubeapitest-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, version: bins.KubeVersion}
	if err := c.start(ctx, bins); err != nil {
		return c, errors.Join(err, c.logTails())
	}
	return c, nil
}

func (c *cluster) start(ctx context.Context, bins kubebins.Binaries) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClient := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	etcdPeer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	c.server = fmt.Sprintf("https://127.0.0.1:%d", ports[2])

	pki, err := writePKI(filepath.Join(c.dir, "pki"))
	if err != nil {
		return err
	}
	c.caFile = pki.caCert
	c.token = pki.token

	if err := c.run(ctx, "etcd", bins.Etcd,
		"--name=kubeapitest",
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+etcdClient,
		"--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer,
		"--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=kubeapitest="+etcdPeer,
		"--unsafe-no-fsync", // a throw-away store: durability buys nothing here
		"--log-level=warn",
	); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "etcd", func() error { return httpOK(ctx, etcdClient+"/health") }); err != nil {
		return err
	}

	if err := c.run(ctx, "kube-apiserver", bins.KubeAPIServer,
		"--etcd-servers="+etcdClient,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]),
		"--tls-cert-file="+pki.serverCert,
		"--tls-private-key-file="+pki.serverKey,
		"--client-ca-file="+pki.caCert,
		"--token-auth-file="+pki.tokenFile,
		"--authorization-mode=RBAC",
		"--enable-admission-plugins=PodSecurity",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+pki.saKey,
		"--service-account-signing-key-file="+pki.saKey,
		// ClusterIPs are only allocated here: nothing listens on them, nothing is sent to them.
		"--service-cluster-ip-range=10.96.0.0/16",
		// The kubernetes Service's endpoints would name the loopback address, which is invalid.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	); err != nil {
		return err
	}
	admin, err := kubernetes.NewForConfig(c.config(nil))
	if err != nil {
		return err
	}
	if err := c.waitFor(ctx, "kube-apiserver", func() error {
		_, err := admin.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err
	}); err != nil {
		return err
	}

	kubeconfig := filepath.Join(c.dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, certificate-authority: %q}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
`, c.server, pki.caCert, pki.token)), 0o600); err != nil {
		return err
	}
	if err := c.run(ctx, "kube-controller-manager", bins.ControllerManager,
		"--kubeconfig="+kubeconfig,
		"--secure-port=0", // serve nothing: the tests read its work through the API server
		"--leader-elect=false",
		"--service-account-private-key-file="+pki.saKey,
		"--root-ca-file="+pki.caCert,
		"--use-service-account-credentials=false",
		"--profiling=false",
	); err != nil {
		return err
	}
	// Its service-account controller gives every namespace a "default" ServiceAccount, which
	// Pods need to be admitted: once the default namespace has one, the controllers run.
	return c.waitFor(ctx, "kube-controller-manager", func() error {
		_, err := admin.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// config is a client configuration of the admin user; warnings go to w when it is not nil.
func (c *cluster) config(w rest.WarningHandler) *rest.Config {
	cfg := &rest.Config{
		Host:            c.server,
		BearerToken:     c.token,
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.caFile},
		QPS:             200,
		Burst:           400,
		UserAgent:       "shop-kubeapitest",
	}
	if w != nil {
		cfg.WarningHandler = w
	}
	return cfg
}

// run starts one program with its output in <dir>/<name>.log. It is killed if the test binary
// dies first.
func (c *cluster) run(ctx context.Context, name, bin string, args ...string) error {
	logPath := filepath.Join(c.dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return nil
}

// waitFor polls ready until it succeeds, the program exits, or a minute passes.
func (c *cluster) waitFor(ctx context.Context, name string, ready func() error) error {
	p := c.procs[len(c.procs)-1]
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for {
		err := ready()
		if err == nil {
			fmt.Fprintf(os.Stderr, "kubeapitest: %s ready after %s\n", name, time.Since(start).Round(10*time.Millisecond))
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready: %v", name, p.err)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w", name, err)
		case <-tick.C:
		}
	}
}

// stop ends the programs, the last started first, and removes the folder.
func (c *cluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	os.RemoveAll(c.dir)
}

// logTails is the end of each program's log, for a failure message.
func (c *cluster) logTails() error {
	var errs []error
	for _, p := range c.procs {
		data, err := os.ReadFile(p.log)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		errs = append(errs, fmt.Errorf("--- last lines of %s:\n%s", p.name, strings.Join(lines, "\n")))
	}
	return errors.Join(errs...)
}

// running reports an error if a program has exited.
func (c *cluster) running() error {
	for _, p := range c.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		default:
		}
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func httpOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// pki is the files of a cluster's certificates and keys.
type pki struct {
	caCert, serverCert, serverKey, saKey, tokenFile string
	token                                           string
}

// writePKI makes a CA, the API server's serving certificate (for 127.0.0.1 and the in-cluster
// names), the service-account signing key and the static token file of the admin user.
func writePKI(dir string) (pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return pki{}, err
	}
	p := pki{
		caCert:     filepath.Join(dir, "ca.crt"),
		serverCert: filepath.Join(dir, "server.crt"),
		serverKey:  filepath.Join(dir, "server.key"),
		saKey:      filepath.Join(dir, "sa.key"),
		tokenFile:  filepath.Join(dir, "tokens.csv"),
		token:      rand.Text(),
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return pki{}, err
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "shop-kubeapitest-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return pki{}, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return pki{}, err
	}
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return pki{}, err
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}, ca, &serverKey.PublicKey, caKey)
	if err != nil {
		return pki{}, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return pki{}, err
	}
	files := map[string][]byte{
		p.caCert:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		p.serverCert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverDER}),
		p.tokenFile:  []byte(p.token + `,admin,admin-uid,"system:masters"` + "\n"),
	}
	for path, key := range map[string]*ecdsa.PrivateKey{p.serverKey: serverKey, p.saKey: saKey} {
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return pki{}, err
		}
		files[path] = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return pki{}, err
		}
	}
	return p, nil
}
