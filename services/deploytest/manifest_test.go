package deploytest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// repoRoot is the repository's top directory (this module lives in services/deploytest).
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

// object is one decoded Kubernetes object.
type object struct {
	source     string // where it was rendered from, for messages
	apiVersion string
	kind       string
	name       string
	namespace  string
	value      any // pointer to the k8s.io/api type
}

func (o object) String() string {
	return fmt.Sprintf("%s %s/%s (%s)", o.kind, o.namespace, o.name, o.source)
}

// manifest is a set of rendered objects.
type manifest struct {
	objects []object
}

func (m *manifest) add(other *manifest) *manifest {
	out := &manifest{objects: append([]object{}, m.objects...)}
	out.objects = append(out.objects, other.objects...)
	return out
}

// kinds lists every kind the chart and kustomize may render, with its API type. Anything else
// fails the decode: a new kind needs a decision (and a line here).
var kinds = map[string]func() any{
	"v1/Namespace":                           func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                              func() any { return &corev1.Secret{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/Pod":                                 func() any { return &corev1.Pod{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                    func() any { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/Ingress":           func() any { return &networkingv1.Ingress{} },
	"networking.k8s.io/v1/NetworkPolicy":     func() any { return &networkingv1.NetworkPolicy{} },
}

// decodeStream decodes a multi-document YAML stream strictly: an unknown or misspelt field,
// a duplicate key or an unknown kind is an error.
func decodeStream(source, defaultNamespace string, data []byte) (*manifest, error) {
	m := &manifest{}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		if len(probe) == 0 {
			continue // comments only
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, i, err)
		}
		key := tm.APIVersion + "/" + tm.Kind
		newValue, ok := kinds[key]
		if !ok {
			return nil, fmt.Errorf("%s: document %d: unexpected kind %q", source, i, key)
		}
		value := newValue()
		if err := yaml.UnmarshalStrict(doc, value); err != nil {
			return nil, fmt.Errorf("%s: %s (document %d): strict decode: %w", source, key, i, err)
		}
		meta := metaOf(value)
		ns := meta.Namespace
		if ns == "" && tm.Kind != "Namespace" {
			ns = defaultNamespace
		}
		if meta.Name == "" {
			return nil, fmt.Errorf("%s: %s (document %d) has no name", source, key, i)
		}
		m.objects = append(m.objects, object{
			source: source, apiVersion: tm.APIVersion, kind: tm.Kind,
			name: meta.Name, namespace: ns, value: value,
		})
	}
}

func metaOf(v any) *metav1.ObjectMeta {
	switch o := v.(type) {
	case *corev1.Namespace:
		return &o.ObjectMeta
	case *corev1.ConfigMap:
		return &o.ObjectMeta
	case *corev1.Secret:
		return &o.ObjectMeta
	case *corev1.Service:
		return &o.ObjectMeta
	case *corev1.ServiceAccount:
		return &o.ObjectMeta
	case *corev1.Pod:
		return &o.ObjectMeta
	case *appsv1.Deployment:
		return &o.ObjectMeta
	case *appsv1.StatefulSet:
		return &o.ObjectMeta
	case *policyv1.PodDisruptionBudget:
		return &o.ObjectMeta
	case *autoscalingv2.HorizontalPodAutoscaler:
		return &o.ObjectMeta
	case *networkingv1.Ingress:
		return &o.ObjectMeta
	case *networkingv1.NetworkPolicy:
		return &o.ObjectMeta
	}
	panic(fmt.Sprintf("metaOf: unhandled %T", v))
}

// all returns the objects of one API type.
func all[T any](m *manifest) []*T {
	var out []*T
	for _, o := range m.objects {
		if v, ok := o.value.(*T); ok {
			out = append(out, v)
		}
	}
	return out
}

// find returns the object of that type and name, or nil.
func find[T any](m *manifest, name string) *T {
	for _, o := range m.objects {
		if v, ok := o.value.(*T); ok && metaOf(o.value).Name == name {
			return v
		}
	}
	return nil
}

// workload is anything that runs pods: its pod template, flattened.
type workload struct {
	kind      string
	name      string
	namespace string
	labels    map[string]string // pod labels
	spec      *corev1.PodSpec
}

func (w workload) String() string { return w.kind + " " + w.name }

func (m *manifest) workloads() []workload {
	var out []workload
	for _, o := range m.objects {
		switch v := o.value.(type) {
		case *appsv1.Deployment:
			out = append(out, workload{"Deployment", v.Name, o.namespace, v.Spec.Template.Labels, &v.Spec.Template.Spec})
		case *appsv1.StatefulSet:
			out = append(out, workload{"StatefulSet", v.Name, o.namespace, v.Spec.Template.Labels, &v.Spec.Template.Spec})
		case *corev1.Pod:
			out = append(out, workload{"Pod", v.Name, o.namespace, v.Labels, &v.Spec})
		}
	}
	return out
}

func (m *manifest) workload(name string) (workload, bool) {
	for _, w := range m.workloads() {
		if w.name == name {
			return w, true
		}
	}
	return workload{}, false
}

// selects reports whether a label selector selects the labels.
func selects(t *testing.T, sel *metav1.LabelSelector, set map[string]string) bool {
	t.Helper()
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatalf("bad selector %v: %v", sel, err)
	}
	return s.Matches(labels.Set(set))
}

// containerPort finds a container port by name or number.
func containerPort(c corev1.Container, name string, number int32) (corev1.ContainerPort, bool) {
	for _, p := range c.Ports {
		if (name != "" && p.Name == name) || (name == "" && p.ContainerPort == number) {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

// podPort resolves a port (name or number) in any container of the pod.
func podPort(spec *corev1.PodSpec, name string, number int32) (corev1.ContainerPort, bool) {
	for _, c := range spec.Containers {
		if p, ok := containerPort(c, name, number); ok {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func envVar(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// imagePinned reports why an image reference is not pinned to a version, or "".
func imageUnpinned(ref string) string {
	if strings.Contains(ref, "@sha256:") {
		return ""
	}
	name := ref
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		name = ref[i+1:]
	}
	i := strings.LastIndex(name, ":")
	if i < 0 {
		return "has no tag"
	}
	tag := name[i+1:]
	if tag == "latest" || tag == "" {
		return "uses tag " + tag
	}
	if !strings.ContainsAny(tag, "0123456789") {
		return "tag " + tag + " is not a version"
	}
	return ""
}

// imageName is a reference without tag or digest, as Tilt matches images.
func imageName(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	slash := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > slash {
		ref = ref[:i]
	}
	return ref
}
