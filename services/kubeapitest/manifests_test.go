package kubeapitest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var (
	shared     *cluster
	sharedErr  error
	sharedOnce sync.Once
)

// testCluster is the one cluster of this test binary, started on first use.
func testCluster(t *testing.T) *cluster {
	t.Helper()
	sharedOnce.Do(func() {
		shared, sharedErr = startCluster(context.Background(), os.Stderr)
	})
	if sharedErr != nil {
		t.Fatalf("start the cluster: %v", sharedErr)
	}
	if err := shared.running(); err != nil {
		t.Fatalf("%v\n%v", err, shared.logTails())
	}
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		if code != 0 {
			fmt.Fprintln(os.Stderr, shared.logTails())
		}
		shared.stop()
	}
	os.Exit(code)
}

// chartCase is the chart rendered with one values file.
type chartCase struct {
	name       string
	valueFiles []string // relative to the repository root
}

// chartCases are the chart's defaults (values.yaml), each CI values file and Tilt's values.
func chartCases(t *testing.T) []chartCase {
	t.Helper()
	cases := []chartCase{{name: "default"}, {name: "dev", valueFiles: []string{"tilt/values-dev.yaml"}}}
	ci, err := filepath.Glob(repoPath("charts", "shop", "ci", "*-values.yaml"))
	if err != nil || len(ci) == 0 {
		t.Fatalf("no charts/shop/ci/*-values.yaml: %v", err)
	}
	for _, f := range ci {
		rel, _ := filepath.Rel(repoRoot, f)
		cases = append(cases, chartCase{name: strings.TrimSuffix(filepath.Base(f), "-values.yaml"), valueFiles: []string{rel}})
	}
	return cases
}

// TestChart installs the chart with every values file, each into a namespace of its own where
// Pods must be "restricted": no error and no warning, every Deployment gets its Pods, and the
// `helm test` Pod is admitted.
func TestChart(t *testing.T) {
	for _, tc := range chartCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			c := newClient(t)
			ns := "chart-" + tc.name
			c.createNamespace(t, ctx, ns, restricted)
			objs, hooks, err := renderChart(testCluster(t).version, ns, tc.valueFiles, nil)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if err := c.apply(ctx, ns, objs); err != nil {
				t.Fatalf("apply: %v", err)
			}
			if err := c.waitForPods(ctx, ns, objs, allPods); err != nil {
				t.Errorf("pods: %v", err)
			}
			testPods := kinds(hooks, "Pod")
			if len(testPods) == 0 && tc.name == "default" {
				t.Error("the chart has no helm test Pod by default")
			}
			if err := c.apply(ctx, ns, hooks); err != nil {
				t.Errorf("helm test hook: %v", err)
			}
			for _, p := range testPods {
				if _, err := c.kube.CoreV1().Pods(ns).Get(ctx, p.GetName(), metav1.GetOptions{}); err != nil {
					t.Errorf("helm test Pod %s: %v", p.GetName(), err)
				}
			}
			if w := c.warnings.all(); len(w) > 0 {
				t.Errorf("the server warned:\n%s", strings.Join(w, "\n"))
			}
		})
	}
}

// TestChartUpgrade applies the chart, then again with other values (as `helm upgrade` would):
// no immutable field may stand in the way, and the new Pods are admitted too.
func TestChartUpgrade(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newClient(t)
	const ns = "chart-upgrade"
	c.createNamespace(t, ctx, ns, restricted)
	version := testCluster(t).version
	for i, set := range [][]string{
		nil,
		{"image.tag=0.1.1", "gateway.replicaCount=3", "logLevel=debug", "gateway.port=8080"},
	} {
		objs, _, err := renderChart(version, ns, nil, set)
		if err != nil {
			t.Fatalf("render with %v: %v", set, err)
		}
		if err := c.apply(ctx, ns, objs); err != nil {
			t.Fatalf("apply %d with %v: %v", i+1, set, err)
		}
		want := allPods
		if i > 0 {
			want = firstPod
		}
		if err := c.waitForPods(ctx, ns, objs, want); err != nil {
			t.Fatalf("pods after apply %d: %v", i+1, err)
		}
	}
	d, err := c.kube.AppsV1().Deployments(ns).Get(ctx, releaseName+"-gateway", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, ":0.1.1") {
		t.Errorf("gateway image after the upgrade = %s, want tag 0.1.1", img)
	}
	if r := d.Spec.Replicas; r == nil || *r != 3 {
		t.Errorf("gateway replicas after the upgrade = %v, want 3", r)
	}
	if w := c.warnings.all(); len(w) > 0 {
		t.Errorf("the server warned:\n%s", strings.Join(w, "\n"))
	}
}

