package kubeapitest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/releaseutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	kustomizetypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// repoRoot is the repository's top directory (this module lives in services/kubeapitest).
var repoRoot = func() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}()

func repoPath(parts ...string) string {
	return filepath.Join(append([]string{repoRoot}, parts...)...)
}

const releaseName = "shop"

// renderChart renders charts/shop as `helm template` does for a release in namespace ns, with
// the value files (relative to the repository root) and --set values given. It returns the
// release's objects and its hooks (the `helm test` Pod).
func renderChart(kubeVersion, ns string, valueFiles, set []string) (objects, hooks []*unstructured.Unstructured, err error) {
	chrt, err := loader.Load(repoPath("charts", "shop"))
	if err != nil {
		return nil, nil, err
	}
	opts := values.Options{Values: set}
	for _, f := range valueFiles {
		opts.ValueFiles = append(opts.ValueFiles, repoPath(f))
	}
	vals, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		return nil, nil, err
	}
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, nil, err
	}
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.ReleaseName = releaseName
	install.Namespace = ns
	install.KubeVersion = kv
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return nil, nil, err
	}
	objects, err = decode([]byte(rel.Manifest))
	if err != nil {
		return nil, nil, err
	}
	for _, h := range rel.Hooks {
		objs, err := decode([]byte(h.Manifest))
		if err != nil {
			return nil, nil, err
		}
		hooks = append(hooks, objs...)
	}
	return objects, hooks, nil
}

// kustomizeBuild builds a kustomization as `kustomize build --load-restrictor=LoadRestrictionsNone`
// does (the collector's ConfigMap comes from the root otel-collector.yaml).
func kustomizeBuild(dir string) ([]*unstructured.Unstructured, error) {
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = kustomizetypes.LoadRestrictionsNone
	resources, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	out, err := resources.AsYaml()
	if err != nil {
		return nil, err
	}
	return decode(out)
}

// decode splits a YAML stream into objects, skipping empty documents.
func decode(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// warningLog collects the warnings the API server sends (the Warning header): deprecated
// APIs, unknown fields, Pod Security "warn" verdicts, and the like.
type warningLog struct {
	mu   sync.Mutex
	list []string
}

func (w *warningLog) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warningLog) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.list)
}

// client is an admin client of the test cluster that keeps the warnings it receives.
type client struct {
	kube     kubernetes.Interface
	dynamic  dynamic.Interface
	mapper   meta.RESTMapper
	warnings *warningLog
}

func newClient(t *testing.T) *client {
	t.Helper()
	c := testCluster(t)
	w := &warningLog{}
	cfg := c.config(w)
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(kube.Discovery()))
	return &client{kube: kube, dynamic: dyn, mapper: mapper, warnings: w}
}

// fieldManager owns the fields these tests apply.
const fieldManager = "shop-kubeapitest"

// apply applies objs with server-side apply and strict field validation, in Helm's install
// order (namespaces, service accounts, config, then workloads). Objects without a namespace go
// to ns when they are namespaced. Every object is tried; the errors are joined.
func (c *client) apply(ctx context.Context, ns string, objs []*unstructured.Unstructured) error {
	sorted := slices.Clone(objs)
	slices.SortStableFunc(sorted, func(a, b *unstructured.Unstructured) int {
		return installRank(a.GetKind()) - installRank(b.GetKind())
	})
	var errs []error
	for _, obj := range sorted {
		if err := c.applyOne(ctx, ns, obj); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err))
		}
	}
	return errors.Join(errs...)
}

func installRank(kind string) int {
	if i := slices.Index(releaseutil.InstallOrder, kind); i >= 0 {
		return i
	}
	return len(releaseutil.InstallOrder)
}

func (c *client) applyOne(ctx context.Context, ns string, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	mapping, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	var res dynamic.ResourceInterface = c.dynamic.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() == "" {
			obj = obj.DeepCopy()
			obj.SetNamespace(ns)
		}
		res = c.dynamic.Resource(mapping.Resource).Namespace(obj.GetNamespace())
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		return err
	}
	force := true
	_, err = res.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
		FieldManager:    fieldManager,
		Force:           &force,
		FieldValidation: metav1.FieldValidationStrict,
	})
	return err
}

// restricted are the labels of a namespace whose Pods must meet the "restricted" Pod Security
// Standard; "warn" also makes the server warn about workloads whose Pods would not.
var restricted = map[string]string{
	"pod-security.kubernetes.io/enforce":         "restricted",
	"pod-security.kubernetes.io/enforce-version": "latest",
	"pod-security.kubernetes.io/warn":            "restricted",
	"pod-security.kubernetes.io/warn-version":    "latest",
}