// TestKustomizeDevOverlay applies the dev infrastructure, whose own Namespace claims the
// "restricted" level: no error and no warning, and every workload gets its Pods.
func TestKustomizeDevOverlay(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := newClient(t)
	objs, err := kustomizeBuild(repoPath("kustomize", "overlays", "dev"))
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	nss := kinds(objs, "Namespace")
	if len(nss) != 1 {
		t.Fatalf("the dev overlay has %d Namespaces, want 1", len(nss))
	}
	ns := nss[0].GetName()
	if err := c.apply(ctx, ns, nss); err != nil {
		t.Fatalf("apply the namespace: %v", err)
	}
	got, err := c.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Without this label the server would admit anything, and the test would prove nothing.
	if level := got.Labels["pod-security.kubernetes.io/enforce"]; level != "restricted" {
		t.Fatalf("namespace %s enforces Pod Security level %q, want restricted", ns, level)
	}
	c.waitDefaultServiceAccount(t, ctx, ns)
	if err := c.apply(ctx, ns, objs); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if err := c.waitForPods(ctx, ns, objs, allPods); err != nil {
		t.Errorf("pods: %v", err)
	}
	// Applying the same objects again changes nothing and is accepted.
	if err := c.apply(ctx, ns, objs); err != nil {
		t.Errorf("apply again: %v", err)
	}
	if w := c.warnings.all(); len(w) > 0 {
		t.Errorf("the server warned:\n%s", strings.Join(w, "\n"))
	}
}

// TestFlawsAreRefused applies the same manifests with one deliberate flaw and expects the
// server to refuse them: this is what proves that the tests above can fail.
func TestFlawsAreRefused(t *testing.T) {
	type source struct {
		name   string
		render func(t *testing.T, ns string) []*unstructured.Unstructured
	}
	sources := []source{
		{"chart", func(t *testing.T, ns string) []*unstructured.Unstructured {
			objs, hooks, err := renderChart(testCluster(t).version, ns, nil, nil)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			return append(objs, hooks...)
		}},
		{"kustomize", func(t *testing.T, ns string) []*unstructured.Unstructured {
			objs, err := kustomizeBuild(repoPath("kustomize", "overlays", "dev"))
			if err != nil {
				t.Fatalf("kustomize build: %v", err)
			}
			return moveToNamespace(objs, ns)
		}},
	}
	for _, src := range sources {
		t.Run(src.name+"/may-run-as-root", func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			c := newClient(t)
			ns := "flaw-root-" + src.name
			c.createNamespace(t, ctx, ns, restricted)
			objs := src.render(t, ns)
			flawed := firstWorkload(t, objs)
			mayRunAsRoot(t, flawed)

			// A workload is accepted (Pod Security judges only Pods), with a warning...
			if err := c.apply(ctx, ns, kinds(objs, "!Pod")); err != nil {
				t.Fatalf("apply: %v", err)
			}
			if w := c.warnings.all(); !slices.ContainsFunc(w, func(s string) bool {
				return strings.Contains(s, "would violate PodSecurity") && strings.Contains(s, "runAsNonRoot")
			}) {
				t.Errorf("no warning about %s %s running as root; warnings: %q", flawed.GetKind(), flawed.GetName(), w)
			}
			// ...but its Pods are refused: the controller reports FailedCreate.
			err := c.waitForPods(ctx, ns, objs, allPods)
			if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") || !strings.Contains(err.Error(), flawed.GetName()) {
				t.Errorf("the Pods of %s %s that may run as root were not refused; got %v", flawed.GetKind(), flawed.GetName(), err)
			}
			// A bare Pod is refused at once (one of a Deployment: a StatefulSet's template
			// lacks the volumes of its claim templates).
			deployments := kinds(objs, "Deployment")
			if len(deployments) == 0 {
				t.Fatal("no Deployment")
			}
			pod := podOf(deployments[0], deployments[0].GetName()+"-bare")
			mayRunAsRoot(t, pod)
			err = c.applyOne(ctx, ns, pod)
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "violates PodSecurity") {
				t.Errorf("a Pod that may run as root was not refused; got %v", err)
			}
		})
		t.Run(src.name+"/long-port-name", func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			c := newClient(t)
			ns := "flaw-port-" + src.name
			c.createNamespace(t, ctx, ns, restricted)
			objs := src.render(t, ns)
			flawed := firstWorkload(t, objs)
			const name = "a-port-name-of-16" // IANA service names have at most 15 characters
			renamePort(t, flawed, name)
			err := c.applyOne(ctx, ns, flawed)
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "15") {
				t.Errorf("%s %s with port name %q was not refused as invalid; got %v", flawed.GetKind(), flawed.GetName(), name, err)
			}
		})
	}
}