// createNamespace applies a namespace with those labels and waits for its default
// ServiceAccount, without which no Pod is admitted.
func (c *client) createNamespace(t *testing.T, ctx context.Context, name string, labels map[string]string) {
	t.Helper()
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(name)
	ns.SetLabels(labels)
	if err := c.applyOne(ctx, "", ns); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
	c.waitDefaultServiceAccount(t, ctx, name)
}

func (c *client) waitDefaultServiceAccount(t *testing.T, ctx context.Context, ns string) {
	t.Helper()
	err := poll(ctx, time.Minute, func() (bool, error) {
		_, err := c.kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		t.Fatalf("namespace %s has no default ServiceAccount: %v", ns, err)
	}
}

// rollout is how many Pods waitForPods expects of each workload.
type rollout int

const (
	// allPods: every replica of the current template (a first install).
	allPods rollout = iota
	// firstPod: at least one Pod of the current template (an upgrade: with maxUnavailable 0 the
	// rollout stops at its first surge Pod, which never becomes ready without a kubelet).
	firstPod
)

// waitForPods waits until the controllers have created the Pods of every Deployment and
// StatefulSet among objs in namespace ns. It fails at once when the namespace has a
// FailedCreate event, which is how a controller reports a Pod that admission refused.
func (c *client) waitForPods(ctx context.Context, ns string, objs []*unstructured.Unstructured, want rollout) error {
	var workloads []*unstructured.Unstructured
	for _, o := range objs {
		if (o.GetKind() == "Deployment" || o.GetKind() == "StatefulSet") && o.GetAPIVersion() == "apps/v1" {
			workloads = append(workloads, o)
		}
	}
	if len(workloads) == 0 {
		return errors.New("no Deployment or StatefulSet to wait for")
	}
	var pending []string
	err := poll(ctx, 90*time.Second, func() (bool, error) {
		if err := c.failedCreates(ctx, ns); err != nil {
			return false, err
		}
		pending = pending[:0]
		for _, w := range workloads {
			done, err := c.podsCreated(ctx, ns, w, want)
			if err != nil {
				return false, err
			}
			if !done {
				pending = append(pending, w.GetKind()+" "+w.GetName())
			}
		}
		return len(pending) == 0, nil
	})
	if err != nil && len(pending) > 0 {
		return fmt.Errorf("%w; still without their Pods: %s", err, strings.Join(pending, ", "))
	}
	return err
}

func (c *client) podsCreated(ctx context.Context, ns string, w *unstructured.Unstructured, want rollout) (bool, error) {
	apps := c.kube.AppsV1()
	switch w.GetKind() {
	case "Deployment":
		d, err := apps.Deployments(ns).Get(ctx, w.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		if want == firstPod {
			replicas = min(replicas, 1)
		}
		return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas >= replicas, nil
	default:
		s, err := apps.StatefulSets(ns).Get(ctx, w.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		replicas := int32(1)
		if s.Spec.Replicas != nil {
			replicas = *s.Spec.Replicas
		}
		// An ordered StatefulSet creates Pod n+1 only once Pod n is ready, never here.
		if want == firstPod || s.Spec.PodManagementPolicy != "Parallel" {
			replicas = min(replicas, 1)
		}
		return s.Status.ObservedGeneration >= s.Generation && s.Status.Replicas >= replicas, nil
	}
}

// failedCreates returns the FailedCreate events of namespace ns as an error.
func (c *client) failedCreates(ctx context.Context, ns string) error {
	events, err := c.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreate"})
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range events.Items {
		errs = append(errs, fmt.Errorf("%s %s: %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message))
	}
	return errors.Join(errs...)
}

// poll calls done until it reports true or an error, or until timeout passes.
func poll(ctx context.Context, timeout time.Duration, done func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not done within %s", timeout)
		case <-tick.C:
		}
	}
}

// podSpecs are the Pod specs of objs: of Pods and of the templates of workloads.
func podSpecs(objs []*unstructured.Unstructured) []map[string]any {
	var out []map[string]any
	for _, o := range objs {
		path := []string{"spec", "template", "spec"}
		if o.GetKind() == "Pod" {
			path = []string{"spec"}
		}
		if spec, ok, _ := unstructured.NestedMap(o.Object, path...); ok {
			out = append(out, spec)
		}
	}
	return out
}

// containersOf are the containers and init containers of a Pod spec.
func containersOf(spec map[string]any) []map[string]any {
	var out []map[string]any
	for _, field := range []string{"initContainers", "containers"} {
		list, _ := spec[field].([]any)
		for _, c := range list {
			if m, ok := c.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// setPodSpec replaces the Pod spec of o (a Pod or a workload) with spec.
func setPodSpec(o *unstructured.Unstructured, spec map[string]any) error {
	path := []string{"spec", "template", "spec"}
	if o.GetKind() == "Pod" {
		path = []string{"spec"}
	}
	return unstructured.SetNestedMap(o.Object, spec, path...)
}