// kinds are the objects of the given kind, or of every other kind for "!kind".
func kinds(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	not := strings.HasPrefix(kind, "!")
	kind = strings.TrimPrefix(kind, "!")
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if (o.GetKind() == kind) != not {
			out = append(out, o)
		}
	}
	return out
}

// firstWorkload is the first Deployment or StatefulSet of objs (the slice's own object).
func firstWorkload(t *testing.T, objs []*unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "Deployment" || o.GetKind() == "StatefulSet" {
			return o
		}
	}
	t.Fatal("no Deployment or StatefulSet")
	return nil
}

// podOf is a bare Pod with the template of workload w.
func podOf(w *unstructured.Unstructured, name string) *unstructured.Unstructured {
	spec, _, _ := unstructured.NestedMap(w.Object, "spec", "template", "spec")
	pod := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	pod.SetAPIVersion("v1")
	pod.SetKind("Pod")
	pod.SetName(name)
	pod.SetNamespace(w.GetNamespace())
	return pod
}

// mayRunAsRoot lets o's Pods run as root: runAsNonRoot false and user 0, for the Pod and for
// every container.
func mayRunAsRoot(t *testing.T, o *unstructured.Unstructured) {
	t.Helper()
	specs := podSpecs([]*unstructured.Unstructured{o})
	if len(specs) != 1 {
		t.Fatalf("%s %s has no Pod spec", o.GetKind(), o.GetName())
	}
	spec := specs[0]
	contexts := []map[string]any{}
	if sc, ok := spec["securityContext"].(map[string]any); ok {
		contexts = append(contexts, sc)
	}
	for _, ctr := range containersOf(spec) {
		sc, _ := ctr["securityContext"].(map[string]any)
		if sc == nil {
			sc = map[string]any{}
			ctr["securityContext"] = sc
		}
		contexts = append(contexts, sc)
	}
	for _, sc := range contexts {
		sc["runAsNonRoot"] = false
		sc["runAsUser"] = int64(0)
	}
	if err := setPodSpec(o, spec); err != nil {
		t.Fatal(err)
	}
}

// renamePort gives the first named port of o's first container the name name.
func renamePort(t *testing.T, o *unstructured.Unstructured, name string) {
	t.Helper()
	spec := podSpecs([]*unstructured.Unstructured{o})[0]
	for _, ctr := range containersOf(spec) {
		ports, _ := ctr["ports"].([]any)
		for _, p := range ports {
			if port, ok := p.(map[string]any); ok && port["name"] != nil {
				port["name"] = name
				if err := setPodSpec(o, spec); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
	}
	t.Fatalf("%s %s has no named container port", o.GetKind(), o.GetName())
}

// moveToNamespace puts kustomize's objects, Namespace included, into namespace ns.
func moveToNamespace(objs []*unstructured.Unstructured, ns string) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		o = o.DeepCopy()
		if o.GetKind() == "Namespace" {
			continue // the test's own namespace replaces it
		}
		if o.GetNamespace() != "" {
			o.SetNamespace(ns)
		}
		out = append(out, o)
	}
	return out
}
